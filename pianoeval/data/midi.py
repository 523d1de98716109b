"""Performance MIDI as plain note arrays: the one representation every symbolic view starts from.

``NoteSequence`` holds the performed notes of one segment (onset / offset in seconds,
pitch, velocity, sorted by onset then pitch) and its sustain-pedal (CC 64) events.
Tokens, graphs and curves are all computed from it, and the controlled degradations
(``pianoeval.symbolic.degradation``) act on it, so a degraded performance goes through
exactly the same pre-processing as a clean one.

``read_midi`` reads any MIDI file (all non-drum tracks merged) with symusic; a file
that cannot be used raises ``MidiError`` with a one-line reason. ``to_score`` renders a
sequence back to a symusic ``Score`` on a fixed clock (120 quarter notes per minute,
4/4, 480 ticks per quarter: one beat = 0.5 s, one bar = 2 s) for the REMI tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

SUSTAIN_CC = 64
PEDAL_DOWN = 64  # CC 64 values >= 64 hold the dampers up (General MIDI convention)
CLOCK_QPM = 120.0
CLOCK_TPQ = 480
TICKS_PER_SECOND = CLOCK_TPQ * CLOCK_QPM / 60.0
MIN_DURATION = 0.01  # seconds: notes are never shorter than this after any edit
CHORD_TOLERANCE = 0.035  # seconds: onsets this close to a group's first onset are one chord


class MidiError(ValueError):
    """A MIDI file that cannot be used (missing, empty, corrupt, no notes)."""


class RepresentationError(ValueError):
    """A segment that gives no usable tokens / graph / curves (e.g. no notes in the window)."""


@dataclass
class NoteSequence:
    """Performed notes of one segment, sorted by (onset, pitch); times in seconds."""

    onset: np.ndarray  # [N] float64, >= 0
    offset: np.ndarray  # [N] float64, > onset
    pitch: np.ndarray  # [N] int64, MIDI 0-127
    velocity: np.ndarray  # [N] int64, MIDI 1-127
    pedal_time: np.ndarray  # [P] float64, sorted sustain-pedal event times
    pedal_value: np.ndarray  # [P] int64, CC 64 values 0-127

    def __len__(self) -> int:
        return len(self.onset)

    @property
    def duration(self) -> np.ndarray:
        return self.offset - self.onset

    @property
    def end(self) -> float:
        return float(self.offset.max()) if len(self) else 0.0

    def sorted(self) -> "NoteSequence":
        """The same notes re-sorted by (onset, pitch) (after an edit that moved them)."""
        order = np.lexsort((self.pitch, self.onset))
        return replace(self, onset=self.onset[order], offset=self.offset[order], pitch=self.pitch[order],
                       velocity=self.velocity[order])

    def sustain_at(self, times: np.ndarray) -> np.ndarray:
        """Sustain-pedal value (0-127) in force at each time (0 before the first event)."""
        if len(self.pedal_time) == 0:
            return np.zeros(len(times), dtype=np.int64)
        idx = np.searchsorted(self.pedal_time, times, side="right") - 1
        return np.where(idx >= 0, self.pedal_value[np.maximum(idx, 0)], 0)

    def window(self, start: float, end: float | None) -> "NoteSequence":
        """Notes with ``start <= onset < end``, shifted so that ``start`` is time 0.

        A note keeps its full length even when it rings past ``end``. The pedal state
        in force at ``start`` becomes an event at 0, followed by the events inside."""
        end = np.inf if end is None else end
        keep = (self.onset >= start) & (self.onset < end)
        inside = (self.pedal_time >= start) & (self.pedal_time < end)
        pedal_time = np.concatenate([[0.0], self.pedal_time[inside] - start])
        pedal_value = np.concatenate([self.sustain_at(np.array([start])), self.pedal_value[inside]])
        return NoteSequence(self.onset[keep] - start, self.offset[keep] - start, self.pitch[keep],
                            self.velocity[keep], pedal_time, pedal_value.astype(np.int64))

    def pedal_intervals(self) -> list[tuple[float, float]]:
        """(down, up) times of the sustain pedal, with down meaning CC 64 >= 64."""
        intervals, down = [], None
        for time, value in zip(self.pedal_time, self.pedal_value):
            if value >= PEDAL_DOWN and down is None:
                down = float(time)
            elif value < PEDAL_DOWN and down is not None:
                intervals.append((down, float(time)))
                down = None
        if down is not None:
            intervals.append((down, max(self.end, down + MIN_DURATION)))
        return intervals


def onset_groups(onset: np.ndarray, tolerance: float = CHORD_TOLERANCE) -> np.ndarray:
    """[N] int group index of each note (notes sorted by onset)."""
    group = np.zeros(len(onset), dtype=np.int64)
    start = onset[0] if len(onset) else 0.0
    g = 0
    for i in range(1, len(onset)):
        if onset[i] - start > tolerance:
            g += 1
            start = onset[i]
        group[i] = g
    return group


def read_midi(path: str | Path) -> NoteSequence:
    """Read a performance MIDI file; raise MidiError with a one-line reason."""
    import symusic

    path = Path(path)
    if not path.is_file():
        raise MidiError(f"{path}: MIDI file not found")
    if path.stat().st_size == 0:
        raise MidiError(f"{path.name}: empty MIDI file")
    try:
        score = symusic.Score(str(path)).to("second")
    except Exception as err:  # symusic raises RuntimeError / ValueError on corrupt files
        raise MidiError(f"{path.name}: MIDI does not parse ({type(err).__name__}: {str(err)[:120]})") from None
    notes = [t.notes.numpy() for t in score.tracks if not t.is_drum and len(t.notes)]
    if not notes:
        raise MidiError(f"{path.name}: MIDI file has no notes")
    onset = np.concatenate([n["time"] for n in notes]).astype(np.float64)
    offset = onset + np.maximum(np.concatenate([n["duration"] for n in notes]).astype(np.float64), MIN_DURATION)
    pitch = np.concatenate([n["pitch"] for n in notes]).astype(np.int64)
    velocity = np.clip(np.concatenate([n["velocity"] for n in notes]).astype(np.int64), 1, 127)
    times, values = [], []
    for track in score.tracks:
        controls = track.controls.numpy()
        sustain = controls["number"] == SUSTAIN_CC
        times.append(controls["time"][sustain].astype(np.float64))
        values.append(controls["value"][sustain].astype(np.int64))
    pedal_time, pedal_value = np.concatenate(times), np.concatenate(values)
    order = np.argsort(pedal_time, kind="stable")
    shift = min(0.0, float(onset.min()))  # a few files start notes at negative times: start at 0
    seq = NoteSequence(onset - shift, offset - shift, pitch, velocity, pedal_time[order] - shift, pedal_value[order])
    return seq.sorted()


def to_score(seq: NoteSequence):
    """The sequence as a one-track symusic ``Score`` on the fixed 120-qpm, 4/4 clock."""
    import symusic

    score = symusic.Score(CLOCK_TPQ)
    score.tempos.append(symusic.Tempo(0, CLOCK_QPM))
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    track = symusic.Track("piano", 0, False)
    start = np.round(seq.onset * TICKS_PER_SECOND).astype(np.int32)
    length = np.maximum(np.round(seq.duration * TICKS_PER_SECOND).astype(np.int32), 1)
    track.notes = symusic.Note.from_numpy(start, length, seq.pitch.astype(np.int8), seq.velocity.astype(np.int8))
    for down, up in seq.pedal_intervals():
        tick = int(round(down * TICKS_PER_SECOND))
        track.pedals.append(symusic.Pedal(tick, max(1, int(round(up * TICKS_PER_SECOND)) - tick)))
    score.tracks.append(track)
    return score
