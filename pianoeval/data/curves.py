"""Performance curves: what a performer does, read from MIDI on a fixed frame grid.

``frame_curves(seq, frame_rate)`` gives one row per frame of ``1 / frame_rate`` seconds.
A note sounds in frame t when ``onset <= t / frame_rate < offset``; it starts in frame
``floor(onset * frame_rate)``. Channels (``CHANNELS``):

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

``onset_roll(seq, frame_rate)`` is the transcription-style companion: ``[T, 88]``, 1 where
a piano key (A0 = MIDI 21 ... C8 = 108) is struck in the frame.

Two readers: the symbolic track's S3 input (``pianoeval.symbolic.curves``, 25 frames/s)
and the audio track's alignment-supervised pre-training (``pianoeval.audio.targets``, at
the audio backbone's frame rate), so both read a performance the same way.
"""

from __future__ import annotations

import numpy as np

from pianoeval.data.midi import NoteSequence, RepresentationError, onset_groups

CHANNELS = ("onsets", "onset_velocity", "active", "active_velocity", "pitch_mean", "pitch_high", "pitch_low",
            "pedal", "ioi")
PIANO_LOW, PIANO_KEYS = 21, 88  # MIDI pitch of A0, keys on a piano
MAX_SECONDS = 600.0  # a segment longer than 10 minutes is a windowing error, not a segment


def frame_count(seq: NoteSequence, frame_rate: float) -> int:
    """Frames from 0 to the last note's release, inclusive."""
    return int(np.ceil(seq.end * frame_rate)) + 1


def _check(seq: NoteSequence) -> None:
    if len(seq) == 0:
        raise RepresentationError("no notes in the segment")
    if seq.end > MAX_SECONDS:
        raise RepresentationError(f"segment lasts {seq.end:.0f} s (> {MAX_SECONDS:.0f} s)")


def frame_curves(seq: NoteSequence, frame_rate: float, frames: int | None = None) -> np.ndarray:
    """``[frames, len(CHANNELS)]`` float64 curves of one performance segment; ``frames``
    defaults to ``frame_count(seq, frame_rate)``. A shorter grid is the start of the full
    one; a longer one continues past the last release (silence, the pedal as it was left,
    the last inter-onset interval held)."""
    _check(seq)
    wanted = frame_count(seq, frame_rate) if frames is None else frames
    frames = max(wanted, frame_count(seq, frame_rate))
    out = np.zeros((frames, len(CHANNELS)), dtype=np.float64)
    velocity = seq.velocity / 127.0

    start = np.minimum(np.floor(seq.onset * frame_rate).astype(np.int64), frames - 1)
    onsets = np.bincount(start, minlength=frames)
    onset_velocity = np.bincount(start, weights=velocity, minlength=frames)
    out[:, 0] = np.log1p(onsets)
    out[:, 1] = np.divide(onset_velocity, onsets, out=np.zeros(frames), where=onsets > 0)

    # every (frame, note) incidence of a sounding note, as flat index arrays
    first = np.ceil(seq.onset * frame_rate).astype(np.int64)
    last = np.ceil(seq.offset * frame_rate).astype(np.int64)  # exclusive
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

    out[:, 7] = seq.sustain_at(np.arange(frames) / frame_rate) / 127.0
    groups = onset_groups(seq.onset)
    group_onset = seq.onset[np.searchsorted(groups, np.arange(groups.max() + 1))]
    ioi = np.log1p(np.diff(group_onset, prepend=group_onset[0]))
    latest = np.searchsorted(group_onset, np.arange(frames) / frame_rate, side="right") - 1
    out[:, 8] = np.where(latest >= 0, ioi[np.maximum(latest, 0)], 0.0)
    return out[:wanted]


def onset_roll(seq: NoteSequence, frame_rate: float, frames: int | None = None) -> np.ndarray:
    """``[frames, 88]`` uint8 (``frames`` as in ``frame_curves``): 1 where a key is struck in
    the frame (keys outside the piano's range are left out)."""
    _check(seq)
    frames = frame_count(seq, frame_rate) if frames is None else frames
    roll = np.zeros((frames, PIANO_KEYS), dtype=np.uint8)
    key = seq.pitch - PIANO_LOW
    start = np.floor(seq.onset * frame_rate).astype(np.int64)
    keep = (key >= 0) & (key < PIANO_KEYS) & (start < frames)
    roll[start[keep], key[keep]] = 1
    return roll
