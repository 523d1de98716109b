"""The symbolic corpus: which MIDI (and which part of it) each item is.

Two sources:

* **PercePiano** (bundled): every rated performance segment is one item, the whole
  file. ``music_key`` is the segment's ``score_key`` (same key = same notes).
* **ASAP** (``pianoeval.paths.asap_root()``): 1,067 performances of 222 pieces, minutes
  long, so each is cut into windows of ``WINDOW_BARS`` (8) bars at ASAP's annotated
  downbeats, the size of a PercePiano segment (median 8 bars, ~15-25 s). Window ``k``
  of a performance spans downbeats ``8k .. 8k+8`` (the first window starts at 0, so a
  pick-up belongs to it); a final remainder of at least ``WINDOW_BARS // 2`` bars is a
  window of its own, a shorter one is dropped. Windows shorter than
``MIN_WINDOW_SECONDS`` are dropped too (annotation glitches, one warning line per
performance); the numbering of the others is kept.

Cross-performer groups (the T3 tier): ASAP annotates every performance beat by beat
against its score, so window ``k`` of two performances of one score holds the same
bars -- when both performances have as many downbeats as the score (31 of 1,067 do
not: repeats played differently). Those windows get ``music_key = "<folder>#w<k>"``;
the others get ``""`` and serve pre-training only.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from pianoeval.errors import DataError
from pianoeval.paths import asap_root

WINDOW_BARS = 8
#: Shorter windows are dropped: a few ASAP annotation files squeeze dozens of downbeats
#: into a few milliseconds where a passage was skipped (e.g. Beethoven 18-2, Schmitt01).
MIN_WINDOW_SECONDS = 2.0
PERCEPIANO, ASAP = "percepiano", "asap"
#: ASAP music groups are numbered from here, so they never meet PercePiano's group ids.
ASAP_GROUP_OFFSET = 1_000_000


@dataclass(frozen=True)
class SymbolicItem:
    """One performance segment of the symbolic corpus."""

    item_id: str  # PercePiano segment id, or "asap:<performance path>#w<k>"
    source: str  # PERCEPIANO or ASAP
    path: str  # MIDI file, relative to the source's root
    start: float  # window start, seconds (0 for a whole file)
    end: float | None  # window end, seconds (None: to the end of the file)
    music_key: str  # same key = same notes by another performer; "" = no partner known
    piece: str
    performer: str


def percepiano_items(data) -> list[SymbolicItem]:
    """One item per labelled PercePiano segment (``data`` = ``load_percepiano()``)."""
    return [SymbolicItem(seg.segment_id, PERCEPIANO, f"performance_midi/{seg.file_stem}.mid", 0.0, None,
                         seg.score_key, seg.piece, seg.performer) for seg in data.segments]


def read_downbeats(path: Path) -> list[float]:
    """Downbeat times (seconds) from an ASAP ``*_annotations.txt`` file.

    Each line is ``time<TAB>time<TAB>label`` where the label starts with ``db`` for a
    downbeat (``db,<time signature>,<key>`` when they change) and ``b`` for a beat."""
    downbeats = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            raise DataError(f"{path}: line {number}: expected 'time<TAB>time<TAB>label', got {line[:60]!r}")
        try:
            time = float(parts[0])
        except ValueError:
            raise DataError(f"{path}: line {number}: time {parts[0]!r} is not a number") from None
        if parts[2].startswith("db"):
            downbeats.append(time)
    return downbeats


def windows_at_downbeats(downbeats: list[float], bars: int = WINDOW_BARS) -> list[tuple[float, float | None]]:
    """(start, end) of each window of ``bars`` bars; see the module docstring."""
    windows: list[tuple[float, float | None]] = []
    k = 0
    while (k + 1) * bars < len(downbeats):
        windows.append((0.0 if k == 0 else downbeats[k * bars], downbeats[(k + 1) * bars]))
        k += 1
    remainder = len(downbeats) - k * bars
    if remainder >= bars // 2 or (k == 0 and remainder > 0):
        windows.append((0.0 if k == 0 else downbeats[k * bars], None))
    return windows


def asap_items(root: Path | None = None, folders: list[str] | None = None, bars: int = WINDOW_BARS,
               warn=print) -> tuple[list[SymbolicItem], dict[str, int]]:
    """Windows of every ASAP performance listed in ``metadata.csv``.

    ``folders`` keeps only those piece folders (e.g. ``["Bach/Fugue/bwv_848"]``).
    Returns ``(items, skipped)``: a performance whose annotation file is missing or
    malformed is skipped with one warning line and counted by reason."""
    root = Path(root) if root is not None else asap_root()
    metadata = root / "metadata.csv"
    if not metadata.is_file():
        raise DataError(f"{metadata}: not found; point PIANOEVAL_ASAP at an ASAP checkout")
    with metadata.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    needed = {"folder", "midi_performance", "performance_annotations", "midi_score_annotations"}
    if rows and not needed <= set(rows[0]):
        raise DataError(f"{metadata}: missing columns {sorted(needed - set(rows[0]))}")
    score_downbeats: dict[str, int] = {}
    items, skipped = [], {"missing_file": 0, "bad_annotations": 0, "short_window": 0}
    for row in rows:
        if folders is not None and row["folder"] not in folders:
            continue
        midi, annotations = root / row["midi_performance"], root / row["performance_annotations"]
        if not midi.is_file() or not annotations.is_file():
            warn(f"[symbolic] skip {row['midi_performance']}: MIDI or annotation file is missing")
            skipped["missing_file"] += 1
            continue
        try:
            downbeats = read_downbeats(annotations)
            if row["folder"] not in score_downbeats:
                score_downbeats[row["folder"]] = len(read_downbeats(root / row["midi_score_annotations"]))
        except (DataError, OSError, UnicodeDecodeError) as err:
            warn(f"[symbolic] skip {row['midi_performance']}: {str(err).splitlines()[0]}")
            skipped["bad_annotations"] += 1
            continue
        aligned = len(downbeats) == score_downbeats[row["folder"]]
        performer = Path(row["midi_performance"]).stem
        windows = windows_at_downbeats(downbeats, bars)
        short = [k for k, (start, end) in enumerate(windows) if end is not None and end - start < MIN_WINDOW_SECONDS]
        if short:
            warn(f"[symbolic] {row['midi_performance']}: dropped {len(short)} window(s) shorter than "
                 f"{MIN_WINDOW_SECONDS:g} s (squeezed downbeat annotations)")
            skipped["short_window"] += len(short)
        for k, (start, end) in enumerate(windows):
            if k in short:
                continue
            items.append(SymbolicItem(f"asap:{row['midi_performance']}#w{k}", ASAP, row["midi_performance"], start, end,
                                      f"{row['folder']}#w{k}" if aligned else "", row["folder"], performer))
    return items, skipped


def music_groups(items: list[SymbolicItem], offset: int = 0, min_size: int = 2) -> dict[str, int]:
    """``music_key -> group id`` for keys shared by at least ``min_size`` items.

    Ids are ``offset + rank`` of the sorted keys, so they are stable across runs."""
    counts: dict[str, int] = {}
    for item in items:
        if item.music_key:
            counts[item.music_key] = counts.get(item.music_key, 0) + 1
    keys = sorted(k for k, n in counts.items() if n >= min_size)
    return {key: offset + i for i, key in enumerate(keys)}
