"""Performance curves and the onset roll on real PercePiano MIDI, at any frame rate."""

import numpy as np
import pytest

from pianoeval.data.curves import CHANNELS, PIANO_KEYS, PIANO_LOW, frame_count, frame_curves, onset_roll
from pianoeval.data.midi import NoteSequence, RepresentationError, read_midi
from pianoeval.symbolic import curves as s3


@pytest.fixture(scope="module")
def performance(percepiano):
    segment = percepiano.segments[3]
    return read_midi(segment.performance_midi(percepiano.root))


@pytest.mark.parametrize("rate", [12.5, 25.0, 50.0])
def test_onset_roll_marks_every_note_start_once_in_its_frame(performance, rate):
    roll = onset_roll(performance, rate)
    assert roll.shape == (frame_count(performance, rate), PIANO_KEYS)
    frame = np.floor(performance.onset * rate).astype(int)
    expected = {(f, p - PIANO_LOW) for f, p in zip(frame, performance.pitch) if 0 <= p - PIANO_LOW < PIANO_KEYS}
    assert set(zip(*np.nonzero(roll))) == expected
    # the curves' onset channel counts the same starts per frame
    counts = np.expm1(frame_curves(performance, rate)[:, CHANNELS.index("onsets")])
    np.testing.assert_allclose(counts, np.bincount(frame, minlength=len(counts)), atol=1e-9)


def test_a_grid_of_any_length_is_the_start_of_the_full_one_or_its_continuation(performance):
    full = frame_curves(performance, 12.5)
    short = frame_curves(performance, 12.5, frames=10)
    np.testing.assert_array_equal(short, full[:10])
    longer = frame_curves(performance, 12.5, frames=len(full) + 20)
    np.testing.assert_array_equal(longer[: len(full)], full)
    tail = longer[len(full):]
    assert (tail[:, CHANNELS.index("active")] == 0).all() and (tail[:, CHANNELS.index("onsets")] == 0).all()
    assert (tail[:, CHANNELS.index("ioi")] == full[-1, CHANNELS.index("ioi")]).all()  # held
    assert onset_roll(performance, 12.5, frames=len(full) + 20)[len(full):].sum() == 0


def test_the_symbolic_track_reads_the_same_curves(performance):
    np.testing.assert_array_equal(s3.represent(performance)["curves"],
                                  frame_curves(performance, s3.FRAME_RATE).astype(np.float16))


def test_no_notes_is_a_representation_error():
    empty = NoteSequence(*(np.zeros(0),) * 2, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64))
    for compute in (frame_curves, onset_roll):
        with pytest.raises(RepresentationError, match="no notes"):
            compute(empty, 12.5)
