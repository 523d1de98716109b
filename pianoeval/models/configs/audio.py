"""Configs of the audio models (A1-A3), their ``audio:`` data block and augmentation, and their
three registered variants (the models: ``pianoeval.models.audio``; the data module:
``pianoeval.audio.data``).

The audio track's data config (``AudioDataConfig``, ``AugmentConfig``) lives here, not in
``pianoeval.audio``, so that a config validates without importing the audio stack.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import pydantic

from pianoeval.config import StrictModel
from pianoeval.errors import ConfigError
from pianoeval.io import is_safe_name
from pianoeval.paths import SHIPPED_BACKBONES, results_root
from pianoeval.models.configs.heads import HeadsConfig
from pianoeval.models.entry import ModelEntry

#: the soundfonts a config may name (their files: ``pianoeval.audio.render.SOUNDFONTS``)
SOUNDFONT_NAMES = ("musescore", "timgm6mb")
#: the pre-trained backbone that ``backbone: pianoeval`` reads (shipped in
#: ``pianoeval/audio/weights/``; alignment-supervised, docs/audio.md)
DEFAULT_BACKBONE_NAME = "pianoeval_aligned"
#: the self-attention projections of a conformer layer that LoRA can adapt
ATTENTION_PROJECTIONS = ("linear_q", "linear_k", "linear_v", "linear_out")


class AugmentConfig(StrictModel):
    """Probabilities and ranges of the augmentation suite (the design's defaults).

    Attributes:
        p_room, p_noise, p_phone, p_pitch, p_eq: probability of each transform.
        snr_db: (min, max) signal-to-noise ratio of the additive noise, in dB.
        pitch_cents: maximum absolute pitch shift, in cents.
        eq_gain_db: maximum absolute gain of each EQ band, in dB.
        phone_cutoff_hz: low-pass cutoff of the phone simulation.
        rir_bank_size: number of simulated rooms (built once, cached).
    """

    p_room: float = pydantic.Field(0.3, ge=0, le=1)
    p_noise: float = pydantic.Field(0.3, ge=0, le=1)
    p_phone: float = pydantic.Field(0.2, ge=0, le=1)
    p_pitch: float = pydantic.Field(0.1, ge=0, le=1)
    p_eq: float = pydantic.Field(0.2, ge=0, le=1)
    snr_db: tuple[float, float] = (10.0, 30.0)
    pitch_cents: float = pydantic.Field(50.0, ge=0, le=1200)
    eq_gain_db: float = pydantic.Field(6.0, ge=0, le=24)
    phone_cutoff_hz: float = pydantic.Field(8000.0, gt=0)
    rir_bank_size: int = pydantic.Field(48, ge=1)


class AudioDataConfig(StrictModel):
    """Audio data options (the ``audio:`` block of every audio model config).

    Attributes:
        soundfonts: training soundfonts; one is drawn per item per epoch.
        eval_soundfont: soundfont of validation and test (a training soundfont or not:
            leaving it out of ``soundfonts`` measures cross-soundfont generalisation).
        max_seconds: keep the first N seconds of each segment (None = all of it).
        max_eval_segments: use only about N validation / test segments: whole music
            groups in a seeded order until N are reached (smoke runs and tests); None = all.
        t3_passages_per_batch: ASAP passages (two performers each) per training batch (T3).
        asap_window_seconds, asap_windows_per_performance, asap_max_pieces: the windows (the
            defaults are the pre-training's, so its renders and features are shared).
        augmented_views: augmented variants per training item (T4); the cache holds
            each once.
        robustness_eval: attach a fixed augmented view to validation / test batches.
        augment: the augmentation suite (probabilities and ranges).
        workers: processes for rendering / features (None = all cores).
    """

    soundfonts: tuple[str, ...] = ("musescore", "timgm6mb")
    eval_soundfont: str = "musescore"
    max_seconds: float | None = pydantic.Field(12.0, gt=0)
    max_eval_segments: int | None = pydantic.Field(None, ge=2)
    t3_passages_per_batch: int = pydantic.Field(2, ge=1)
    asap_window_seconds: float = pydantic.Field(5.0, gt=0)
    asap_windows_per_performance: int = pydantic.Field(2, ge=1)
    asap_max_pieces: int | None = pydantic.Field(None, ge=2)
    augmented_views: int = pydantic.Field(1, ge=1)
    robustness_eval: bool = True
    augment: AugmentConfig = AugmentConfig()
    workers: int | None = pydantic.Field(None, ge=1)

    @pydantic.field_validator("soundfonts")
    @classmethod
    def _known_soundfonts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [v for v in value if v not in SOUNDFONT_NAMES]
        if unknown or not value:
            raise ValueError(f"unknown soundfonts {unknown or '[]'} (available: {', '.join(SOUNDFONT_NAMES)})")
        return tuple(dict.fromkeys(value))

    @pydantic.field_validator("eval_soundfont")
    @classmethod
    def _known_eval(cls, value: str) -> str:
        if value not in SOUNDFONT_NAMES:
            raise ValueError(f"unknown soundfont {value!r} (available: {', '.join(SOUNDFONT_NAMES)})")
        return value


def built_backbone_dir(name: str) -> Path:
    """Where ``runners/pretrain_audio.py --name <name>`` writes a backbone."""
    return results_root() / "pretrained" / "audio" / name


def pretrained_backbone_dir(name: str) -> Path:
    """The checkpoint folder of the pre-trained ``pianoeval`` backbone ``name``:
    ``results/pretrained/audio/<name>/`` when one was built here (``runners/pretrain_audio.py``
    writes there), else the copy shipped in the package (``pianoeval/audio/weights/<name>/``),
    else the ``results`` path (absent: the loader says how to build it)."""
    built = built_backbone_dir(name)
    shipped = SHIPPED_BACKBONES / name
    if (built / "config.json").is_file() or not (shipped / "config.json").is_file():
        return built
    return shipped


def _top_third(num_layers: int) -> int:
    return math.ceil(num_layers / 3)  # MuQ: 4 of 12 (layers 9-12); 4-layer default: 2


class AudioEncoderConfig(HeadsConfig):
    """Backbone choice and audio data options shared by A1-A3.

    Attributes:
        backbone: ``pianoeval`` (the pre-trained CPU-sized default) or ``muq``.
        backbone_name: the pre-trained ``pianoeval`` backbone: a folder under
            ``results/pretrained/audio/`` or, when none was built here, the shipped one
            (``pretrained_backbone_dir``).
        backbone_path: a checkpoint folder (config.json + model.safetensors); required
            for ``muq``, overrides ``backbone_name``.
        backbone_init: ``pretrained`` or ``random`` (same architecture, re-initialised
            weights: the no-pre-training control; announced when used).
        backbone_seed: seed of the random initialisation.
        hidden_cache: train on cached hidden states of the frozen layers (False: run the
            whole backbone every step, from log-mel frames; slower, same result).
        audio: the audio data block (soundfonts, crop, tiers, augmentation).
    """

    backbone: Literal["pianoeval", "muq"] = "pianoeval"
    backbone_name: str = DEFAULT_BACKBONE_NAME
    backbone_path: str | None = None
    backbone_init: Literal["pretrained", "random"] = "pretrained"
    backbone_seed: int = 0
    hidden_cache: bool = True
    audio: AudioDataConfig = AudioDataConfig()

    @pydantic.field_validator("backbone_name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not is_safe_name(value):
            raise ValueError(f"{value!r} is not one folder name (letters, digits, '.', '_', '-', not starting "
                             f"with '.')")
        return value

    def backbone_folder(self) -> Path | None:
        """The checkpoint folder this config reads (None: ``muq`` without ``backbone_path``)."""
        if self.backbone_path:
            return Path(self.backbone_path).expanduser()
        return pretrained_backbone_dir(self.backbone_name) if self.backbone == "pianoeval" else None

    def input_files(self) -> dict[str, str]:
        """The backbone's weights, recorded with their content hash in every run's
        ``resolved.yaml`` (shipped, built here or given by path alike)."""
        folder = self.backbone_folder()
        weights = folder / "model.safetensors" if folder is not None else None
        return {"model.backbone": str(weights)} if weights is not None and weights.is_file() else {}

    def adapted_layers(self, spec) -> range:
        """The backbone layers (1-based) this encoder adapts; ``spec`` is the backbone's ``BackboneSpec``."""
        raise NotImplementedError

    def cache_layer(self, spec) -> int:
        """Hidden state the batches carry: the input of the first adapted layer (0 = log-mel)."""
        return self.adapted_layers(spec).start - 1 if self.hidden_cache else 0


class A1Config(AudioEncoderConfig):
    """A1: LoRA on attention projections.

    Attributes:
        lora_rank, lora_alpha, lora_dropout: LoRA rank r, scale alpha (update
            ``B A x * alpha / r``) and dropout on the adapter input.
        lora_layers: ``[first, last]`` conformer layers (1-based, inclusive) that get
            adapters; None = the top third (MuQ: 9-12; the 4-layer default: 3-4).
        lora_targets: which projections of each layer's self-attention.
    """

    lora_rank: int = pydantic.Field(8, ge=1)
    lora_alpha: float = pydantic.Field(16.0, gt=0)
    lora_dropout: float = pydantic.Field(0.1, ge=0, lt=1)
    lora_layers: tuple[int, int] | None = None
    lora_targets: tuple[Literal["linear_q", "linear_k", "linear_v", "linear_out"], ...] = ATTENTION_PROJECTIONS

    def adapted_layers(self, spec) -> range:
        first, last = self.lora_layers or (spec.num_layers - _top_third(spec.num_layers) + 1, spec.num_layers)
        if not 1 <= first <= last <= spec.num_layers:
            raise ConfigError(f"model.lora_layers: {[first, last]} outside the backbone's layers 1-{spec.num_layers}")
        if last != spec.num_layers:
            raise ConfigError(f"model.lora_layers: must end at the top layer {spec.num_layers} (the layers above the "
                              f"adapted ones would be frozen and still run every step); got {[first, last]}")
        return range(first, last + 1)


class A2Config(A1Config):
    """A2: A1 with a self-supervised stage 1 before supervised training.

    Attributes:
        stage1_steps: optimiser steps of stage 1.
        stage1_lr: its learning rate (AdamW, warm-up + cosine).
        stage1_passages_per_batch: ASAP passages (x 2 performers, + augmented views) a step.
        stage1_lambda_invariance: weight of the augmentation-invariance term.
        stage1_temperature: InfoNCE temperature.
    The ASAP windows, soundfonts and augmentation come from the ``audio`` block.
    """

    stage1_steps: int = pydantic.Field(150, ge=1)
    stage1_lr: float = pydantic.Field(1e-3, gt=0)
    stage1_passages_per_batch: int = pydantic.Field(8, ge=2)
    stage1_lambda_invariance: float = pydantic.Field(1.0, ge=0)
    stage1_temperature: float = pydantic.Field(0.1, gt=0)


class A3Config(AudioEncoderConfig):
    """A3: gradual unfreezing with discriminative learning rates.

    Attributes:
        unfreeze_layers: how many top layers are unfrozen in the end (MuQ: 4 = 12..9);
            None = the top third.
        unfreeze_every: epochs between unfreezing one more layer.
        layer_lr_decay: learning-rate factor per layer below the top.
    """

    unfreeze_layers: int | None = pydantic.Field(None, ge=1)
    unfreeze_every: int = pydantic.Field(1, ge=1)
    layer_lr_decay: float = pydantic.Field(0.5, gt=0, le=1)

    def adapted_layers(self, spec) -> range:
        count = self.unfreeze_layers or _top_third(spec.num_layers)
        if count > spec.num_layers:
            raise ConfigError(f"model.unfreeze_layers: {count} > the backbone's {spec.num_layers} layers")
        return range(spec.num_layers - count + 1, spec.num_layers + 1)


_GROUPED = {"batch_sampler": "grouped"}  # same-music pairs in every batch, for the ranking loss
_AUDIO = "pianoeval.audio.data:AudioDataModule"
_TIERS = ("T1", "T3", "T4")  # T2 (competition placements) has no data here

VARIANTS: tuple[ModelEntry, ...] = (
    ModelEntry("a1_lora", A1Config, "pianoeval.models.audio:build_a1", input_kind="audio", datamodule=_AUDIO,
               tiers=_TIERS, data_defaults=_GROUPED,
               description="A1: LoRA on the attention projections of the backbone's top layers"),
    ModelEntry("a2_staged", A2Config, "pianoeval.models.audio:build_a2", input_kind="audio", datamodule=_AUDIO,
               tiers=_TIERS, data_defaults=_GROUPED,
               description="A2: LoRA adapters, self-supervised stage 1 (ASAP) then supervised stage 2"),
    ModelEntry("a3_unfreeze", A3Config, "pianoeval.models.audio:build_a3", input_kind="audio", datamodule=_AUDIO,
               tiers=_TIERS, data_defaults=_GROUPED,
               description="A3: gradual top-down unfreezing with discriminative learning rates"),
)
