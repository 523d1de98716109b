"""Performance side of the note features: MIDI notes and per-note pedal state.

Pedal features follow the reference (``percepiano_han_reference.md`` 1.2, columns
85-91), per performed note, from the sustain (CC 64) and soft (CC 67) controllers:

* ``pedal_at_start`` / ``pedal_at_end``: sustain value at the key press / release;
* ``soft_pedal``: soft-pedal value at the key press;
* ``pedal_refresh`` / ``pedal_refresh_time``: the lowest sustain value while the key
  is held (a re-pedal), and seconds from the key press to it (0 when none is lower);
* ``pedal_cut`` / ``pedal_cut_time``: the lowest sustain value between the release
  and the next onset after it, and seconds from the release to it.

Values are raw MIDI 0-127 here; ``features.py`` applies the reference's sigmoid.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pianoeval.setup_assets import ensure_partitura_soundfont

SUSTAIN_CC = 64
SOFT_CC = 67
PEDAL_KEYS = (
    "pedal_at_start", "pedal_at_end", "soft_pedal",
    "pedal_refresh", "pedal_refresh_time", "pedal_cut", "pedal_cut_time",
)


class PerformanceError(ValueError):
    """A performance MIDI file that cannot be used (corrupt, empty, no notes)."""


@dataclass
class PerformanceTable:
    """Performed notes sorted by (onset, pitch)."""

    ids: np.ndarray  # [M] str
    onset_s: np.ndarray  # [M] key press, seconds
    offset_s: np.ndarray  # [M] key release, seconds
    pitch: np.ndarray  # [M] int
    velocity: np.ndarray  # [M] int
    pedal: dict[str, np.ndarray]  # PEDAL_KEYS -> [M]

    def __len__(self) -> int:
        return len(self.ids)

    def note_array(self) -> np.ndarray:
        """The structured array the aligner reads (partitura's field names)."""
        dtype = [("onset_sec", "f4"), ("duration_sec", "f4"), ("pitch", "i4"), ("velocity", "i4"), ("id", "U16")]
        arr = np.zeros(len(self), dtype=dtype)
        arr["onset_sec"] = self.onset_s
        arr["duration_sec"] = self.offset_s - self.onset_s
        arr["pitch"] = self.pitch
        arr["velocity"] = self.velocity
        arr["id"] = self.ids
        return arr


def _controller(controls: list[dict], number: int) -> tuple[np.ndarray, np.ndarray]:
    events = sorted((c["time"], c["value"]) for c in controls if c["number"] == number)
    if not events:
        return np.zeros(0), np.zeros(0)
    times, values = zip(*events)
    return np.asarray(times, dtype=float), np.asarray(values, dtype=float)


def _value_at(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Controller value in force at each time (0 before the first event)."""
    if len(times) == 0:
        return np.zeros(len(at))
    idx = np.searchsorted(times, at, side="right") - 1
    return np.where(idx >= 0, values[np.maximum(idx, 0)], 0.0)


def _lowest_between(times, values, starts, ends, initial):
    """Per note: the lowest controller value among events in (start, end), and its time."""
    lowest = initial.copy()
    when = np.zeros(len(starts))
    lo = np.searchsorted(times, starts, side="right")
    hi = np.searchsorted(times, ends, side="left")
    for i in np.nonzero(hi > lo)[0]:
        window = values[lo[i]:hi[i]]
        k = int(np.argmin(window))
        if window[k] < lowest[i]:
            lowest[i] = window[k]
            when[i] = times[lo[i] + k] - starts[i]
    return lowest, when


def pedal_features(onset: np.ndarray, offset: np.ndarray, controls: list[dict]) -> dict[str, np.ndarray]:
    """The seven per-note pedal features (raw values, seconds) for notes sorted by onset."""
    s_times, s_values = _controller(controls, SUSTAIN_CC)
    f_times, f_values = _controller(controls, SOFT_CC)
    at_start = _value_at(s_times, s_values, onset)
    at_end = _value_at(s_times, s_values, offset)
    refresh, refresh_time = _lowest_between(s_times, s_values, onset, offset, at_start)
    # next onset strictly after each release
    order = np.sort(onset)
    nxt = np.searchsorted(order, offset, side="right")
    next_onset = np.where(nxt < len(order), order[np.minimum(nxt, len(order) - 1)], offset)
    cut, cut_time = _lowest_between(s_times, s_values, offset, next_onset, at_end)
    return {
        "pedal_at_start": at_start,
        "pedal_at_end": at_end,
        "soft_pedal": _value_at(f_times, f_values, onset),
        "pedal_refresh": refresh,
        "pedal_refresh_time": refresh_time,
        "pedal_cut": cut,
        "pedal_cut_time": cut_time,
    }


def parse_performance(path: Path) -> PerformanceTable:
    """Read a performance MIDI file; raise PerformanceError with a one-line reason."""
    ensure_partitura_soundfont()
    import partitura as pt

    path = Path(path)
    if not path.is_file():
        raise PerformanceError(f"performance file not found: {path}")
    if path.stat().st_size == 0:
        raise PerformanceError(f"{path.name}: empty MIDI file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            performance = pt.load_performance_midi(str(path))
    except Exception as err:  # mido raises several types on corrupt files
        raise PerformanceError(f"{path.name}: MIDI does not parse ({type(err).__name__}: {str(err)[:120]})") from None
    notes = [n for part in performance.performedparts for n in part.notes]
    controls = [c for part in performance.performedparts for c in part.controls]
    if not notes:
        raise PerformanceError(f"{path.name}: MIDI file has no notes")
    onset = np.array([n["note_on"] for n in notes], dtype=float)
    offset = np.array([n["note_off"] for n in notes], dtype=float)
    pitch = np.array([n["pitch"] for n in notes], dtype=np.int64)
    velocity = np.array([n["velocity"] for n in notes], dtype=np.int64)
    order = np.lexsort((pitch, onset))
    onset, offset, pitch, velocity = onset[order], offset[order], pitch[order], velocity[order]
    offset = np.maximum(offset, onset)
    return PerformanceTable(
        ids=np.array([f"p{i}" for i in range(len(onset))]),
        onset_s=onset,
        offset_s=offset,
        pitch=pitch,
        velocity=velocity,
        pedal=pedal_features(onset, offset, controls),
    )
