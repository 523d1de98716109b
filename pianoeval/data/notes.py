"""Model-ready note tensors: normalisation on training folds, Dataset, collate.

Z-scoring statistics are fitted on the training segments of a fold only (the
reference fitted them on the full pool, test set included; we do not). As in the
reference: population standard deviation (1 where it would be 0); inserted rows'
zeros count; a per-segment scalar (``qpm_primo``) contributes one value per segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pianoeval.data.batch import NoteBatch
from pianoeval.data.cache import NoteFeatureStore
from pianoeval.data.features import FEATURE_SETS, Column
from pianoeval.data.percepiano import Segment
from pianoeval.errors import ConfigError

PER_SEGMENT_SOURCES = ("qpm_primo",)


def feature_columns(feature_set: str) -> tuple[Column, ...]:
    if feature_set not in FEATURE_SETS:
        raise ConfigError(f"data.feature_set: unknown feature set {feature_set!r} (allowed: {', '.join(FEATURE_SETS)})")
    return FEATURE_SETS[feature_set]


def _segment_rows(store: NoteFeatureStore, segment_ids) -> np.ndarray:
    return np.concatenate([np.arange(0)] + [np.arange(store.rows(s).start, store.rows(s).stop) for s in segment_ids])


@dataclass(frozen=True)
class NormStats:
    """Per-column mean / std for the z-scored columns of a feature set."""

    feature_set: str
    columns: tuple[str, ...]
    mean: np.ndarray  # [D] (0 for unscaled columns)
    std: np.ndarray  # [D] (1 for unscaled columns)

    @classmethod
    def fit(cls, store: NoteFeatureStore, train_ids, feature_set: str) -> "NormStats":
        cols = feature_columns(feature_set)
        mean = np.zeros(len(cols))
        std = np.ones(len(cols))
        rows = _segment_rows(store, train_ids)
        first_rows = np.array([store.rows(s).start for s in train_ids])
        for k, col in enumerate(cols):
            if col.scaling != "z":
                continue
            values = store.column(col.source)[first_rows if col.source in PER_SEGMENT_SOURCES else rows].astype(np.float64)
            mean[k] = values.mean()
            sd = values.std()  # population std, as the reference
            std[k] = sd if sd > 0 else 1.0
        return cls(feature_set, tuple(c.name for c in cols), mean, std)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        return ((raw - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"feature_set": self.feature_set, "columns": list(self.columns),
                "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "NormStats":
        return cls(data["feature_set"], tuple(data["columns"]), np.asarray(data["mean"]), np.asarray(data["std"]))


class NoteDataset(torch.utils.data.Dataset):
    """Normalised note features of some segments; items are collated by ``collate_notes``.

    Features of all items are computed once at construction (one vectorised pass),
    so ``__getitem__`` only slices.
    """

    def __init__(self, store: NoteFeatureStore, segments: dict[str, Segment], segment_ids, stats: NormStats,
                 group_of: dict[str, int]):
        missing = [s for s in segment_ids if s not in store]
        if missing:
            raise KeyError(f"no note features for {len(missing)} segments (e.g. {missing[0]}): they were skipped at extraction")
        self.segment_ids = list(segment_ids)
        cols = feature_columns(stats.feature_set)
        rows = _segment_rows(store, self.segment_ids)
        raw = store.values[rows][:, store.source_indices([c.source for c in cols])]
        self.features = torch.from_numpy(stats.apply(raw))
        lengths = np.array([store.rows(s).stop - store.rows(s).start for s in self.segment_ids])
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])
        self.beat_index = torch.from_numpy(store.index["beat_index"][rows])
        self.measure_index = torch.from_numpy(store.index["measure_index"][rows])
        self.voice = torch.from_numpy(store.index["voice"][rows])
        self.labels = torch.tensor([segments[s].labels for s in self.segment_ids], dtype=torch.float32)
        self.label_std = torch.tensor([segments[s].label_std for s in self.segment_ids], dtype=torch.float32)
        self.group = torch.tensor([group_of[segments[s].score_key] for s in self.segment_ids], dtype=torch.int64)
        self.input_dim = len(cols)

    def __len__(self) -> int:
        return len(self.segment_ids)

    def __getitem__(self, i: int) -> dict:
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return {
            "features": self.features[lo:hi],
            "beat_index": self.beat_index[lo:hi],
            "measure_index": self.measure_index[lo:hi],
            "voice": self.voice[lo:hi],
            "labels": self.labels[i],
            "label_std": self.label_std[i],
            "group": self.group[i],
            "segment_id": self.segment_ids[i],
        }


def collate_notes(items: list[dict]) -> NoteBatch:
    """Zero-pad a list of dataset items into a NoteBatch."""
    lengths = torch.tensor([len(it["features"]) for it in items], dtype=torch.int64)
    pad = torch.nn.utils.rnn.pad_sequence
    return NoteBatch(
        labels=torch.stack([it["labels"] for it in items]),
        label_std=torch.stack([it["label_std"] for it in items]),
        group=torch.stack([it["group"] for it in items]),
        segment_ids=[it["segment_id"] for it in items],
        features=pad([it["features"] for it in items], batch_first=True),
        lengths=lengths,
        beat_index=pad([it["beat_index"] for it in items], batch_first=True),
        measure_index=pad([it["measure_index"] for it in items], batch_first=True),
        voice=pad([it["voice"] for it in items], batch_first=True),
    )
