"""Each degradation does exactly what it says, on real performance MIDI."""

import numpy as np
import pytest

from pianoeval.symbolic.degradation import (TIERS, compress_dynamics, degrade, degradation_pairs, inject_wrong_notes,
                                        jitter_timing, tier)
from pianoeval.paths import BUNDLED_PERCEPIANO
from pianoeval.data.midi import read_midi

# a long, dense segment (a few hundred notes) keeps the statistical checks tight
SEGMENT = "Schubert_D960_mv2_8bars_8_09"


@pytest.fixture(scope="module")
def performance():
    return read_midi(BUNDLED_PERCEPIANO / "performance_midi" / f"{SEGMENT}.mid")


def test_wrong_notes_exact_count_note_by_note(performance):
    # onsets are unique per note after a tiny per-note offset, so the note order is preserved
    seq = performance
    unique = seq.__class__(seq.onset + np.arange(len(seq)) * 1e-9, seq.offset + 1.0, seq.pitch, seq.velocity,
                           seq.pedal_time, seq.pedal_value)
    for rate in (0.02, 0.05, 0.10):
        degraded = inject_wrong_notes(unique, rate, np.random.default_rng(3))
        assert np.array_equal(degraded.onset, unique.onset)  # same order: compare pitch by pitch
        differs = degraded.pitch != unique.pitch
        assert differs.sum() == round(rate * len(unique))
        steps = np.abs(degraded.pitch[differs] - unique.pitch[differs])
        assert set(steps.tolist()) <= {1, 2}
        assert degraded.pitch.min() >= 21 and degraded.pitch.max() <= 108


def _tagged(seq):
    """The real notes with a unique (pitch, velocity) tag each, so a note can be found
    again after jitter re-sorts them (timing is untouched and is what is tested)."""
    i = np.arange(len(seq))
    return seq.__class__(seq.onset, seq.offset, 21 + i // 127, 1 + i % 127, seq.pedal_time, seq.pedal_value)


@pytest.mark.parametrize("ms", [10.0, 30.0, 60.0])
def test_jitter_moves_onsets_and_offsets_with_the_stated_std(performance, ms):
    shifted = performance.__class__(performance.onset + 1.0, performance.offset + 1.0, performance.pitch,
                                    performance.velocity, performance.pedal_time, performance.pedal_value)
    seq = _tagged(shifted)  # onsets start at 1 s, so clipping at 0 never bites
    degraded = jitter_timing(seq, ms, np.random.default_rng(1))
    before, after = np.lexsort((seq.velocity, seq.pitch)), np.lexsort((degraded.velocity, degraded.pitch))
    assert np.array_equal(seq.pitch[before], degraded.pitch[after])
    moved_on = (degraded.onset[after] - seq.onset[before]) * 1000
    moved_off = (degraded.offset[after] - seq.offset[before]) * 1000
    n = len(seq)
    assert abs(moved_on.std() - ms) < 4 * ms / np.sqrt(2 * n), (moved_on.std(), ms)  # 4 standard errors
    assert abs(moved_on.mean()) < 4 * ms / np.sqrt(n)
    long_notes = seq.duration[before] > 0.5  # a short note's offset may be held at onset + 10 ms
    assert abs(moved_off[long_notes].std() - ms) < 4 * ms / np.sqrt(2 * long_notes.sum())
    assert (degraded.offset > degraded.onset).all() and np.all(np.diff(degraded.onset) >= 0)


@pytest.mark.parametrize("amount", [0.25, 0.5, 0.75])
def test_compression_shrinks_the_velocity_std_by_the_factor(performance, amount):
    degraded = compress_dynamics(performance, amount)
    ratio = degraded.velocity.std() / performance.velocity.std()
    assert abs(ratio - (1 - amount)) < 0.5 / performance.velocity.std() + 1e-3  # rounding to integers
    assert abs(degraded.velocity.mean() - performance.velocity.mean()) < 0.5
    assert np.array_equal(degraded.pitch, performance.pitch) and np.array_equal(degraded.onset, performance.onset)


def test_tiers_match_the_seed_and_are_deterministic(performance):
    assert [(t.name, t.jitter_ms, t.wrong_note_rate, t.compression) for t in TIERS] == [
        ("pristine", 0, 0, 0), ("good", 10, 0, 0), ("moderate", 30, 0.02, 0.25), ("poor", 60, 0.05, 0.5)]
    assert [t.label for t in TIERS] == [0.975, 0.875, 0.725, 0.575]
    first = degrade(performance, "poor", SEGMENT)
    again = degrade(performance, "poor", SEGMENT)
    other = degrade(performance, "poor", SEGMENT + "x")
    assert np.array_equal(first.onset, again.onset) and np.array_equal(first.pitch, again.pitch)
    assert not np.array_equal(first.onset, other.onset)
    clean, poor = degradation_pairs(performance, SEGMENT)
    assert clean is performance and np.array_equal(poor.onset, first.onset)
    assert degrade(performance, "pristine", SEGMENT) is performance
    with pytest.raises(ValueError, match="unknown degradation tier 'awful'"):
        tier("awful")
