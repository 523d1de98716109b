"""Note graphs of a real performance: voices, the seven edge sets, node features."""

import numpy as np
import pytest

from pianoeval.paths import BUNDLED_PERCEPIANO, asap_root
from pianoeval.symbolic import graphs
from pianoeval.data.midi import read_midi


@pytest.fixture(scope="module")
def fugue():
    # four real voices: Bach, WTC I fugue in C# major, the first 20 s
    return read_midi(asap_root() / "Bach/Fugue/bwv_848/Lee01M.mid").window(0.0, 20.0)


def _pairs(edges):
    return set(map(tuple, edges.tolist()))


@pytest.mark.asap
def test_voices_never_share_a_chord_and_stay_within_the_limit(fugue):
    groups = graphs.onset_groups(fugue.onset)
    voice = graphs.assign_voices(fugue, groups)
    assert voice.min() >= 1 and voice.max() <= graphs.MAX_VOICES
    for g in np.unique(groups):
        members = voice[groups == g]
        assert len(set(members)) == len(members)
    assert len(np.unique(voice)) >= 3  # a fugue exposition separates into several voices


@pytest.mark.asap
def test_edge_sets_mean_what_they_say(fugue):
    out = graphs.represent(fugue)
    onset, duration = out["nodes"][:, 0].astype(float), out["nodes"][:, 1].astype(float)
    groups = graphs.onset_groups(onset)
    for name in graphs.EDGE_SETS:
        pairs = out[f"edges_{name}"].astype(int)
        assert _pairs(pairs) == {(j, i) for i, j in _pairs(pairs)}, name  # stored both ways
        assert (pairs[:, 0] != pairs[:, 1]).all(), name
    onset_pairs = out["edges_onset"].astype(int)
    assert (groups[onset_pairs[:, 0]] == groups[onset_pairs[:, 1]]).all()
    temporal = out["edges_temporal"].astype(int)
    assert (np.abs(groups[temporal[:, 0]] - groups[temporal[:, 1]]) == 1).all()
    offset = onset + duration
    for i, j in out["edges_during"].astype(int):
        first, second = (i, j) if onset[i] < onset[j] else (j, i)
        assert onset[first] < onset[second] < offset[first]
    for i, j in out["edges_follow"].astype(int):
        assert min(abs(onset[j] - offset[i]), abs(onset[i] - offset[j])) <= graphs.CHORD_TOLERANCE + 1e-4
    voice = out["nodes"][:, 5].astype(int)
    voice_pairs = out["edges_voice"].astype(int)
    assert (voice[voice_pairs[:, 0]] == voice[voice_pairs[:, 1]]).all()
    assert len(out["edges_silence"]) > 0


def test_node_features_scale_the_raw_attributes():
    seq = read_midi(BUNDLED_PERCEPIANO / "performance_midi" / "Schubert_D960_mv2_8bars_10_12.mid")
    nodes = graphs.represent(seq)["nodes"]
    x = graphs.node_features(nodes)
    assert x.shape == (len(seq), graphs.NODE_FEATURE_DIM)
    assert np.allclose(x[:, graphs.VELOCITY_FEATURE], seq.velocity / 127.0)
    assert np.allclose(x[:, 1:13].sum(1), 1.0) and np.isfinite(x).all()
