"""Models on pre-extracted encoder frames (``data.frames``), through the shared pooling + heads.

    frames [B, T, D] (frozen, from a frames file)
      frames_probe:       -> attention pooling -> shared MLP -> z -> heads
      frames_transformer: -> Linear(D, width) + sinusoidal positions
                          -> k trainable Transformer encoder layers (pre-norm, padding masked)
                          -> attention pooling -> shared MLP -> z -> heads

``frames_probe`` is the frozen-probe baseline: nothing but the pooling and the heads
learns, so it measures what the frames already hold. ``frames_transformer`` adds k
layers of sequence modelling on top; the two share heads, loss and data, so their
paired comparison measures those layers.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pianoeval.models.configs.frames import FramesProbeConfig, FramesTransformerConfig
from pianoeval.models.heads import EncoderWithHeads


class FrozenFrames(nn.Module):
    """The frames as they are, or linearly projected: ``encode(FramesBatch) -> (frames, mask)``."""

    def __init__(self, input_dim: int, probe_width: int | None = None):
        super().__init__()
        self.project = nn.Linear(input_dim, probe_width) if probe_width else None
        self.output_dim = probe_width or input_dim

    def encode(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        if self.project is None:
            return batch.frames, batch.mask
        return self.project(batch.frames) * batch.mask.unsqueeze(-1), batch.mask


def sinusoidal_positions(length: int, width: int, device=None) -> torch.Tensor:
    """``[length, width]`` sine / cosine position codes (Vaswani et al. 2017)."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    rate = torch.exp(torch.arange(0, width, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / width))
    codes = torch.zeros(length, width, device=device)
    codes[:, 0::2] = torch.sin(position * rate)
    codes[:, 1::2] = torch.cos(position * rate[: width // 2])
    return codes


class FramesTransformer(nn.Module):
    """Input projection + positions + k pre-norm Transformer encoder layers; padded frames
    are masked as keys and zeroed in the output."""

    def __init__(self, input_dim: int, config: FramesTransformerConfig):
        super().__init__()
        self.output_dim = config.width
        self.project = nn.Linear(input_dim, config.width)
        layer = nn.TransformerEncoderLayer(config.width, config.heads, config.ff_multiplier * config.width,
                                           config.dropout, activation="gelu", batch_first=True, norm_first=True)
        # nested tensors would drop the padded rows' outputs to zero in eval only; keep one code path
        self.layers = nn.TransformerEncoder(layer, config.layers, norm=nn.LayerNorm(config.width),
                                            enable_nested_tensor=False)

    def encode(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        mask = batch.mask
        h = self.project(batch.frames) + sinusoidal_positions(batch.frames.shape[1], self.output_dim,
                                                              batch.frames.device)
        h = self.layers(h, src_key_padding_mask=~mask)
        return h * mask.unsqueeze(-1), mask


def build_probe(config: FramesProbeConfig, input_dim: int, num_labels: int) -> EncoderWithHeads:
    return EncoderWithHeads(FrozenFrames(input_dim, config.probe_width), num_labels, config)


def build_transformer(config: FramesTransformerConfig, input_dim: int, num_labels: int) -> EncoderWithHeads:
    return EncoderWithHeads(FramesTransformer(input_dim, config), num_labels, config)
