"""The PercePiano data layer.

    >>> from pianoeval.data import load_percepiano
    >>> data = load_percepiano()                 # 1,202 labelled segments
    >>> data.labels.shape                        # (1202, 19)
    >>> data.fold("performer", 0).sizes()        # {'train': 834, 'validation': 175, 'test': 193}
    >>> train, val, test, stats = data.note_datasets("performer", 0, "full")

``Segment`` holds a segment's metadata and labels, ``make_fold`` the splits,
``build_store`` the cached score-aligned note features, ``NoteDataset`` /
``collate_notes`` the model-ready tensors (``NoteBatch``).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

from pianoeval.data.batch import BatchBase, NoteBatch
from pianoeval.data.cache import NoteFeatureStore, build_store
from pianoeval.data.features import FEATURE_SETS, FULL_COLUMNS, PERF_ONLY_COLUMNS, Column
from pianoeval.data.labels import LabelledItems
from pianoeval.data.notes import NoteDataset, NormStats, collate_notes, feature_columns
from pianoeval.data.percepiano import LABEL_NAMES, NUM_LABELS, Segment, load_segments, same_piece_pairs, score_groups
from pianoeval.data.splits import NUM_FOLDS, SPLIT_NAMES, FoldSplit, make_fold
from pianoeval.paths import percepiano_root

__all__ = [
    "BatchBase", "Column", "FEATURE_SETS", "FULL_COLUMNS", "FoldSplit", "LABEL_NAMES", "LabelledItems", "NUM_FOLDS",
    "NUM_LABELS", "NormStats", "NoteBatch", "NoteDataset", "NoteFeatureStore", "PERF_ONLY_COLUMNS", "PercePiano",
    "SPLIT_NAMES", "Segment", "build_store", "collate_notes", "feature_columns", "load_percepiano", "load_segments",
    "make_fold", "same_piece_pairs",
]


class PercePiano:
    """The labelled segments, their splits and (lazily) their note features."""

    def __init__(self, root: Path | None = None, warn=print):
        self.root = Path(root) if root is not None else percepiano_root()
        self._warn = warn
        self.segments, self.skipped = load_segments(self.root, warn=warn)
        self.by_id = {s.segment_id: s for s in self.segments}
        self.labels = np.array([s.labels for s in self.segments], dtype=np.float32)
        self.label_std = np.array([s.label_std for s in self.segments], dtype=np.float32)
        self.label_names = LABEL_NAMES
        #: score_key -> integer group id (same id = same music = a ranking pair)
        self.group_of = {key: i for i, key in enumerate(sorted(score_groups(self.segments)))}

    def __len__(self) -> int:
        return len(self.segments)

    def fold(self, split: str, fold: int) -> FoldSplit:
        return make_fold(self.segments, split, fold)

    def pairs(self) -> np.ndarray:
        """Indices (into ``segments``) of every same-music pair: [P, 2]."""
        return same_piece_pairs(self.segments)

    @cached_property
    def note_features(self) -> NoteFeatureStore:
        return build_store(self.root, self.segments, warn=self._warn)

    def note_datasets(self, split: str, fold: int, feature_set: str):
        """(train, validation, test, stats) NoteDatasets; stats fitted on train only.

        Segments whose features could not be extracted are left out (they were
        reported at extraction)."""
        store = self.note_features
        parts = self.fold(split, fold)
        keep = [[s for s in ids if s in store] for ids in (parts.train, parts.validation, parts.test)]
        stats = NormStats.fit(store, keep[0], feature_set)
        return (*(NoteDataset(store, self.by_id, ids, stats, self.group_of) for ids in keep), stats)

    def labelled_items(self, split: str, fold: int) -> tuple[LabelledItems, LabelledItems, LabelledItems]:
        """(train, validation, test) labels and music groups of every segment of the fold; no features."""
        parts = self.fold(split, fold)
        return tuple(LabelledItems.from_segments(self.by_id, ids, self.group_of)
                     for ids in (parts.train, parts.validation, parts.test))


def load_percepiano(root: Path | None = None, warn=print) -> PercePiano:
    """The PercePiano dataset (bundled copy unless ``root`` or $PIANOEVAL_PERCEPIANO)."""
    return PercePiano(root, warn=warn)
