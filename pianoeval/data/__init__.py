"""The PercePiano data layer.

    >>> from pianoeval.data import load_percepiano
    >>> data = load_percepiano()                 # 1,202 labelled segments
    >>> data.labels.shape                        # (1202, 19)
    >>> data.fold("performer", 0).sizes()        # {'train': 834, 'validation': 175, 'test': 193}
    >>> train, val, test, stats = data.note_datasets("performer", 0, "full")

``Segment`` holds a segment's metadata and labels, ``make_fold`` the splits,
``build_store`` the cached score-aligned note features, ``NoteDataset`` /
``collate_notes`` the model-ready tensors (``NoteBatch``).

Other label sets and fold files (``pianoeval.data.labels``, ``pianoeval.data.folds``)::

    >>> data = load_percepiano(labels="percepiano_categories")   # 8 composite dimensions
    >>> data.fold("my_folds.json", 2, pieces="pieces.json")      # audited for piece leakage

The names below are resolved on first use (``__getattr__``), so importing one light module
of this package (``pianoeval.data.folds`` to check a folds file while a config resolves)
does not import torch and the note-feature stack: a config error stays under a second.
"""

from importlib import import_module

#: public name -> the module of this package that defines it
_EXPORTS = {
    "BatchBase": "batch", "NoteBatch": "batch",
    "NoteFeatureStore": "cache", "build_store": "cache",
    "PercePiano": "dataset", "load_percepiano": "dataset",
    "FEATURE_SETS": "features", "FULL_COLUMNS": "features", "PERF_ONLY_COLUMNS": "features", "Column": "features",
    "check_fold_file": "folds", "read_fold_file": "folds",
    "check_inputs": "inputs", "input_files": "inputs", "leakage_warnings": "inputs", "fold_has_test": "inputs",
    "check_test_metrics": "inputs",
    "LabelledItems": "items",
    "DEFAULT_LABELS": "labels", "apply_label_set": "labels", "load_label_set": "labels",
    "NoteDataset": "notes", "NormStats": "notes", "collate_notes": "notes", "feature_columns": "notes",
    "LABEL_NAMES": "percepiano", "NUM_LABELS": "percepiano", "Segment": "percepiano", "load_segments": "percepiano",
    "same_piece_pairs": "percepiano", "score_groups": "percepiano",
    "NUM_FOLDS": "splits", "SPLIT_NAMES": "splits", "FoldSplit": "splits", "make_fold": "splits",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # lazy: a name's module is imported when the name is first used (keeps config errors under 1 s)
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pianoeval.data' has no attribute {name!r}")
    return getattr(import_module(f"pianoeval.data.{_EXPORTS[name]}"), name)
