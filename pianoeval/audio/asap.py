"""ASAP windows: short excerpts of several performances of the same music (tier T3).

``metadata.csv`` maps every performance to its piece (``folder``). For each piece
with at least two performances, ``windows_per_performance`` excerpts of
``window_seconds`` are cut from every performance, starting at the same downbeat
numbers (from the performance's beat annotations: ``*_annotations.txt``, lines
``time  time  db|b,...``): the k-th window of every performer of a piece starts on the
same bar, so it is the same passage played by different performers, a contrastive
positive. Downbeat numbers are spread evenly over the shortest performance's bars.
(A performer who takes a repeat another one skips can shift later windows by some bars:
they are then still the same piece.)

Window ids are ``asap:<piece>:<performance>:w<k>``; ``group`` is a passage id,
``ASAP_GROUP_OFFSET + index of (piece, k)``, disjoint from PercePiano's score-segment
ids, so the shared loss treats the T3 items of a passage as one group.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pianoeval.audio.features import AudioItem
from pianoeval.errors import DataError
from pianoeval.paths import asap_root

ASAP_GROUP_OFFSET = 1_000_000


@dataclass(frozen=True)
class AsapWindow:
    item: AudioItem
    piece: str
    performance: str
    passage: int  # index of (piece, k) over the whole selection
    group: int  # ASAP_GROUP_OFFSET + passage


def _downbeats(path: Path) -> np.ndarray:
    times = []
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[2].startswith("db"):
            times.append(float(parts[0]))
    return np.asarray(times)


def asap_windows(window_seconds: float, windows_per_performance: int, max_pieces: int | None = None,
                 root: Path | None = None, warn=print) -> list[AsapWindow]:
    """The windows described in the module docstring, in a deterministic order.

    ``max_pieces`` keeps the first N pieces of a hash order (a fixed, spread subset)."""
    root = Path(root) if root is not None else asap_root()
    meta = pd.read_csv(root / "metadata.csv")
    for column in ("folder", "midi_performance", "performance_annotations"):
        if column not in meta.columns:
            raise DataError(f"{root / 'metadata.csv'}: column {column!r} missing")
    pieces = sorted(meta["folder"].unique(), key=lambda p: hashlib.sha256(p.encode()).hexdigest())
    windows: list[AsapWindow] = []
    passage = 0
    kept = 0
    for piece in pieces:
        rows = meta[meta["folder"] == piece]
        performances = []
        for _, row in rows.iterrows():
            midi, notes = root / row["midi_performance"], root / row["performance_annotations"]
            if not midi.is_file() or not notes.is_file():
                warn(f"[asap] skip {row['midi_performance']}: MIDI or annotation file missing")
                continue
            downbeats = _downbeats(notes)
            if len(downbeats) < 2:
                warn(f"[asap] skip {row['midi_performance']}: fewer than 2 downbeats annotated")
                continue
            performances.append((midi, downbeats))
        if len(performances) < 2:
            continue
        bars = min(len(d) for _, d in performances)
        starts = np.unique(np.linspace(0, bars - 1, windows_per_performance + 1)[:-1].astype(int))
        for k, bar in enumerate(starts):
            for midi, downbeats in performances:
                item = AudioItem(f"asap:{piece}:{midi.stem}:w{k}", midi, float(downbeats[bar]), window_seconds)
                windows.append(AsapWindow(item, piece, midi.stem, passage + k, ASAP_GROUP_OFFSET + passage + k))
        passage += len(starts)
        kept += 1
        if max_pieces is not None and kept >= max_pieces:
            break
    if not windows:
        raise DataError(f"{root}: no piece with two usable performances")
    return windows


def split_by_piece(windows: list[AsapWindow], held_out_fraction: float) -> tuple[list[AsapWindow], list[AsapWindow]]:
    """(train, held out) with whole pieces on one side (hash order, deterministic)."""
    pieces = sorted({w.piece for w in windows}, key=lambda p: hashlib.sha256(f"holdout|{p}".encode()).hexdigest())
    held = set(pieces[: max(1, int(round(held_out_fraction * len(pieces))))])
    return [w for w in windows if w.piece not in held], [w for w in windows if w.piece in held]
