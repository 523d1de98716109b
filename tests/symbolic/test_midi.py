"""Reading performance MIDI into note arrays, windows, and the fixed-clock score."""

import numpy as np
import pytest

from pianoeval.paths import BUNDLED_PERCEPIANO
from pianoeval.data.midi import TICKS_PER_SECOND, MidiError, read_midi, to_score

MIDI = BUNDLED_PERCEPIANO / "performance_midi" / "Schubert_D960_mv2_8bars_10_12.mid"


def test_reads_notes_and_sustain_pedal_of_a_real_performance():
    seq = read_midi(MIDI)
    assert len(seq) == 104
    assert np.all(np.diff(seq.onset) >= 0) and (seq.offset > seq.onset).all()
    assert seq.pitch.min() >= 21 and seq.pitch.max() <= 108 and seq.velocity.min() >= 1
    assert len(seq.pedal_time) > 0 and np.all(np.diff(seq.pedal_time) >= 0)
    down, up = seq.pedal_intervals()[0]
    assert seq.sustain_at(np.array([down]))[0] >= 64 and up > down


def test_window_keeps_onsets_inside_and_starts_at_zero():
    seq = read_midi(MIDI)
    part = seq.window(10.0, 20.0)
    inside = (seq.onset >= 10.0) & (seq.onset < 20.0)
    assert len(part) == inside.sum()
    assert np.allclose(part.onset, seq.onset[inside] - 10.0)
    assert part.pedal_time[0] == 0.0 and part.pedal_value[0] == seq.sustain_at(np.array([10.0]))[0]


def test_fixed_clock_score_round_trips_note_times():
    seq = read_midi(MIDI)
    score = to_score(seq)
    notes = score.tracks[0].notes.numpy()
    assert len(notes["time"]) == len(seq)
    assert np.allclose(np.sort(notes["time"]) / TICKS_PER_SECOND, np.sort(seq.onset), atol=1 / TICKS_PER_SECOND)
    assert len(score.tracks[0].pedals) == len(seq.pedal_intervals())


def test_unusable_files_raise_one_line_errors(tmp_path):
    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"")
    garbled = tmp_path / "garbled.mid"
    data = MIDI.read_bytes()
    garbled.write_bytes(data[:14] + bytes(len(data) - 14))
    for path, message in ((empty, "empty MIDI file"), (garbled, "garbled.mid"), (tmp_path / "none.mid", "not found")):
        with pytest.raises(MidiError, match=message) as err:
            read_midi(path)
        assert "\n" not in str(err.value)
