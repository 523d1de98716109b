import json
import shutil

import numpy as np
import pytest

from pianoeval.data import LABEL_NAMES, load_percepiano
from pianoeval.data.percepiano import load_segments, parse_stem
from pianoeval.errors import DataError
from pianoeval.paths import BUNDLED_PERCEPIANO


def test_all_segments_load_with_labels(percepiano):
    assert len(percepiano) == 1202
    assert percepiano.labels.shape == (1202, 19)
    assert len(LABEL_NAMES) == 19
    # ratings / 7: the label range seen upstream is 0.143 - 0.976
    assert 0.14 <= percepiano.labels.min() and percepiano.labels.max() <= 1.0
    assert np.isfinite(percepiano.label_std).all()
    assert sum(s.is_score_rendering for s in percepiano.segments) == 99 + 30  # Score + Score2 renderings


def test_leading_space_file_is_found(percepiano):
    seg = percepiano.by_id["Schubert_D935_no.3_4bars_2_1"]
    assert seg.file_stem == " Schubert_D935_no.3_4bars_2_1"
    assert seg.performance_midi(percepiano.root).is_file()


def test_file_name_parsing():
    parts = parse_stem("Schubert_D960_mv3_8bars_8_13")
    assert parts == {"piece": "Schubert_D960_mv3_8bars", "bars": "8", "performer": "8", "segment": "13"}
    assert parse_stem("Beethoven_WoO80_var27_8bars_Score2_15")["performer"] == "Score2"


def test_same_piece_pairs_share_music(percepiano):
    pairs = percepiano.pairs()
    assert len(pairs) > 5000
    keys = np.array([s.score_key for s in percepiano.segments])
    assert (keys[pairs[:, 0]] == keys[pairs[:, 1]]).all()


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "nowhere")):
        load_segments(tmp_path / "nowhere")


def test_missing_label_file_names_the_path(tmp_path):
    root = tmp_path / "pp"
    (root / "performance_midi").mkdir(parents=True)
    (root / "score_mxl").mkdir()
    with pytest.raises(DataError, match="label file not found"):
        load_segments(root)


def test_segment_without_label_is_skipped_and_counted(tmp_path):
    root = tmp_path / "pp"
    shutil.copytree(BUNDLED_PERCEPIANO / "labels", root / "labels")
    (root / "score_mxl").mkdir()
    (root / "performance_midi").mkdir()
    real = "Schubert_D960_mv3_8bars_8_13"
    shutil.copy(BUNDLED_PERCEPIANO / "performance_midi" / f"{real}.mid", root / "performance_midi")
    shutil.copy(BUNDLED_PERCEPIANO / "performance_midi" / f"{real}.mid", root / "performance_midi" / "Schubert_D960_mv3_8bars_99_13.mid")
    labels = json.loads((root / "labels/label_2round_mean_reg_19_with0_rm_highstd0.json").read_text())
    (root / "labels/label_2round_mean_reg_19_with0_rm_highstd0.json").write_text(json.dumps({real: labels[real]}))
    warnings = []
    segments, skipped = load_segments(root, warn=warnings.append)
    assert [s.segment_id for s in segments] == [real]
    assert skipped["no_label"] == 1
    assert len(warnings) == 1 and "Schubert_D960_mv3_8bars_99_13" in warnings[0] and "no label" in warnings[0]


def test_public_api_import():
    data = load_percepiano(warn=lambda m: None)
    assert data.fold("performer", 0).sizes()["test"] == 193
