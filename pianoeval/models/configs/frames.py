"""Configs of the models on pre-extracted frames and their two registered variants (the models:
``pianoeval.models.frames``)."""

from __future__ import annotations

import pydantic

from pianoeval.models.configs.heads import HeadsConfig
from pianoeval.models.entry import ModelEntry

#: the data module of the ``frames`` input kind (a ``data.frames`` file with PercePiano's labels)
FRAMES = "pianoeval.models.datamodules:FramesDataModule"
EXPORT_COMMAND = "python runners/export_frames.py --model note_sa --out frames.pt"


class FramesProbeConfig(HeadsConfig):
    """Frozen frames: only the attention pooling and the heads train (``HeadsConfig``'s fields).

    Attributes:
        probe_width: None pools the frames at their own width D; N puts a trainable
            Linear D -> N before the pooling (the pooling's scoring layer is then N x N
            instead of D x D: at D = 1024 a cheaper probe, still of frozen frames).
    """

    probe_width: int | None = pydantic.Field(None, ge=4)


class FramesTransformerConfig(HeadsConfig):
    """k trainable Transformer encoder layers on the frames, then the pooling and heads.

    Attributes:
        layers: k, the number of Transformer encoder layers.
        width: model width; the frames are projected from D to it.
        heads: attention heads per layer (must divide ``width``).
        dropout: dropout inside the layers (attention and feed-forward).
        ff_multiplier: feed-forward width = ``ff_multiplier * width``.
    """

    layers: int = pydantic.Field(2, ge=1)
    width: int = pydantic.Field(256, ge=4)
    heads: int = pydantic.Field(4, ge=1)
    dropout: float = pydantic.Field(0.1, ge=0.0, lt=1.0)
    ff_multiplier: int = pydantic.Field(2, ge=1)

    @pydantic.model_validator(mode="after")
    def _heads_divide_width(self) -> "FramesTransformerConfig":
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        return self


_DATA = {"batch_sampler": "grouped"}  # same-music pairs in every batch, for the ranking loss
_NEEDS = {"frames": f"a frames file or folder {{key: [T, D]}}; write one with `{EXPORT_COMMAND}`"}

VARIANTS: tuple[ModelEntry, ...] = (
    ModelEntry("frames_probe", FramesProbeConfig, "pianoeval.models.frames:build_probe", input_kind="frames",
               datamodule=FRAMES, data_defaults=_DATA, required_data=_NEEDS,
               description="frozen-probe baseline: attention pooling + heads on frames"),
    ModelEntry("frames_transformer", FramesTransformerConfig, "pianoeval.models.frames:build_transformer",
               input_kind="frames", datamodule=FRAMES, data_defaults=_DATA, required_data=_NEEDS,
               description="k trainable Transformer encoder layers on frames, then pooling + heads"),
)
