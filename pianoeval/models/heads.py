"""The shared pipeline on top of every non-HAN encoder (audio, symbolic; fusion pools each modality with it).

    encoder frames [B, T, C] + mask
      -> attention pooling (context attention with a temperature) -> [B, C]
      -> shared encoder: 2-layer MLP + LayerNorm -> z [B, z_dim] (512)
      -> regression head (N logits; sigmoid outside) and per-dimension ranking heads

One implementation, used by every track, so that their comparison measures the
encoders and not their heads. An encoder answers one protocol:
``encode(batch) -> (frames [B, T, C], mask [B, T] bool)`` and has ``output_dim``.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from pianoeval.models.attention import ContextAttention
from pianoeval.models.configs.heads import HeadsConfig
from pianoeval.models.output import ModelOutput
from pianoeval.models.segments import normalised_entropy


class Encoder(Protocol):
    output_dim: int

    def encode(self, batch) -> tuple[torch.Tensor, torch.Tensor]: ...


def shared_mlp(in_dim: int, config: HeadsConfig) -> nn.Sequential:
    """The shared encoder: 2-layer MLP + LayerNorm, ``in_dim`` -> ``z_dim``."""
    return nn.Sequential(
        nn.Linear(in_dim, config.head_hidden), nn.GELU(), nn.Dropout(config.head_dropout),
        nn.Linear(config.head_hidden, config.z_dim), nn.LayerNorm(config.z_dim))


class PooledEmbedding(nn.Module):
    """Frames [B, T, C] + mask -> attention pooling -> shared MLP -> z [B, z_dim]."""

    def __init__(self, in_dim: int, config: HeadsConfig):
        super().__init__()
        heads = config.pool_heads if in_dim % config.pool_heads == 0 else 1
        self.pool = ContextAttention(in_dim, heads, config.pool_temperature)
        self.shared = shared_mlp(in_dim, config)

    def embed(self, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pooled, weights = self.pool(frames, mask)
        rows = mask.nonzero()[:, 0]
        entropy = normalised_entropy(weights[mask], rows, mask.shape[0])
        return self.shared(pooled), {"attn_entropy/pool": entropy}


class PerformanceHeads(PooledEmbedding):
    """Pooling -> z -> regression logits and ranking scores."""

    def __init__(self, in_dim: int, num_labels: int, config: HeadsConfig):
        super().__init__(in_dim, config)
        self.regression = nn.Linear(config.z_dim, num_labels)
        self.ranking = nn.Linear(config.z_dim, num_labels)  # one scalar ranking head per dimension

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> ModelOutput:
        z, diagnostics = self.embed(frames, mask)
        return ModelOutput(logits=self.regression(z), embedding=z, rank_scores=self.ranking(z),
                           diagnostics={k: v.detach() for k, v in diagnostics.items()})


class EncoderWithHeads(nn.Module):
    """A registered model = an encoder (protocol above) + the shared heads."""

    def __init__(self, encoder: nn.Module, num_labels: int, config: HeadsConfig):
        super().__init__()
        self.encoder = encoder
        self.heads = PerformanceHeads(encoder.output_dim, num_labels, config)

    def forward(self, batch) -> ModelOutput:
        frames, mask = self.encoder.encode(batch)
        out = self.heads(frames, mask)
        extra = getattr(self.encoder, "diagnostics", None)
        if callable(extra):
            out.diagnostics.update({k: v.detach() for k, v in extra().items()})
        return out
