"""Continuous MIDI curves (S3): performance features on a fixed frame grid.

``FRAME_RATE`` frames per second (25: 40 ms frames, the hop of a typical audio
front-end, so S3 reads MIDI the way an audio encoder reads a spectrogram). A note
sounds in frame t when ``onset <= t / FRAME_RATE < offset``; it starts in frame
``floor(onset * FRAME_RATE)``. Channels (``CHANNELS``):

    onsets          log1p(number of notes starting in the frame)          density
    onset_velocity  mean velocity / 127 of the notes starting (0: none)   velocity
    active          log1p(number of notes sounding)                       density
    active_velocity mean velocity / 127 of the notes sounding (0: none)   velocity
    pitch_mean      (mean pitch sounding - 60) / 24 (0: none)             pitch
    pitch_high      (highest pitch sounding - 60) / 24 (0: none)          pitch
    pitch_low       (lowest pitch sounding - 60) / 24 (0: none)           pitch
    pedal           sustain-pedal value / 127 at the frame                pedal
    ioi             log1p(seconds between the latest onset group and the   inter-onset
                    one before it), held until the next onset group        interval

Curves are stored as float16 (values are O(1)); the model reads float32.
"""

from __future__ import annotations

import numpy as np

from pianoeval.symbolic.graphs import onset_groups
from pianoeval.symbolic.midi import NoteSequence, RepresentationError

FRAME_RATE = 25
CHANNELS = ("onsets", "onset_velocity", "active", "active_velocity", "pitch_mean", "pitch_high", "pitch_low",
            "pedal", "ioi")
MAX_SECONDS = 600.0  # a segment longer than 10 minutes is a windowing error, not a segment


def represent(seq: NoteSequence) -> dict[str, np.ndarray]:
    """``{"curves": [T, len(CHANNELS)] float16}`` for one performance segment."""
    if len(seq) == 0:
        raise RepresentationError("no notes in the segment")
    if seq.end > MAX_SECONDS:
        raise RepresentationError(f"segment lasts {seq.end:.0f} s (> {MAX_SECONDS:.0f} s)")
    frames = int(np.ceil(seq.end * FRAME_RATE)) + 1
    out = np.zeros((frames, len(CHANNELS)), dtype=np.float64)
    velocity = seq.velocity / 127.0

    start = np.floor(seq.onset * FRAME_RATE).astype(np.int64)
    onsets = np.bincount(start, minlength=frames)
    onset_velocity = np.bincount(start, weights=velocity, minlength=frames)
    out[:, 0] = np.log1p(onsets)
    out[:, 1] = np.divide(onset_velocity, onsets, out=np.zeros(frames), where=onsets > 0)

    # every (frame, note) incidence of a sounding note, as flat index arrays
    first = np.ceil(seq.onset * FRAME_RATE).astype(np.int64)
    last = np.ceil(seq.offset * FRAME_RATE).astype(np.int64)  # exclusive
    spans = np.maximum(last - first, 0)
    note = np.repeat(np.arange(len(seq)), spans)
    frame = first[note] + np.arange(len(note)) - np.repeat(np.cumsum(spans) - spans, spans)
    frame = np.minimum(frame, frames - 1)
    active = np.bincount(frame, minlength=frames)
    sounding = active > 0
    out[:, 2] = np.log1p(active)
    out[:, 3] = np.divide(np.bincount(frame, weights=velocity[note], minlength=frames), active,
                          out=np.zeros(frames), where=sounding)
    pitch = (seq.pitch - 60) / 24.0
    out[:, 4] = np.divide(np.bincount(frame, weights=pitch[note], minlength=frames), active,
                          out=np.zeros(frames), where=sounding)
    high, low = np.full(frames, -np.inf), np.full(frames, np.inf)
    np.maximum.at(high, frame, pitch[note])
    np.minimum.at(low, frame, pitch[note])
    out[:, 5] = np.where(sounding, high, 0.0)
    out[:, 6] = np.where(sounding, low, 0.0)

    out[:, 7] = seq.sustain_at(np.arange(frames) / FRAME_RATE) / 127.0
    groups = onset_groups(seq.onset)
    group_onset = seq.onset[np.searchsorted(groups, np.arange(groups.max() + 1))]
    ioi = np.log1p(np.diff(group_onset, prepend=group_onset[0]))
    latest = np.searchsorted(group_onset, np.arange(frames) / FRAME_RATE, side="right") - 1
    out[:, 8] = np.where(latest >= 0, ioi[np.maximum(latest, 0)], 0.0)
    return {"curves": out.astype(np.float16)}
