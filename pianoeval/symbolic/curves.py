"""Continuous MIDI curves (S3): performance features on a fixed frame grid.

``FRAME_RATE`` frames per second (25: 40 ms frames, the hop of a typical audio
front-end, so S3 reads MIDI the way an audio encoder reads a spectrogram). The channels
and how each is computed: ``pianoeval.data.curves`` (shared with the audio track's
alignment-supervised pre-training). Curves are stored as float16 (values are O(1)); the
model reads float32.
"""

from __future__ import annotations

import numpy as np

from pianoeval.data.curves import CHANNELS, MAX_SECONDS, frame_curves
from pianoeval.data.midi import NoteSequence

FRAME_RATE = 25
__all__ = ["CHANNELS", "FRAME_RATE", "MAX_SECONDS", "represent"]


def represent(seq: NoteSequence) -> dict[str, np.ndarray]:
    """``{"curves": [T, len(CHANNELS)] float16}`` for one performance segment."""
    return {"curves": frame_curves(seq, FRAME_RATE).astype(np.float16)}
