"""The labelled items of one part of a fold as plain arrays, for predictors fitted in closed form.

A parameter-free reference predictor (``global_mean``, ``music_mean``) reads nothing but
the training labels and which music each item plays; a probe on pooled inputs
(``ridge_probe``) also reads each item's note-feature matrix. ``LabelledItems`` carries
exactly that: the fields every batch has (labels, label_std, group, segment ids) and,
when the items come from a note dataset, one ``[notes, D]`` matrix per item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pianoeval.data.percepiano import Segment


@dataclass(frozen=True)
class LabelledItems:
    """Items of one fold part (train, validation or test), in a fixed order."""

    segment_ids: tuple[str, ...]
    labels: np.ndarray  # [N, L] float64, ratings / 7
    label_std: np.ndarray  # [N, L] float64, rater std / 7
    group: np.ndarray  # [N] int64, id of the music (Segment.score_key): equal = same excerpt
    notes: tuple[np.ndarray, ...] | None = None  # N matrices [notes, D] of normalised note features

    def __len__(self) -> int:
        return len(self.segment_ids)

    @classmethod
    def from_segments(cls, segments: dict[str, Segment], segment_ids, group_of: dict[str, int]) -> "LabelledItems":
        """The items ``segment_ids`` (labels only); ``group_of`` maps a score key to its group id."""
        ids = tuple(segment_ids)
        width = len(next(iter(segments.values())).labels) if segments else 0  # no ids (a fold without test): [0, L]
        return cls(
            segment_ids=ids,
            labels=np.array([segments[s].labels for s in ids], dtype=np.float64).reshape(len(ids), width),
            label_std=np.array([segments[s].label_std for s in ids], dtype=np.float64).reshape(len(ids), width),
            group=np.array([group_of[segments[s].score_key] for s in ids], dtype=np.int64),
        )

    def subset(self, indices) -> "LabelledItems":
        """The items at ``indices``, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        return LabelledItems(
            segment_ids=tuple(self.segment_ids[i] for i in indices), labels=self.labels[indices],
            label_std=self.label_std[indices], group=self.group[indices],
            notes=None if self.notes is None else tuple(self.notes[i] for i in indices))
