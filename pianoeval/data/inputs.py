"""The ``data.*`` inputs that are files (label set, folds, pieces): checked before a run
starts, and recorded (path + content hash) with its results."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from pianoeval.data.folds import check_fold_file, read_fold_file
from pianoeval.data.labels import DEFAULT_LABELS, apply_label_set, label_source, load_label_set
from pianoeval.data.percepiano import load_segments
from pianoeval.data.splits import NUM_FOLDS, SPLIT_NAMES
from pianoeval.errors import ConfigError
from pianoeval.paths import percepiano_root


def _stamp(path: str | Path | None) -> tuple:
    if path is None or not Path(path).is_file():
        return ()
    stat = Path(path).stat()
    return (str(path), stat.st_mtime_ns, stat.st_size)


def check_inputs(labels: str, split: str, fold: int, pieces: str | None = None,
                 allow_piece_leakage: bool = False) -> None:
    """Raise ConfigError / DataError (one line each) on a bad ``data.labels``,
    ``data.split``, ``data.fold`` or ``data.pieces``; label values and every fold of a
    folds file are checked in full. Quiet: the run's own load reports skips and warnings."""
    _, label_path = label_source(labels)
    if split in SPLIT_NAMES:
        if not 0 <= fold < NUM_FOLDS:
            raise ConfigError(f"data.fold: {fold} is out of range for the {split} split (allowed: 0-{NUM_FOLDS - 1})")
        if pieces is not None:
            raise ConfigError(f"data.pieces: {pieces} is only read with a folds file as data.split (got {split!r})")
        if labels == DEFAULT_LABELS:
            return
    _check_files(labels, split, fold, pieces, allow_piece_leakage, str(percepiano_root()),
                 _stamp(label_path), _stamp(split if split not in SPLIT_NAMES else None), _stamp(pieces))


@lru_cache(maxsize=16)
def _check_files(labels, split, fold, pieces, allow_piece_leakage, root, *stamps) -> None:
    quiet = lambda message: None  # noqa: E731
    segments, _ = load_segments(Path(root), warn=quiet)
    label_set = load_label_set(labels, segments)
    labelled, _ = apply_label_set(segments, label_set, quiet)
    if split in SPLIT_NAMES:
        return
    folds = read_fold_file(split)
    if not 0 <= fold < len(folds.folds):
        raise ConfigError(f"data.fold: {fold} is out of range: {split} has {len(folds.folds)} folds "
                          f"(allowed: 0-{len(folds.folds) - 1})")
    if pieces is not None and not Path(pieces).is_file():
        raise ConfigError(f"data.pieces: {pieces}: " + ("is a folder, not a file (give the pieces .json)"
                                                        if Path(pieces).is_dir() else "file not found"))
    check_fold_file(folds, {s.segment_id for s in labelled}, {s.segment_id for s in segments}, pieces,
                    allow_piece_leakage, quiet)


def leakage_warnings(labels: str, split: str, pieces: str | None = None, allow_piece_leakage: bool = False,
                     fold: int | None = None) -> list[str]:
    """The WARNING lines of a folds file whose leakage ``data.allow_piece_leakage`` lets
    through: fold ``fold``'s, or one per leaking fold; run summaries and reports carry them."""
    if split in SPLIT_NAMES or not allow_piece_leakage:
        return []
    lines = _leakage_lines(labels, split, pieces, str(percepiano_root()), _stamp(label_source(labels)[1]),
                           _stamp(split), _stamp(pieces))
    return [line for line in lines if fold is None or f": fold {fold}: " in line]


def fold_has_test(split: str, fold: int) -> bool:
    """Whether fold ``fold`` of ``split`` has a test list: the built-in splits always do; a
    folds file may leave it out (its runs are then evaluated on validation only)."""
    return split in SPLIT_NAMES or bool(read_fold_file(split).folds[fold].test)


def check_test_metrics(metrics, split: str, folds, source: str) -> None:
    """A ``test/*`` metric over folds of a folds file that has no test list for one of them is
    a one-line error naming the metric, the file and the fold (the runs would have no test scores)."""
    wanted = [m for m in metrics if m.startswith("test/")]
    missing = [k for k in folds if not fold_has_test(split, k)] if wanted else []
    if missing:
        raise ConfigError(f"{source}: metrics: {wanted[0]} needs a test set, but {split} fold {missing[0]} has no "
                          "test list; compare on validation (metrics: [val/r2, val/pairwise_acc]) or give the "
                          "folds file a test list")


@lru_cache(maxsize=16)
def _leakage_lines(labels, split, pieces, root, *stamps) -> tuple[str, ...]:
    lines: list[str] = []
    segments, _ = load_segments(Path(root), warn=lambda message: None)
    labelled, _ = apply_label_set(segments, load_label_set(labels, segments), lambda message: None)
    check_fold_file(read_fold_file(split), {s.segment_id for s in labelled}, {s.segment_id for s in segments},
                    pieces, True, lines.append)
    return tuple(line.removeprefix("[split] ") for line in lines if "WARNING" in line)


def file_hash(path: str | Path) -> str:
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def input_files(labels: str, split: str, pieces: str | None = None) -> dict[str, dict[str, str]]:
    """``{"data.labels": {"path": ..., "sha256": ...}, ...}`` for each data input that is a file."""
    paths = {"data.labels": label_source(labels)[1], "data.split": None if split in SPLIT_NAMES else split,
             "data.pieces": pieces}
    return {key: {"path": str(Path(path).resolve()), "sha256": file_hash(path)}
            for key, path in paths.items() if path is not None}
