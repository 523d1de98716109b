"""Batches: what a DataLoader yields and what every registered model consumes.

Every batch type carries ``labels`` ([B, L] in (0, 1]), ``group`` ([B] score-segment
ids: equal values mean the same music, so the pair is a ranking pair) and
``segment_ids``. Encoders read the fields of their own input kind.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch


@dataclass
class BatchBase:
    labels: torch.Tensor  # [B, L] float32, PercePiano ratings / 7
    label_std: torch.Tensor  # [B, L] float32, rater std / 7
    group: torch.Tensor  # [B] int64, score-segment id (same music => ranking pair)
    segment_ids: list[str]  # performance file stems, for provenance and per-item tables

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str):
        moved = {
            f.name: (getattr(self, f.name).to(device) if isinstance(getattr(self, f.name), torch.Tensor)
                     else getattr(self, f.name))
            for f in fields(self)
        }
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
