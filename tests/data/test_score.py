"""Score features and hierarchy indices on real PercePiano scores."""

import warnings

import numpy as np
import pytest

from pianoeval.data.score import ScoreError, beat_importance, parse_score, time_signature_vector
from pianoeval.paths import BUNDLED_PERCEPIANO
from pianoeval.setup_assets import ensure_partitura_soundfont

SCORES = BUNDLED_PERCEPIANO / "score_mxl"


def _partitura_notes(path):
    ensure_partitura_soundfont()
    import partitura as pt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        part = pt.load_musicxml(str(path)).parts[0]
    return part


@pytest.mark.parametrize("name", ["Schubert_D960_mv2_8bars_Score_05", "Schubert_D935_no.3_4bars_Score_32",
                                  "Beethoven_WoO80_var27_8bars_Score_15", "Schubert_D960_mv3_16bars_Score_03"])
def test_measure_indices_match_the_score(name):
    table = parse_score(SCORES / f"{name}.mxl")
    part = _partitura_notes(SCORES / f"{name}.mxl")
    starts = [m.start.t for m in part.measures]
    with_notes = {np.searchsorted(starts, n.start.t, side="right") - 1 for n in part.notes_tied}
    assert len(np.unique(table.measure_index)) == len(with_notes)
    # continuous, starting at 0, non-decreasing in score order
    assert table.measure_index[0] == 0 and np.all(np.diff(table.measure_index) >= 0)
    assert set(np.unique(table.measure_index)) == set(range(table.measure_index.max() + 1))


def test_beat_indices_match_a_simple_meter_score():
    # D960 mv2 is in 3/4: one beat per quarter, so a note's beat is floor(onset in quarters)
    table = parse_score(SCORES / "Schubert_D960_mv2_8bars_Score_05.mxl")
    assert np.allclose(table.features["measure_length"], 3.0)
    expected = np.unique(np.floor(table.onset_q + 1e-9), return_inverse=True)[1]
    assert np.array_equal(table.beat_index, expected)
    # every beat lies inside one measure
    for beat in np.unique(table.beat_index):
        assert len(np.unique(table.measure_index[table.beat_index == beat])) == 1


def test_score_order_is_onset_grace_then_high_to_low():
    table = parse_score(SCORES / "Schubert_D960_mv3_8bars_Score_29.mxl")  # has grace notes
    assert table.is_grace.any()
    key = list(zip(table.onset_q, table.features["grace_order"], -table.pitch))
    assert key == sorted(key)
    graces = np.nonzero(table.is_grace)[0]
    assert (table.duration_q[graces] == 0).all() and (table.features["grace_order"][graces] < 0).all()


def test_feature_columns_are_finite_and_in_range():
    table = parse_score(SCORES / "Schubert_D960_mv2_8bars_Score_05.mxl")
    f = table.features
    assert all(np.isfinite(v).all() for v in f.values())
    assert ((0 <= f["beat_position"]) & (f["beat_position"] < 1)).all()
    assert ((0 <= f["xml_position"]) & (f["xml_position"] <= 1)).all()
    pc = np.stack([f[f"pitch_class_{k}"] for k in range(12)], axis=1)
    assert (pc.sum(axis=1) == 1).all() and (np.argmax(pc, axis=1) == table.pitch % 12).all()
    # this score opens with a diminuendo hairpin and has 'pp' at quarter 4
    assert f["dynamic_1"][0] < 0
    assert np.allclose(f["dynamic_0"][table.onset_q >= 4.0][0], -0.7)


def test_beat_importance_and_time_signature_codes():
    assert beat_importance(0.0, 4) == 4 and beat_importance(0.5, 4) == 3 and beat_importance(0.25, 4) == 1
    assert beat_importance(1 / 3, 3) == 2 and beat_importance(0.1, 4) == 0
    assert time_signature_vector(6, 8) == [1, 0, 0, 1, 0, 0, 0, 1, 0]
    assert time_signature_vector(3, 4) == [0, 1, 0, 0, 0, 0, 1, 0, 0]


def test_unparseable_score_raises_score_error(tmp_path):
    broken = tmp_path / "broken.musicxml"
    real = (SCORES / "Schubert_D960_mv2_8bars_Score_05.mxl").read_bytes()
    broken.write_bytes(real[: len(real) // 3])  # a real file cut short
    with pytest.raises(ScoreError, match="broken.musicxml"):
        parse_score(broken)
