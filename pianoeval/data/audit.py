"""``runners/check_split.py``: audit a folds file, or write pianoeval's own splits as one.

    audit_split("folds.json", pieces="pieces.json", labels="labels.json")  # table; DataError on leakage
    write_split("piece", "written_piece.json")                              # the built-in piece split
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from pianoeval.data.folds import MIN_KEYS, audit_fold_file, builtin_fold_file, check_fold, read_fold_file, read_pieces
from pianoeval.data.labels import DEFAULT_LABELS, load_label_set
from pianoeval.data.percepiano import load_segments
from pianoeval.errors import DataError
from pianoeval.io import atomic_write_text, check_output_file
from pianoeval.paths import percepiano_root

_COLUMNS = ("fold", "side", "keys", "pieces", "performers", "leaked_pieces", "label_mean")


def _table(rows: list[dict]) -> str:
    columns = [c for c in _COLUMNS if any(c in row for row in rows)]
    cells = [[f"{row[c]:.3f}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
             for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def audit_split(folds_path: str | Path, pieces: str | None = None, labels: str | None = None,
                print_fn=print) -> int:
    """Print the per-fold table of ``folds_path`` and each problem of each fold; raise a
    DataError naming the file and the folds when any fold leaks pieces or has unknown or
    doubled keys. ``labels``: a ``data.labels`` value (default: PercePiano's 19)."""
    folds = read_fold_file(folds_path)
    segments, _ = load_segments(percepiano_root(), warn=lambda message: None)
    label_set = load_label_set(labels or DEFAULT_LABELS, segments)
    piece_map = read_pieces(pieces) if pieces is not None else None
    known = {s.segment_id for s in segments} | set(label_set.values)
    rows = audit_fold_file(folds, label_set.values, pieces)
    for row in rows:
        if isinstance(row.get("label_mean"), float) and math.isnan(row["label_mean"]):
            row["label_mean"] = "n/a"
    print_fn(f"{folds.path}: {len(folds.folds)} folds; pieces from "
             f"{pieces or 'PercePiano file names (piece + excerpt)'}; label means over {label_set.describe()}")
    print_fn(_table(rows))
    refused, first, leaks = [], "", False
    for k, fold in enumerate(folds.folds):
        found = check_fold(fold, k, set(label_set.values), known, piece_map)
        problems = [(found.unknown, "unknown keys"), (found.overlap, "keys on two sides"),
                    (found.doubled, "keys listed twice on one side"),
                    (found.small, f"sides with fewer than {MIN_KEYS} labelled keys"),
                    (found.no_piece, "keys without a piece"), (found.leaked, "leaked pieces (train and val/test)")]
        for items, what in problems:
            if items:
                line = f"fold {k}: {len(items)} {what}: {', '.join(items[:3])}" + (", ..." if len(items) > 3 else "")
                print_fn(line)
                first = first or line
        if any(items for items, _ in problems):
            refused.append(k)
        leaks = leaks or bool(found.leaked)
    if refused:
        hint = (" (a performer-style protocol that shares pieces on purpose needs data.allow_piece_leakage: true)"
                if leaks else "")
        raise DataError(f"{folds.path}: folds {refused} fail the audit; {first}{hint}")
    print_fn(f"{folds.path}: every fold passes (no piece on both sides, no unknown or doubled key, "
             f"at least {MIN_KEYS} labelled keys per side)")
    no_test = [k for k, fold in enumerate(folds.folds) if not fold.test]
    if no_test:
        print_fn(f"{folds.path}: folds {no_test} have no test list: their runs are evaluated on validation only")
    return 0


def write_split(split: str, out: str | Path, print_fn=print) -> int:
    """Write the built-in ``split`` (performer or piece) of every PercePiano segment as a folds file."""
    out = Path(out)
    if not out.is_dir() and out.parent and not out.parent.is_dir():
        raise DataError(f"--out {out}: folder {out.parent} does not exist")
    check_output_file(out, "--out", ".json")
    segments, _ = load_segments(percepiano_root(), warn=lambda message: None)
    folds = builtin_fold_file(segments, split)
    text = json.dumps(folds, indent=1) + "\n"
    if out.is_file() and out.read_bytes() != text.encode():  # a fold file runs may have read: never replaced
        raise DataError(f"--out {out}: exists and holds other folds; nothing was overwritten: give another --out "
                        "(or remove the file)")
    atomic_write_text(out, text)
    print_fn(f"wrote {out}: the {split} split, {len(folds['folds'])} folds "
             f"(validation {', '.join(str(len(f['val'])) for f in folds['folds'])}), test {len(folds['test'])} keys")
    return 0
