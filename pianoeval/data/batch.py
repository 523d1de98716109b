"""Batches: what a DataLoader yields and what every registered model consumes.

Every batch type carries ``labels`` ([B, L] in (0, 1]), ``group`` ([B] ids of the
music: equal values mean the same notes played by different performers, which makes
a ranking pair and a contrastive positive; -1 = none) and ``segment_ids``. Encoders
read the fields of their own input kind.

Multi-tier batches (the v2 design's data tiers) say per item which loss terms apply:
``label_mask`` marks items with ratings (T1: labelled PercePiano); items of the
cross-performer tier (T3: ASAP) have a ``group`` but no labels; ``augmented`` holds
the same items under audio / MIDI augmentation (T4: invariance pairs).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch

TIER_LABELLED, TIER_COMPETITION, TIER_CROSS_PERFORMER, TIER_AUGMENTATION = 1, 2, 3, 4


@dataclass
class BatchBase:
    labels: torch.Tensor  # [B, L] float32, PercePiano ratings / 7 (any value where unlabelled)
    label_std: torch.Tensor  # [B, L] float32, rater std / 7
    group: torch.Tensor  # [B] int64, id of the music (same music => ranking pair); -1 = none
    segment_ids: list[str]  # performance file stems, for provenance and per-item tables
    label_mask: torch.Tensor | None = field(default=None, kw_only=True)  # [B] bool; None = all labelled
    tier: torch.Tensor | None = field(default=None, kw_only=True)  # [B] int (TIER_*); None = all T1
    augmented: "BatchBase | None" = field(default=None, kw_only=True)  # same items, augmented

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def labelled(self) -> torch.Tensor:
        """[B] bool: items whose ratings enter the regression and ranking losses."""
        if self.label_mask is None:
            return torch.ones(len(self), dtype=torch.bool, device=self.labels.device)
        return self.label_mask

    def to(self, device: torch.device | str):
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor) or isinstance(value, BatchBase):
                value = value.to(device)
            moved[f.name] = value
        return replace(self, **moved)


@dataclass
class NoteBatch(BatchBase):
    """Note-level score-aligned features for the HAN family.

    Hierarchy indices are per item, 0-based and contiguous (empty beats and
    measures removed, as in the reference). Every beat lies inside one measure.
    Padded positions (t >= lengths[b]) hold zeros everywhere.
    """

    features: torch.Tensor  # [B, T, D] float32, zero-padded
    lengths: torch.Tensor  # [B] int64, number of notes (>= 1)
    beat_index: torch.Tensor  # [B, T] int64, 0-based contiguous beat of each note
    measure_index: torch.Tensor  # [B, T] int64, 0-based contiguous measure of each note
    voice: torch.Tensor  # [B, T] int64, MusicXML voice (+10 * part); 0 = inserted extra note / padding

    @property
    def mask(self) -> torch.Tensor:
        """[B, T] bool, True on real notes."""
        steps = torch.arange(self.features.shape[1], device=self.lengths.device)
        return steps.unsqueeze(0) < self.lengths.unsqueeze(1)


@dataclass
class FramesBatch(BatchBase):
    """Pre-extracted encoder frames (a ``data.frames`` input), zero-padded, float32."""

    frames: torch.Tensor  # [B, T, D] float32
    lengths: torch.Tensor  # [B] int64, real frames per item (>= 1)

    @property
    def mask(self) -> torch.Tensor:
        """[B, T] bool, True on real frames."""
        steps = torch.arange(self.frames.shape[1], device=self.lengths.device)
        return steps.unsqueeze(0) < self.lengths.unsqueeze(1)
