"""REMI tokens of real performances: vocabulary, velocity bins, pedal, bars."""

import numpy as np
import pytest

from pianoeval.paths import BUNDLED_PERCEPIANO
from pianoeval.symbolic import tokens
from pianoeval.data.midi import RepresentationError, read_midi

MIDI = BUNDLED_PERCEPIANO / "performance_midi" / "Schubert_D960_mv2_8bars_10_12.mid"


def test_vocabulary_has_32_velocity_bins_pedal_and_special_tokens():
    vocab = tokens.tokenizer().vocab
    assert tokens.vocab_size() == len(vocab) == 398
    assert sum(name.startswith("Velocity_") for name in vocab) == 32
    assert {"Pedal_0", "PedalOff_0", "Bar_None", "MASK_None"} <= set(vocab)
    assert vocab["PAD_None"] == tokens.PAD_ID and tokens.mask_id() in tokens.special_ids()


def test_a_performance_becomes_bars_positions_notes_and_pedal_events():
    seq = read_midi(MIDI)
    ids = tokens.represent(seq)["tokens"]
    names = tokens.describe(ids)
    assert names.count("Bar_None") == int(np.floor(seq.onset.max() / 2.0)) + 1  # a clock bar is 2 s
    assert sum(n.startswith("Pitch_") for n in names) == len(seq)
    assert sum(n.startswith("Velocity_") for n in names) == len(seq)
    assert names.count("Pedal_0") == len(seq.pedal_intervals())
    assert ids.dtype == np.int16 and ids.min() >= 0 and ids.max() < tokens.vocab_size()


def test_an_empty_window_has_no_tokens():
    with pytest.raises(RepresentationError, match="no notes"):
        tokens.represent(read_midi(MIDI).window(500.0, 600.0))
