"""Frame-aligned targets from the MIDI a render was made from: what the performer did,
at the audio backbone's frame rate (alignment-supervised pre-training, ``pretrain``).

Every rendered item comes with its source MIDI, aligned to the sample: the excerpt
``[start, start + duration)`` is rendered from the notes that start inside it (cut at its
end) with the pedal state at ``start`` (``pianoeval.audio.render``). The same notes give,
per backbone frame (``BackboneSpec.frames_per_second``, 12.5 a second for the CPU
default), the targets:

* ``curves`` ``[T, 9]``: the performance curves of ``pianoeval.data.curves`` (onset
  density, onset and sounding velocity, sounding density, pitch mean / high / low,
  sustain pedal, inter-onset interval), the S3 encoder's channels;
* ``roll`` ``[T, 88]``: the note-onset piano roll (a transcription-style target).

An item whose MIDI does not parse or has no notes in its excerpt is skipped and counted
(``TargetTable.skipped``), never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from pianoeval.audio.features import AudioItem
from pianoeval.data.curves import CHANNELS, PIANO_KEYS, frame_curves, onset_roll
from pianoeval.data.midi import MidiError, NoteSequence, RepresentationError, read_midi

CURVE_NAMES = CHANNELS


@lru_cache(maxsize=8)
def _performance(midi: str, size: int, mtime_ns: int) -> NoteSequence:
    return read_midi(midi)


def item_notes(item: AudioItem) -> NoteSequence:
    """The notes rendered for ``item``, on the render's clock (0 = the excerpt's start)."""
    stat = Path(item.midi).stat() if Path(item.midi).is_file() else None
    if stat is None:
        raise MidiError(f"{item.midi}: MIDI file not found")
    seq = _performance(str(item.midi), stat.st_size, stat.st_mtime_ns)
    stop = None if item.duration is None else item.start + item.duration
    window = seq.window(item.start, stop)
    if item.duration is not None:  # the render cuts notes at the excerpt's end
        window = replace(window, offset=np.minimum(window.offset, item.duration))  # every onset is before it
    return window


def item_targets(item: AudioItem, frame_rate: float, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """``(curves [frames, 9] float32, roll [frames, 88] uint8)`` of one item."""
    seq = item_notes(item)
    return (frame_curves(seq, frame_rate, frames).astype(np.float32), onset_roll(seq, frame_rate, frames))


@dataclass
class TargetTable:
    """item id -> (curves, roll); ``skipped``: item id -> one-line reason."""

    targets: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        reasons: dict[str, int] = {}
        for reason in self.skipped.values():
            key = reason.split(":")[-1].strip()
            reasons[key] = reasons.get(key, 0) + 1
        detail = "; ".join(f"{n} {why}" for why, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
        return (f"[targets] {len(self.targets)} items with alignment targets, {len(self.skipped)} skipped"
                + (f" ({detail})" if detail else ""))


def build_targets(items: list[AudioItem], frames: dict[str, int], frame_rate: float, warn=print) -> TargetTable:
    """Targets of every item whose frame count is known (``frames``: item id -> backbone
    frames of its clean render); an item without notes or with unreadable MIDI is skipped
    with a reason."""
    table = TargetTable()
    for item in items:
        if item.item_id not in frames:
            continue
        try:
            curves, roll = item_targets(item, frame_rate, frames[item.item_id])
        except (MidiError, RepresentationError) as err:
            table.skipped[item.item_id] = f"{item.item_id}: {err}"
            continue
        if not roll.any():
            table.skipped[item.item_id] = f"{item.item_id}: no note onset inside the rendered frames"
            continue
        table.targets[item.item_id] = (curves, roll)
    if table.skipped:
        warn(table.line())
    return table


def curve_statistics(table: TargetTable, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of the curves over the frames of ``ids`` (std floored at
    1e-3), to standardise the regression targets so every channel counts alike."""
    stacked = np.concatenate([table.targets[i][0] for i in ids if i in table.targets])
    return stacked.mean(0), np.maximum(stacked.std(0), 1e-3)


__all__ = ["CURVE_NAMES", "PIANO_KEYS", "TargetTable", "build_targets", "curve_statistics", "item_notes",
           "item_targets"]
