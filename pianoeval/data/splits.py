"""Train / validation / test splits of PercePiano.

* ``performer``: the upstream performer split, exactly. Test = performer ids 1 and 2;
  validation fold k = ids 2k+3 and 2k+4; everything else trains (``Score``, ``Score2``
  and ids >= 11 included). Beethoven performer numbers are first remapped through
  [1, 2, 3, 4, 7, 11, 14, 18, 19, 22, 24, 26] -> 0..11, as upstream does.
* ``piece``: a piece-stratified 4-fold split with a fixed held-out test set, defined
  here (the upstream one cannot be reproduced). Performances are grouped by score
  segment (``Segment.score_key``), so no score segment is on both sides of any split.
  Strata are works (``Segment.work``: Beethoven WoO 80, Schubert D960 mv2 and mv3,
  Schubert D935 no. 3), since each Beethoven variation is a single score segment.
  Within each work the groups are ordered by a hash of their key (deterministic from
  the file names alone); groups go to test until it holds 15% of the work's
  performances, and each remaining group goes to the fold with the fewest of that
  work's performances so far. The result is written to ``splits/piece_split.json``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pianoeval.data.percepiano import Segment
from pianoeval.errors import ConfigError, DataError

NUM_FOLDS = 4
TEST_FRACTION = 0.15
BEETHOVEN_PERFORMERS = [1, 2, 3, 4, 7, 11, 14, 18, 19, 22, 24, 26]
PIECE_SPLIT_FILE = Path(__file__).resolve().parent / "splits" / "piece_split.json"
SPLIT_NAMES = ("performer", "piece")


@dataclass(frozen=True)
class FoldSplit:
    """Segment ids of one fold: train / validation / test (test is shared by all folds)."""

    split: str
    fold: int
    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def performer_id(segment: Segment) -> int | None:
    """The upstream performer id (Beethoven remapped); None for Score / Score2."""
    if segment.is_score_rendering:
        return None
    number = int(segment.performer)
    if segment.composer == "Beethoven":
        if number not in BEETHOVEN_PERFORMERS:
            raise DataError(f"{segment.segment_id}: Beethoven performer {number} is not in the upstream list")
        return BEETHOVEN_PERFORMERS.index(number)
    return number


def performer_role(segment: Segment, fold: int) -> str:
    pid = performer_id(segment)
    if pid in (1, 2):
        return "test"
    if pid in (2 * fold + 3, 2 * fold + 4):
        return "validation"
    return "train"


def _stable_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def build_piece_split(segments: list[Segment]) -> dict:
    """The piece split as a JSON-ready dict: score_key -> "test" | fold number."""
    by_work: dict[str, dict[str, int]] = {}
    for seg in segments:
        by_work.setdefault(seg.work, {}).setdefault(seg.score_key, 0)
        by_work[seg.work][seg.score_key] += 1
    assignment: dict[str, str | int] = {}
    for work in sorted(by_work):
        sizes = by_work[work]
        total = sum(sizes.values())
        in_test = 0
        per_fold = [0] * NUM_FOLDS
        for key in sorted(sizes, key=_stable_hash):
            # A group of one performance cannot be a ranking pair; upstream keeps
            # only multi-performance groups in test, and so do we.
            if in_test < TEST_FRACTION * total and sizes[key] > 1:
                assignment[key] = "test"
                in_test += sizes[key]
            else:
                fold = per_fold.index(min(per_fold))
                assignment[key] = fold
                per_fold[fold] += sizes[key]
    return {
        "description": "PercePiano piece-stratified split: score segment -> 'test' or fold 0-3",
        "test_fraction": TEST_FRACTION,
        "num_folds": NUM_FOLDS,
        "assignment": dict(sorted(assignment.items())),
    }


def write_piece_split(segments: list[Segment], path: Path = PIECE_SPLIT_FILE) -> dict:
    split = build_piece_split(segments)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(split, indent=1) + "\n")
    return split


def load_piece_split(segments: list[Segment], path: Path = PIECE_SPLIT_FILE) -> dict:
    """Read the committed piece split; every segment's score_key must be assigned."""
    if not path.is_file():
        raise DataError(f"{path}: piece split file missing; rebuild it with `python runners/prepare_data.py --splits`")
    split = json.loads(path.read_text())
    missing = sorted({s.score_key for s in segments} - set(split["assignment"]))
    if missing:
        raise DataError(
            f"{path}: {len(missing)} score segments are not assigned (e.g. {missing[0]}); "
            "rebuild it with `python runners/prepare_data.py --splits`"
        )
    return split


def make_fold(segments: list[Segment], split: str, fold: int) -> FoldSplit:
    """Segment ids of ``fold`` under ``split`` ("performer" or "piece")."""
    if split not in SPLIT_NAMES:
        raise ConfigError(f"data.split: unknown split {split!r} (allowed: {', '.join(SPLIT_NAMES)})")
    if not 0 <= fold < NUM_FOLDS:
        raise ConfigError(f"data.fold: {fold} is out of range (allowed: 0-{NUM_FOLDS - 1})")
    roles: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    if split == "performer":
        for seg in segments:
            roles[performer_role(seg, fold)].append(seg.segment_id)
    else:
        assignment = load_piece_split(segments)["assignment"]
        for seg in segments:
            where = assignment[seg.score_key]
            role = "test" if where == "test" else ("validation" if where == fold else "train")
            roles[role].append(seg.segment_id)
    return FoldSplit(split, fold, tuple(roles["train"]), tuple(roles["validation"]), tuple(roles["test"]))
