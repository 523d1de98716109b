"""The fusion models' config and their six registered variants (the models: ``pianoeval.models.fusion``;
the frames they train on and their data module: ``pianoeval.fusion``).

A fusion config names two registered encoders (``audio_encoder: {name: a1_lora}``); the
registry resolves each one to its full config (``ModelEntry.encoders``) before this config
is validated, so a fusion run records every setting of the encoders it read.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from pianoeval.models.configs.heads import HeadsConfig
from pianoeval.models.entry import ModelEntry

FUSIONS = ("audio_only", "symbolic_only", "concat", "gated", "cross_attention", "score_conditioned")
SYMBOLIC_KINDS = ("notes", "midi_tokens", "note_graph", "hetero_graph", "midi_curves")  # notes: the HAN family
#: the registered encoders of performance MIDI (the symbolic kinds but ``notes``): they can read a score MIDI
MIDI_ENCODERS = ("s1_remi", "s2_gnn", "s2h_hetero", "s3_continuous")


class FusionConfig(HeadsConfig):
    """A fusion model over two frozen encoders.

    Attributes:
        fusion: one of ``FUSIONS`` (see ``pianoeval.models.fusion``).
        audio_encoder: a registered audio model config (``{name: a1_lora, ...}``) whose
            encoder makes the audio frames; its ``audio:`` block sets the soundfonts.
        audio_checkpoint: a training run's folder (or its ``model.pt``) whose weights the
            audio encoder loads; ``{fold}`` and ``{seed}`` are filled in. None: the
            encoder as built (e.g. the pre-trained backbone with untrained adapters).
        symbolic_encoder: a registered symbolic model config (``{name: s2_gnn, ...}``).
        symbolic_checkpoint: as ``audio_checkpoint``, for the symbolic encoder.
        fusion_dim: width both sequences are projected to for cross-attention (F1).
        fusion_heads: heads of the cross-attention (must divide ``fusion_dim``).
    """

    fusion: Literal["audio_only", "symbolic_only", "concat", "gated", "cross_attention", "score_conditioned"] = "gated"
    audio_encoder: dict[str, Any] = {"name": "a1_lora"}
    audio_checkpoint: str | None = None
    symbolic_encoder: dict[str, Any] = {"name": "s2_gnn"}
    symbolic_checkpoint: str | None = None
    fusion_dim: int = pydantic.Field(128, ge=4)
    fusion_heads: int = pydantic.Field(4, ge=1)

    @pydantic.field_validator("audio_encoder", "symbolic_encoder")
    @classmethod
    def _names_a_model(cls, value: dict[str, Any], info: pydantic.ValidationInfo) -> dict[str, Any]:
        if "name" not in value:
            raise ValueError(f"{info.field_name} needs a registered model name, e.g. {{name: "
                             f"{'a1_lora' if info.field_name == 'audio_encoder' else 's2_gnn'}}}")
        return value

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> "FusionConfig":
        if self.fusion_dim % self.fusion_heads:
            raise ValueError(f"fusion_dim {self.fusion_dim} is not divisible by fusion_heads {self.fusion_heads}")
        if self.needs_score and self.symbolic_encoder["name"] not in MIDI_ENCODERS:
            raise ValueError(f"symbolic_encoder: {self.symbolic_encoder['name']} reads score-aligned performance "
                             f"features, which a score MIDI alone does not have; score-conditioned fusion needs an "
                             f"encoder of MIDI ({', '.join(MIDI_ENCODERS)})")
        return self

    @property
    def needs_score(self) -> bool:
        return self.fusion == "score_conditioned"


_GROUPED = {"batch_sampler": "grouped"}  # same-music pairs in every batch, for the ranking loss
_ENCODERS = {"audio_encoder": ("audio",), "symbolic_encoder": SYMBOLIC_KINDS}


def _variant(name: str, fusion: str, description: str) -> ModelEntry:
    return ModelEntry(name, FusionConfig, "pianoeval.models.fusion:build_fusion", input_kind="fusion",
                      datamodule="pianoeval.fusion.data:FusionDataModule", tiers=("T1", "T4"), defaults={"fusion": fusion},
                      data_defaults=_GROUPED, description=description, encoders=_ENCODERS)


VARIANTS: tuple[ModelEntry, ...] = (
    _variant("fusion_audio_only", "audio_only", "control: the audio encoder's frames alone through the fusion heads"),
    _variant("fusion_symbolic_only", "symbolic_only", "control: the symbolic encoder's frames alone, same heads"),
    _variant("fusion_f1_xattn", "cross_attention", "F1: bidirectional cross-attention between audio and MIDI frames"),
    _variant("fusion_f2_concat", "concat", "F2: [z_audio; z_symbolic] -> MLP"),
    _variant("fusion_f3_gated", "gated", "F3: per-dimension gate between z_audio and z_symbolic"),
    _variant("fusion_score", "score_conditioned", "quality = f(performance audio, performance MIDI, score MIDI)"),
)
