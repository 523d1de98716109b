"""The config of one symbolic pre-training run, checked before anything heavy loads.

``runners/pretrain_symbolic.py`` validates a ``PretrainConfig`` and its encoder's model config
(``encoder_config``) first, so a typo is a one-line error in well under a second; the loop
itself is ``pianoeval.symbolic.pretrain``.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from pianoeval.config import StrictModel
from pianoeval.models.registry import ModelEntry, get_model

#: pre-training name -> the registered variant whose architecture it pre-trains by default
#: (the CPU size; ``pianoeval.models.symbolic.ENCODERS`` names the same, with each family's module)
DEFAULT_VARIANTS = {"s1": "s1_remi", "s2": "s2_gnn", "s2h": "s2h_hetero", "s3": "s3_continuous"}


class PretrainConfig(StrictModel):
    """One pre-training run.

    Attributes:
        encoder: ``s1`` / ``s2`` / ``s2h`` / ``s3``.
        variant: registered model whose architecture is pre-trained (default: the
            encoder's CPU-size variant, e.g. ``s1_remi``); ``model`` overrides its fields.
        sources: corpus sources (``asap``; add ``percepiano`` for its performances, unlabelled).
        percepiano_fold: ``(split, fold)``: of PercePiano, only that fold's training
            segments (so that validation and test performances stay unseen); None: all.
        pieces: only these pieces (ASAP folders / PercePiano piece names); None = all.
        max_items: use a seeded subset of this many training windows (None: all).
        steps, batch_size, lr, weight_decay, warmup_fraction, grad_clip: optimisation.
        mask_prob: the objective's masking share (None: 0.15, S3 0.65).
        lambda_contrastive: weight of the cross-performer InfoNCE (0: off).
        cross_distractors: S3 only: distractors drawn from other windows of the batch, besides
            the 10 from the window itself (0: the window's own only, as wav2vec 2.0).
        lambda_performance: S1 / S3 only: weight of the same-performance InfoNCE over two
            disjoint views of every window (module docstring; 0: off).
        lambda_reconstruct: S3 only: weight of the masked-curve reconstruction beside the
            masked-frame contrastive objective (``symbolic_curves``; 0: off).
        lambda_objective: weight of the encoder's own objective (masked tokens, links,
            masked frames); 0 leaves the other terms alone (one of them must be on).
        crop: S1 / S3 see a random crop of this many tokens / curve frames of each window
            per step (one attention chunk's worth: the encoders attend within chunks
            anyway, so this cuts cost ~3x at no loss of context); None = whole windows.
            With ``lambda_performance > 0`` each of the two views is at most half of it.
        validation_items: windows of held-out pieces for the validation loss.
        eval_every: steps between validation passes.
    """

    encoder: Literal["s1", "s2", "s2h", "s3"]
    variant: str | None = None
    model: dict[str, Any] = {}
    sources: tuple[Literal["asap", "percepiano"], ...] = ("asap",)
    percepiano_fold: tuple[Literal["performer", "piece"], pydantic.NonNegativeInt] | None = None
    pieces: tuple[str, ...] | None = None
    max_items: int | None = pydantic.Field(None, ge=2)
    steps: int = pydantic.Field(1000, ge=1)
    batch_size: int = pydantic.Field(16, ge=2)
    lr: float = pydantic.Field(5e-4, gt=0)
    weight_decay: float = pydantic.Field(0.01, ge=0)
    warmup_fraction: float = pydantic.Field(0.05, ge=0, lt=1)
    grad_clip: float = pydantic.Field(1.0, gt=0)
    mask_prob: float | None = pydantic.Field(None, gt=0, lt=1)
    lambda_contrastive: float = pydantic.Field(0.0, ge=0)
    contrastive_temperature: float = pydantic.Field(0.1, gt=0)
    cross_distractors: int = pydantic.Field(0, ge=0)
    lambda_performance: float = pydantic.Field(0.0, ge=0)
    lambda_reconstruct: float = pydantic.Field(0.0, ge=0)
    lambda_objective: float = pydantic.Field(1.0, ge=0)
    crop: int | None = pydantic.Field(256, ge=8)
    validation_items: int = pydantic.Field(256, ge=0)
    eval_every: int = pydantic.Field(100, ge=1)
    seed: int = 7

    @pydantic.field_validator("cross_distractors", "lambda_reconstruct")
    @classmethod
    def _s3_only(cls, value: float, info: pydantic.ValidationInfo) -> float:
        encoder = info.data.get("encoder")
        if value and encoder != "s3":
            what = {"cross_distractors": "S3's frame contrastive objective", "lambda_reconstruct": "S3's input curves"}
            raise ValueError(f"{value:g} is for {what[info.field_name]}, not {encoder}; leave it at 0")
        return value

    @pydantic.field_validator("lambda_performance")
    @classmethod
    def _sequences_only(cls, value: float, info: pydantic.ValidationInfo) -> float:
        encoder = info.data.get("encoder")
        if value and encoder not in ("s1", "s3"):
            raise ValueError(f"{value:g} needs two views cut from a token or curve sequence (S1, S3), "
                             f"not {encoder}'s graphs; leave it at 0")
        return value

    @pydantic.model_validator(mode="after")
    def _something_to_learn(self):
        if self.lambda_objective == 0 and not (self.lambda_contrastive or self.lambda_performance
                                                or self.lambda_reconstruct):
            raise ValueError("lambda_objective is 0 and no other term is on: nothing to learn; "
                             "set lambda_performance, lambda_contrastive or lambda_reconstruct above 0")
        return self


def encoder_config(config: PretrainConfig) -> tuple[ModelEntry, Any]:
    """The registry entry of the architecture ``config`` pre-trains and its model config
    (``config.model`` over the variant's defaults; never pre-trained weights, never frozen)."""
    entry = get_model(config.variant or DEFAULT_VARIANTS[config.encoder])
    return entry, entry.make_config({**config.model, "pretrained": False, "freeze_encoder": False}, "pretrain.model")
