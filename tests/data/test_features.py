"""Assembled note rows and the feature spec, on the real data."""

import re

import numpy as np

from pianoeval.data.features import FEATURE_SETS, FULL_COLUMNS, ROW_EXTRA, ROW_UNPLAYED, TempoCurve
from pianoeval.paths import REPO_ROOT


def test_full_feature_set_is_the_reference_layout():
    assert len(FEATURE_SETS["full"]) == 101
    assert len(FEATURE_SETS["perf_only"]) == 9
    names = [c.name for c in FULL_COLUMNS]
    assert names[0] == "duration" and names[3] == "qpm_primo" and names[77] == "beat_tempo"
    assert names[92:96] == ["mmidi_pitch", "mmidi_velocity", "mmidi_start_time", "mmidi_end_time"]
    assert [c.scaling for c in FULL_COLUMNS[77:92]] == ["z"] * 15


def test_docs_features_md_lists_every_column_with_its_scaling():
    text = (REPO_ROOT / "docs" / "features.md").read_text()
    rows = re.findall(r"^\| (\d+) \| `([^`]+)` \| (\w+) \|", text, flags=re.M)
    assert [(int(i), name, scaling) for i, name, scaling in rows] == [
        (i, c.name, c.scaling) for i, c in enumerate(FULL_COLUMNS)
    ]


def test_stated_scaling_holds_after_normalisation(percepiano):
    train, _, _, stats = percepiano.note_datasets("performer", 0, "full")
    x = train.features.numpy().astype(np.float64)
    store = percepiano.note_features
    rows = np.concatenate([np.arange(store.rows(s).start, store.rows(s).stop) for s in train.segment_ids])
    firsts = train.offsets[:-1]
    for k, col in enumerate(FULL_COLUMNS):
        values = x[firsts, k] if col.name == "qpm_primo" else x[:, k]  # one value per segment
        if col.scaling == "z":
            assert abs(values.mean()) < 1e-3, col.name
            assert abs(values.std() - 1) < 1e-3 or values.std() == 0, col.name
        else:
            assert np.allclose(x[:, k], store.column(col.source)[rows], atol=1e-5), col.name
            if col.scaling == "binary":
                assert set(np.unique(x[:, k])) <= {0.0, 1.0}, col.name


def test_validation_rows_do_not_shape_the_statistics(percepiano):
    train, val, _, stats = percepiano.note_datasets("performer", 0, "full")
    velocity = [c.name for c in FULL_COLUMNS].index("velocity")
    store = percepiano.note_features
    train_rows = np.concatenate([np.arange(store.rows(s).start, store.rows(s).stop) for s in train.segment_ids])
    assert np.isclose(stats.mean[velocity], store.column("velocity")[train_rows].mean(), rtol=1e-5)
    everything = store.column("velocity").mean()
    assert not np.isclose(stats.mean[velocity], everything, rtol=1e-5)


def test_inserted_and_unplayed_rows_follow_the_reference(percepiano):
    store = percepiano.note_features
    kind = store.index["row_kind"]
    extra, unplayed = kind == ROW_EXTRA, kind == ROW_UNPLAYED
    assert extra.any() and unplayed.any()
    assert (store.index["voice"][extra] == 0).all() and (store.index["voice"][~extra] > 0).all()
    for source in ("duration", "beat_importance", "pitch_octave", "slur_start", "midi_pitch"):
        assert (store.column(source)[extra] == 0).all(), source
    assert (store.column("measure_length")[extra] > 0).all()  # kept from the neighbour
    for source in ("mmidi_pitch", "mmidi_velocity", "mmidi_start_time", "onset_deviation", "articulation", "pedal_refresh"):
        assert (store.column(source)[unplayed] == 0).all(), source
    assert (store.column("velocity")[unplayed] > 0).all()  # carried from the previous row


def test_hierarchy_indices_are_continuous_in_every_segment(percepiano):
    store = percepiano.note_features
    for sid in store.segment_ids[::25]:
        rows = store.rows(sid)
        for name in ("beat_index", "measure_index"):
            idx = store.index[name][rows]
            assert idx[0] == 0 and set(np.unique(idx)) == set(range(idx.max() + 1)) and (np.diff(idx) >= 0).all()


def test_alignment_matches_most_performed_notes(percepiano):
    rates = np.array(list(percepiano.note_features.match_rate().values()))
    assert np.median(rates) > 0.95 and rates.mean() > 0.85


def test_tempo_curve_of_a_steady_performance():
    # one unit test of a single function on synthetic anchors: 120 qpm, no deviation
    q = np.arange(0, 16, 0.5)
    curve = TempoCurve(q, q * 0.5)
    assert np.allclose(curve.qpm(np.arange(0, 16, 1.0), 16.0), 120.0)
    assert np.allclose(curve(np.array([-1.0, 20.0])), [-0.5, 10.0])  # linear extrapolation
