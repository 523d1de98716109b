"""The labelled PercePiano dataset: segments, a label set, splits and (lazily) note features.

    >>> from pianoeval.data import load_percepiano
    >>> data = load_percepiano()                 # 1,202 labelled segments
    >>> data.fold("performer", 0).sizes()        # {'train': 834, 'validation': 175, 'test': 193}

``percepiano(labels)`` and ``percepiano_labels(labels)`` are the per-process copies every
data module reads (a Ray actor reused across trials loads PercePiano once).
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from pianoeval.data.cache import NoteFeatureStore, build_store
from pianoeval.data.folds import check_fold_file, read_fold_file
from pianoeval.data.items import LabelledItems
from pianoeval.data.labels import DEFAULT_LABELS, apply_label_set, load_label_set
from pianoeval.data.notes import NoteDataset, NormStats
from pianoeval.data.percepiano import load_segments, same_piece_pairs, score_groups
from pianoeval.data.splits import SPLIT_NAMES, FoldSplit, make_fold
from pianoeval.errors import ConfigError
from pianoeval.paths import percepiano_root


class PercePiano:
    """The labelled segments, their splits and (lazily) their note features.

    ``labels`` is a ``data.labels`` value: the segments carry that label set's values
    (``label_names`` its dimensions) and the segments it has no label for are left out
    (counted in ``skipped``); ``all_segments`` keeps every segment with its 19 labels."""

    def __init__(self, root: Path | None = None, warn=print, labels: str = DEFAULT_LABELS):
        self.root = Path(root) if root is not None else percepiano_root()
        self._warn = warn
        self.all_segments, self.skipped = load_segments(self.root, warn=warn)
        self.label_set = load_label_set(labels, self.all_segments)
        self.segments, label_skips = apply_label_set(self.all_segments, self.label_set, warn)
        self.skipped.update(label_skips)
        if labels != DEFAULT_LABELS:
            warn(f"[labels] {self.label_set.describe()}")
        self.by_id = {s.segment_id: s for s in self.segments}
        self.labels = np.array([s.labels for s in self.segments], dtype=np.float32)
        self.label_std = np.array([s.label_std for s in self.segments], dtype=np.float32)
        self.label_names = self.label_set.dimensions
        #: score_key -> integer group id (same id = same music = a ranking pair)
        self.group_of = {key: i for i, key in enumerate(sorted(score_groups(self.segments)))}

    def __len__(self) -> int:
        return len(self.segments)

    def fold(self, split: str, fold: int, pieces: str | Path | None = None,
             allow_piece_leakage: bool = False) -> FoldSplit:
        """Fold ``fold`` of a built-in split (``performer``, ``piece``) or of a folds file
        (every fold of the file checked first, see ``pianoeval.data.folds``). Ids come in
        segment order whatever the file's order."""
        if split in SPLIT_NAMES:
            return make_fold(self.segments, split, fold)
        folds = read_fold_file(split)
        if not 0 <= fold < len(folds.folds):
            raise ConfigError(f"data.fold: {fold} is out of range: {split} has {len(folds.folds)} folds "
                              f"(allowed: 0-{len(folds.folds) - 1})")
        check_fold_file(folds, set(self.by_id), {s.segment_id for s in self.all_segments}, pieces,
                        allow_piece_leakage, self._warn)
        chosen = folds.folds[fold]
        sides = [set(chosen.train), set(chosen.val), set(chosen.test)]
        ids = [tuple(s.segment_id for s in self.segments if s.segment_id in side) for side in sides]
        return FoldSplit(str(split), fold, *ids)

    def pairs(self) -> np.ndarray:
        """Indices (into ``segments``) of every same-music pair: [P, 2]."""
        return same_piece_pairs(self.segments)

    @cached_property
    def note_features(self) -> NoteFeatureStore:
        # every segment, whatever the label set: the cache is keyed by the segment list
        return build_store(self.root, self.all_segments, warn=self._warn)

    def note_datasets(self, split: str, fold: int, feature_set: str, pieces: str | Path | None = None,
                      allow_piece_leakage: bool = False):
        """(train, validation, test, stats) NoteDatasets; stats fitted on train only.

        Segments whose features could not be extracted are left out (they were
        reported at extraction)."""
        store = self.note_features
        parts = self.fold(split, fold, pieces, allow_piece_leakage)
        keep = [[s for s in ids if s in store] for ids in (parts.train, parts.validation, parts.test)]
        stats = NormStats.fit(store, keep[0], feature_set)
        return (*(NoteDataset(store, self.by_id, ids, stats, self.group_of) for ids in keep), stats)

    def labelled_items(self, split: str, fold: int, pieces: str | Path | None = None,
                       allow_piece_leakage: bool = False) -> tuple[LabelledItems, LabelledItems, LabelledItems]:
        """(train, validation, test) labels and music groups of every segment of the fold; no features."""
        parts = self.fold(split, fold, pieces, allow_piece_leakage)
        return tuple(LabelledItems.from_segments(self.by_id, ids, self.group_of)
                     for ids in (parts.train, parts.validation, parts.test))


def load_percepiano(root: Path | None = None, warn=print, labels: str = DEFAULT_LABELS) -> PercePiano:
    """The PercePiano dataset (bundled copy unless ``root`` or $PIANOEVAL_PERCEPIANO),
    labelled with the label set ``labels`` (a ``data.labels`` value)."""
    return PercePiano(root, warn=warn, labels=labels)


@lru_cache(maxsize=4)
def percepiano(labels: str = DEFAULT_LABELS) -> PercePiano:
    """The dataset labelled with ``labels`` (a ``data.labels`` value) and its note
    features, once per process and label set."""
    data = percepiano_labels(labels)
    data.note_features
    return data


@lru_cache(maxsize=4)
def percepiano_labels(labels: str = DEFAULT_LABELS) -> PercePiano:
    """The dataset's segments, labels (the label set ``labels``) and splits, no note
    features, once per process and label set."""
    return load_percepiano(labels=labels)
