"""MIDI curves of a real performance: frame grid and channel meanings."""

import numpy as np

from pianoeval.paths import BUNDLED_PERCEPIANO
from pianoeval.symbolic import curves
from pianoeval.data.midi import read_midi


def test_curves_count_onsets_and_follow_the_pedal():
    seq = read_midi(BUNDLED_PERCEPIANO / "performance_midi" / "Schubert_D960_mv2_8bars_10_12.mid")
    out = curves.represent(seq)["curves"].astype(np.float64)
    assert out.shape == (int(np.ceil(seq.end * curves.FRAME_RATE)) + 1, len(curves.CHANNELS))
    onsets = np.expm1(out[:, curves.CHANNELS.index("onsets")])
    assert abs(onsets.sum() - len(seq)) < 0.01 * len(seq)  # float16 storage rounds a little
    times = np.arange(len(out)) / curves.FRAME_RATE
    pedal = out[:, curves.CHANNELS.index("pedal")]
    assert np.allclose(pedal, seq.sustain_at(times) / 127.0, atol=2e-3)
    sounding = out[:, curves.CHANNELS.index("active")] > 0
    assert (out[sounding, curves.CHANNELS.index("pitch_high")] >= out[sounding, curves.CHANNELS.index("pitch_low")]).all()
    assert (out[~sounding, curves.CHANNELS.index("pitch_mean")] == 0).all()
