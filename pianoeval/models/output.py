"""What every registered model returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch


@dataclass
class ModelOutput:
    """``logits`` go through a sigmoid outside the model (loss and metrics), as in
    the reference. ``embedding`` is the pooled representation (z) when the model
    has one. ``diagnostics`` are scalar tensors logged every epoch under
    ``diag/<name>`` (attention entropy per level, level contribution shares, ...);
    they must be detached."""

    logits: torch.Tensor  # [B, L]
    embedding: torch.Tensor | None = None  # [B, Z]
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)
    # [B, L] per-dimension ranking scores from dedicated ranking heads; when present the
    # ranking loss (and, if it is trained, pairwise accuracy) use them instead of logits.
    rank_scores: torch.Tensor | None = None


@runtime_checkable
class NamesDimensions(Protocol):
    """A model whose diagnostics are per label dimension (F3's gates): the trainer sets
    ``label_names`` to the run's dimension names right after building it."""

    label_names: list[str]
