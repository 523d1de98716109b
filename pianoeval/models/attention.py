"""Multi-head context attention, the pooling operator of the PercePiano HAN.

Reference doc, sections 2.3 and 3.1. With ``x_t`` in R^C, ``H`` heads of size
``d = C / H``, a Linear ``W: C -> C`` and one learned context vector ``c_h`` per head:

    s_{t,h}  = <tanh(W x_t + b)[h*d:(h+1)*d], c_h> / temperature
    a_{t,h}  = softmax over t (per head, per sequence or per segment)
    y        = concat_h sum_t a_{t,h} x_t[h*d:(h+1)*d]

Each head weights only its own feature slice; there is no value projection and no
1/sqrt(d) scaling (``temperature=1.0`` is the reference; the earlier replication used
0.5 and sweeps explore it).

Quirk 3.6.1 of the reference is fixed: padding is excluded by an explicit boolean mask,
never by testing for all-zero rows (a Linear before the attention turns padded zero
rows into its bias, so the reference's zero-sum test stopped firing in training).
"""

from __future__ import annotations

import torch
from torch import nn

from pianoeval.models.segments import segment_softmax, segment_sum


class ContextAttention(nn.Module):
    """Context attention over ``size``-wide rows with ``num_heads`` heads.

    Parameters: ``size * size + 2 * size`` (Linear with bias, plus ``num_heads`` context
    vectors of ``size / num_heads``), e.g. 263,168 at size 512.
    """

    def __init__(self, size: int, num_heads: int, temperature: float = 1.0):
        super().__init__()
        if size % num_heads:
            raise ValueError(f"ContextAttention: size {size} is not divisible by num_heads {num_heads}")
        if not temperature > 0:
            raise ValueError(f"ContextAttention: temperature must be > 0, got {temperature}")
        self.size = size
        self.num_heads = num_heads
        self.head_size = size // num_heads
        self.temperature = float(temperature)
        self.attention_net = nn.Linear(size, size)
        # U(-1, 1) as in the reference; PyTorch default init everywhere else.
        self.context_vector = nn.Parameter(torch.empty(num_heads, self.head_size).uniform_(-1.0, 1.0))

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Head scores ``[..., H]`` for rows ``x`` ``[..., C]`` (before any softmax)."""
        keys = torch.tanh(self.attention_net(x)).unflatten(-1, (self.num_heads, self.head_size))
        return (keys * self.context_vector).sum(-1) / self.temperature

    def _weighted(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Rows ``[..., C]`` scaled per head slice by ``weights`` ``[..., H]``."""
        heads = x.unflatten(-1, (self.num_heads, self.head_size))
        return (heads * weights.unsqueeze(-1)).flatten(-2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequence readout: pool each row of ``x`` ``[B, T, C]`` into ``[B, C]``.

        Args:
            x: ``[B, T, C]``; padded rows may hold anything finite.
            mask: ``[B, T]`` bool, True on real rows; every row needs at least one.
        Returns:
            ``(pooled [B, C], weights [B, T, H])``; weights are exactly 0 on padding and
            sum to 1 over the real rows of each item, per head.
        """
        scores = self.scores(x).masked_fill(~mask.unsqueeze(-1), float("-inf"))
        weights = torch.softmax(scores, dim=1)
        return self._weighted(x, weights).sum(1), weights

    def pool_segments(self, x: torch.Tensor, segment_ids: torch.Tensor,
                      num_segments: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Segment pooling ("make_higher_node"): flat rows ``[N, C]`` -> segment nodes.

        Args:
            x: ``[N, C]`` flat rows (e.g. every real note of the batch).
            segment_ids: ``[N]`` global segment id of each row, in ``[0, num_segments)``.
        Returns:
            ``(nodes [num_segments, C], weights [N, H])``; the weights sum to 1 inside
            each segment, per head.
        """
        weights = segment_softmax(self.scores(x), segment_ids, num_segments)
        return segment_sum(self._weighted(x, weights), segment_ids, num_segments), weights
