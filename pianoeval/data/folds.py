"""Fold files: a research group's own train / validation / test protocol, audited on load.

``data.split: PATH`` names a folds JSON in one of two shapes::

    [{"train": [keys...], "val": [keys...], "test": [keys...]}, ...]   # test optional
    {"folds": [{"train": [...], "val": [...]}, ...], "test": [keys...]} # one shared test list

and ``data.fold: k`` picks fold k (0 <= k < the file's length). Every fold of the file
is checked when it is loaded; each problem is a one-line DataError naming the file, the
fold, the count and the first offenders:

* an unknown key (neither a PercePiano segment id nor a key of the label set);
* a key on two sides of a fold;
* piece leakage: a piece with keys on the training side and on the validation or test
  side. The piece of a key is its music, the score excerpt it performs
  (``Segment.score_key``, read from PercePiano's file-name pattern), or the piece that
  lists it in ``data.pieces: PATH`` (``{piece: [keys...]}``). ``data.allow_piece_leakage:
  true`` turns this refusal into a reported warning, for protocols that share music on
  purpose (PercePiano's performer split holds performers out and shares every piece).

A key of a PercePiano segment that the label set has no label for is left out of the
fold, counted and reported (the label set already reported it).

``builtin_fold_file`` writes pianoeval's own splits in this format, and ``audit_fold_file``
is the per-fold table of ``runners/check_split.py``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pianoeval.data.percepiano import Segment, parse_stem
from pianoeval.data.splits import NUM_FOLDS, SPLIT_NAMES, make_fold
from pianoeval.errors import ConfigError, DataError
from pianoeval.io import read_user_json

SIDES = ("train", "val", "test")
MIN_KEYS = 2  # per side of a fold: R2, correlations and the best-epoch choice need two items
_FIRST = 3


@dataclass(frozen=True)
class FileFold:
    """One fold as written in a folds file: keys per side (test may be empty)."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...] = ()

    def side(self, name: str) -> tuple[str, ...]:
        return getattr(self, name)


@dataclass(frozen=True)
class FoldFile:
    path: Path
    folds: tuple[FileFold, ...]

    def keys(self) -> set[str]:
        return {k for f in self.folds for side in SIDES for k in f.side(side)}


def _keys(value, path: Path, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise DataError(f"{path}: {where}: expected a list of segment keys (strings)")
    return tuple(value)


def _fold(raw, path: Path, k: int, shared_test: tuple[str, ...] | None) -> FileFold:
    if not isinstance(raw, dict):
        raise DataError(f"{path}: fold {k}: expected {{\"train\": [...], \"val\": [...]}}, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(SIDES))
    if unknown:
        raise DataError(f"{path}: fold {k}: unknown entry {unknown[0]!r} (a fold has train, val and optionally test)")
    for side in ("train", "val"):
        if side not in raw:
            raise DataError(f"{path}: fold {k}: {side} is missing (a fold has train, val and optionally test)")
    if shared_test is not None and "test" in raw:
        raise DataError(f"{path}: fold {k}: has its own test list beside the file's shared one; keep one of them")
    test = shared_test if shared_test is not None else _keys(raw.get("test", []), path, f"fold {k}: test")
    return FileFold(_keys(raw["train"], path, f"fold {k}: train"), _keys(raw["val"], path, f"fold {k}: val"), test)


def read_fold_file(path: str | Path) -> FoldFile:
    """Parse a folds JSON (either shape); a malformed file is a DataError naming it."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a folds file (give the folds .json)")
    if not path.is_file():
        raise DataError(f"{path}: folds file not found")
    raw = read_user_json(path)
    shared = None
    if isinstance(raw, dict):
        unknown = sorted(set(raw) - {"folds", "test", "description"})
        if "folds" not in raw or unknown:
            raise DataError(f"{path}: expected a list of folds or {{\"folds\": [...], \"test\": [...]}}"
                            + (f" (unknown entry {unknown[0]!r})" if unknown else ""))
        shared = _keys(raw.get("test", []), path, "test")
        raw = raw["folds"]
    if not isinstance(raw, list) or not raw:
        raise DataError(f"{path}: expected a non-empty list of folds [{{\"train\": [...], \"val\": [...]}}, ...], "
                        f"got {type(raw).__name__}")
    return FoldFile(path, tuple(_fold(f, path, k, shared) for k, f in enumerate(raw)))


def fold_count(path: str | Path) -> int:
    return len(read_fold_file(path).folds)


def folds_of_split(split: str) -> int:
    """How many folds ``data.split`` has: 4 for the built-in splits, a folds file's length."""
    return NUM_FOLDS if split in SPLIT_NAMES else fold_count(split)


def read_pieces(path: str | Path) -> dict[str, str]:
    """``{key: piece}`` from a ``{piece: [keys...]}`` JSON; a key in two pieces is an error."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a pieces file (give the pieces .json)")
    if not path.is_file():
        raise DataError(f"{path}: pieces file not found")
    raw = read_user_json(path)
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a mapping {{piece: [keys...]}}, got {type(raw).__name__}")
    piece_of: dict[str, str] = {}
    for piece, keys in raw.items():
        for key in _keys(keys, path, piece):
            if key in piece_of and piece_of[key] != piece:
                raise DataError(f"{path}: {key} is listed under two pieces ({piece_of[key]} and {piece})")
            piece_of[key] = piece
    return piece_of


def piece_of_key(key: str, pieces: dict[str, str] | None) -> str | None:
    """The piece of ``key``: from the pieces map, else PercePiano's name (piece + excerpt)."""
    if pieces is not None:
        return pieces.get(key)
    parts = parse_stem(key)
    return f"{parts['piece']}_{parts['segment']}" if parts else None


def performer_of_key(key: str) -> str | None:
    parts = parse_stem(key)
    return parts["performer"] if parts else None


@dataclass
class FoldCheck:
    """What the checks found in one fold (``leaked``: pieces on both sides, sorted)."""

    fold: int
    unknown: list[str] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)
    overlap: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)  # listed twice on one side (the run would use it once)
    small: list[str] = field(default_factory=list)  # "test (0 keys)": sides with fewer than MIN_KEYS labelled keys
    no_piece: list[str] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)


def check_fold(fold: FileFold, k: int, labelled: set[str], known: set[str],
               pieces: dict[str, str] | None) -> FoldCheck:
    found = FoldCheck(k)
    keys = [key for side in SIDES for key in fold.side(side)]
    found.unknown = sorted({key for key in keys if key not in labelled and key not in known})
    found.unlabelled = sorted({key for key in keys if key not in labelled and key in known})
    seen: dict[str, str] = {}
    for side in SIDES:
        for key in fold.side(side):
            if seen.setdefault(key, side) != side:
                found.overlap.append(key)
        found.doubled += [key for key, n in Counter(fold.side(side)).items() if n > 1]
    found.overlap = sorted(set(found.overlap))
    found.doubled = sorted(set(found.doubled))
    for side in SIDES:
        n = len({key for key in fold.side(side) if key in labelled})
        if n < MIN_KEYS and (side != "test" or fold.test):  # no test list at all: the fold has no test
            found.small.append(f"{side} ({n} labelled keys)")
    piece = {key: piece_of_key(key, pieces) for key in keys}
    found.no_piece = sorted({key for key, p in piece.items() if p is None})
    train = {piece[key] for key in fold.train if piece[key] is not None}
    held_out = {piece[key] for key in fold.val + fold.test if piece[key] is not None}
    found.leaked = sorted(train & held_out)
    return found


def _first(items: list[str]) -> str:
    return ", ".join(items[:_FIRST]) + (", ..." if len(items) > _FIRST else "")


def check_fold_file(folds: FoldFile, labelled: set[str], known: set[str], pieces_path: str | Path | None = None,
                    allow_piece_leakage: bool = False, warn=print) -> list[FoldCheck]:
    """Check every fold (see the module docstring); returns the findings, raising a
    DataError on the first refused one. Leakage, when allowed, is reported."""
    pieces = read_pieces(pieces_path) if pieces_path is not None else None
    where = f" of {pieces_path}" if pieces_path is not None else ""
    checks = [check_fold(f, k, labelled, known, pieces) for k, f in enumerate(folds.folds)]
    for c in checks:
        name = f"{folds.path}: fold {c.fold}"
        if c.unknown:
            raise DataError(f"{name}: {len(c.unknown)} unknown keys (not PercePiano segment ids nor keys of the "
                            f"label set): {_first(c.unknown)}")
        if c.overlap:
            raise DataError(f"{name}: {len(c.overlap)} keys are on two sides of the fold: {_first(c.overlap)}")
        if c.doubled:
            raise DataError(f"{name}: {len(c.doubled)} keys are listed twice on one side of the fold: "
                            f"{_first(c.doubled)} (list each key once)")
        if c.small:
            raise DataError(f"{name}: {c.small[0]}: a fold needs at least {MIN_KEYS} labelled keys on train and "
                            f"val, and on test when it has a test list (move keys to it, or label them in the "
                            f"label set)")
        if c.no_piece:
            raise DataError(f"{name}: {len(c.no_piece)} keys have no piece in the pieces map{where}: "
                            f"{_first(c.no_piece)}")
        if c.leaked:
            held_out = len({piece_of_key(k, pieces) for k in folds.folds[c.fold].val + folds.folds[c.fold].test})
            message = (f"{name}: piece leakage: {len(c.leaked)} of {held_out} validation/test pieces also have "
                       f"keys in training: {_first(c.leaked)}")
            if not allow_piece_leakage:
                raise DataError(f"{message} (fix the folds, or set data.allow_piece_leakage: true if your "
                                f"protocol shares pieces on purpose)")
            warn(f"[split] WARNING {message} (allowed by data.allow_piece_leakage)")
        if c.unlabelled:
            warn(f"[split] {name}: {len(c.unlabelled)} keys have no label in the label set and are left out: "
                 f"{_first(c.unlabelled)}")
    return checks


def builtin_fold_file(segments: list[Segment], split: str) -> dict:
    """pianoeval's built-in ``split`` (performer or piece) as a folds JSON with one shared test list."""
    if split not in SPLIT_NAMES:
        raise ConfigError(f"--write: unknown split {split!r} (allowed: {', '.join(SPLIT_NAMES)})")
    folds = [make_fold(segments, split, k) for k in range(NUM_FOLDS)]
    return {"description": f"pianoeval's built-in {split} split, written by runners/check_split.py",
            "folds": [{"train": list(f.train), "val": list(f.validation)} for f in folds],
            "test": list(folds[0].test)}


def audit_fold_file(folds: FoldFile, labels: dict[str, tuple[float, ...]] | None = None,
                    pieces_path: str | Path | None = None) -> list[dict]:
    """One row per fold and side: keys, pieces, performers, leaked pieces and, with
    ``labels``, the mean over dimensions of the side's mean label."""
    pieces = read_pieces(pieces_path) if pieces_path is not None else None
    rows = []
    for k, fold in enumerate(folds.folds):
        train = {piece_of_key(key, pieces) for key in fold.train} - {None}
        for side in SIDES:
            keys = fold.side(side)
            if not keys:
                continue
            side_pieces = {piece_of_key(key, pieces) for key in keys} - {None}
            row = {"fold": k, "side": side, "keys": len(keys), "pieces": len(side_pieces),
                   "performers": len({performer_of_key(key) for key in keys} - {None}),
                   "leaked_pieces": 0 if side == "train" else len(side_pieces & train)}
            if labels is not None:
                values = [labels[key] for key in keys if key in labels]
                row["label_mean"] = (sum(sum(v) / len(v) for v in values) / len(values)) if values else float("nan")
            rows.append(row)
    return rows
