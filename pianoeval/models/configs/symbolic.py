"""Configs of the symbolic encoders (S1, S2, S2H, S3) and their registered variants (the models:
``pianoeval.models.symbolic_remi``, ``symbolic_gnn``, ``symbolic_hetero``, ``symbolic_curves``;
their data modules: ``pianoeval.symbolic.datamodule``)."""

from __future__ import annotations

from typing import Literal

import pydantic

from pianoeval.models.configs.heads import HeadsConfig
from pianoeval.models.entry import ModelEntry

_DATA_MODULES = "pianoeval.symbolic.datamodule"


class SymbolicConfig(HeadsConfig):
    """Fields every symbolic encoder has (plus the shared heads' fields).

    Attributes:
        hidden_size: encoder width (token / node / frame embeddings).
        num_layers: Transformer layers (S1, S3) or graph-convolution layers (S2, S2H).
        num_heads: attention heads (Transformer or GAT); must divide ``hidden_size``.
        dropout: dropout inside the encoder.
        pretrained: ``false`` (random initialisation), ``true`` (the checkpoint that
            ``runners/pretrain_symbolic.py`` made for this architecture) or a path.
        freeze_encoder: keep the encoder's weights fixed (train pooling and heads only).
        cross_performer_items: ASAP windows mixed into the training set as unlabelled
            cross-performer items (T3: contrastive loss only; needs
            ``train.lambda_contrastive > 0`` to matter). 0 = PercePiano only.
    """

    hidden_size: int = pydantic.Field(128, ge=4)
    num_layers: int = pydantic.Field(2, ge=1)
    num_heads: int = pydantic.Field(4, ge=1)
    dropout: float = pydantic.Field(0.1, ge=0.0, lt=1.0)
    pretrained: bool | str = False
    freeze_encoder: bool = False
    cross_performer_items: int = pydantic.Field(0, ge=0)

    @pydantic.model_validator(mode="after")
    def _heads_divide_width(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.freeze_encoder and self.pretrained is False:
            raise ValueError("freeze_encoder needs pretrained weights (a frozen random encoder learns nothing)")
        return self


class RemiConfig(SymbolicConfig):
    """S1 config (shared symbolic fields, see ``SymbolicConfig``, plus):

    Attributes:
        ff_multiplier: feed-forward width = ff_multiplier * hidden_size.
        chunk_len: tokens per attention chunk (and learned positions).
    """

    ff_multiplier: int = pydantic.Field(4, ge=1)
    chunk_len: int = pydantic.Field(256, ge=8)


class GraphConfig(SymbolicConfig):
    """S2 / S2H config: the shared symbolic fields (``SymbolicConfig``)."""

    num_layers: int = 3


class HeteroConfig(GraphConfig):
    """S2H config: the S2 fields plus

    Attributes:
        aggr: how the four relations' messages are combined (``sum`` or ``mean``).
    """

    aggr: Literal["sum", "mean"] = "sum"


class CurveConfig(SymbolicConfig):
    """S3 config (shared symbolic fields, see ``SymbolicConfig``, plus):

    Attributes:
        conv_layers: multi-scale CNN blocks before the Transformer.
        downsample: stride of the last convolution (latent frame = downsample x 40 ms).
        chunk_len: latent frames per attention chunk.
    """

    conv_layers: int = pydantic.Field(2, ge=1)
    downsample: int = pydantic.Field(2, ge=1)
    chunk_len: int = pydantic.Field(256, ge=8)


VARIANTS: tuple[ModelEntry, ...] = (
    ModelEntry("s1_remi", RemiConfig, "pianoeval.models.symbolic_remi:build_remi", "midi_tokens",
               datamodule=f"{_DATA_MODULES}:TokenDataModule",
               description="S1: Transformer on REMI tokens (CPU size: 2 x 128, 4 heads)"),
    ModelEntry("s2_gnn", GraphConfig, "pianoeval.models.symbolic_gnn:build_gnn", "note_graph",
               datamodule=f"{_DATA_MODULES}:NoteGraphDataModule",
               description="S2: GAT on the homogeneous note graph (CPU size: 3 x 128, 4 heads)"),
    ModelEntry("s2h_hetero", HeteroConfig, "pianoeval.models.symbolic_hetero:build_hetero", "hetero_graph",
               datamodule=f"{_DATA_MODULES}:HeteroGraphDataModule",
               description="S2H: HeteroConv (GAT per edge type) on onset/during/follow/silence edges (CPU: 3 x 128)"),
    ModelEntry("s3_continuous", CurveConfig, "pianoeval.models.symbolic_curves:build_curves", "midi_curves",
               datamodule=f"{_DATA_MODULES}:CurveDataModule",
               description="S3: multi-scale CNN (3/7/15) + Transformer on MIDI curves (CPU: 2 x 128, 4 heads)"),
)
