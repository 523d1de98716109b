"""Label sets on the real bundled data: the 8-category taxonomy, labels JSON files, bad values."""

import json

import numpy as np
import pytest

from pianoeval.cli import run_cli
from pianoeval.data import load_percepiano
from pianoeval.data.labels import TAXONOMY_DIR, label_dimensions
from pianoeval.data.percepiano import LABEL_NAMES
from pianoeval.experiment import ExperimentConfig

CATEGORIES = {"timing": 1, "articulation": 2, "pedal": 2, "timbre": 4, "dynamics": 2, "music_making": 4, "mood": 3,
              "interpretation": 1}


def test_percepiano_categories_are_the_equal_weight_means_of_the_papers_groups(percepiano):
    data = load_percepiano(warn=lambda m: None, labels="percepiano_categories")
    assert data.label_names == tuple(CATEGORIES)
    assert data.labels.shape == (1202, 8)
    start = 0
    for d, size in enumerate(CATEGORIES.values()):  # the 19 dimensions are in category order
        np.testing.assert_allclose(data.labels[:, d], percepiano.labels[:, start:start + size].mean(1), rtol=1e-6)
        start += size
    assert start == len(LABEL_NAMES)
    assert np.isnan(data.label_std).all()  # a composite has no rater std
    by_path = load_percepiano(warn=lambda m: None, labels=str(TAXONOMY_DIR / "percepiano_categories.yaml"))
    np.testing.assert_array_equal(by_path.labels, data.labels)


def _write(tmp_path, content, name="labels.json"):
    path = tmp_path / name
    path.write_text(json.dumps(content))
    return str(path)


def test_a_labels_file_orders_its_dimensions_and_reports_unlabelled_segments(percepiano, tmp_path):
    keys = [s.segment_id for s in percepiano.segments[:40]]
    values = {k: {"warmth": 0.25, "drive": float(percepiano.by_id[k].labels[0])} for k in keys}
    sorted_path = _write(tmp_path, values)
    assert label_dimensions(sorted_path) == ("drive", "warmth")  # no list: sorted names
    listed = _write(tmp_path, {"dimensions": ["warmth", "drive"], **values}, "listed.json")
    assert label_dimensions(listed) == ("warmth", "drive")
    sidecar = _write(tmp_path, values, "side.json")
    _write(tmp_path, ["warmth", "drive"], "side.dimensions.json")
    assert label_dimensions(sidecar) == ("warmth", "drive")
    said = []
    data = load_percepiano(warn=said.append, labels=listed)
    assert len(data) == 40 and data.skipped["no_label_in_set"] == 1202 - 40
    assert any("skip 1162 segments without a label" in line for line in said)
    assert any("2 dimensions (warmth, drive)" in line for line in said)  # the order is always printed
    np.testing.assert_allclose(data.labels[:, 1], [percepiano.by_id[k].labels[0] for k in data.by_id], rtol=1e-6)


@pytest.mark.parametrize("value, problem", [(1.5, "outside [0, 1]"), ("high", "is not a number"),
                                            (None, "is not a number"), ("missing", "dimension drive is missing")])
def test_bad_label_values_are_one_line_errors_naming_file_key_and_dimension(percepiano, tmp_path, capsys, value,
                                                                            problem):
    key = percepiano.segments[3].segment_id
    entry = {"warmth": 0.5} if value == "missing" else {"warmth": 0.5, "drive": value}
    path = _write(tmp_path, {"dimensions": ["warmth", "drive"], percepiano.segments[0].segment_id:
                             {"warmth": 0.1, "drive": 0.2}, key: entry})
    code = run_cli(lambda: ExperimentConfig.resolve({"model": {"name": "han"}, "data": {"labels": path}}, "run.yaml"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert path in err and key in err and problem in err
    if value != "missing":
        assert "drive" in err


def test_an_unknown_label_set_names_the_choices(capsys):
    code = run_cli(lambda: ExperimentConfig.resolve({"model": {"name": "han"}, "data": {"labels": "categories8"}},
                                                    "run.yaml"))
    err = capsys.readouterr().err
    assert code == 2 and "run.yaml: data.labels: 'categories8'" in err and "percepiano_categories" in err


@pytest.mark.parametrize("name, text, problem", [
    ("empty_entries.json", '{"k1": {}, "k2": {}}', "no dimension names: every key's entry is empty"),
    ("folder.json", None, "is a folder, not a file"),
    ("composite_twice.yaml", "dimensions:\n  tempo: [timing_stable_to_unstable]\n  tempo: [pedal_clean_to_blurred]\n",
     "key 'tempo' appears twice (lines 2 and 3)"),
    ("source_twice.yaml", "dimensions:\n  art: [articulation_short_to_long, articulation_short_to_long]\n",
     "dimensions.art: 'articulation_short_to_long' is listed twice"),
    ("boolean_name.yaml", "dimensions:\n  yes: [timing_stable_to_unstable]\n", "composite name True is read as bool"),
    ("number_name.yaml", "dimensions:\n  1: [timing_stable_to_unstable]\n", "composite name 1 is read as int"),
    ("zero_weights.yaml", "dimensions:\n  t: {timing_stable_to_unstable: 0, pedal_clean_to_blurred: 0.0}\n",
     "dimensions.t: every weight is 0"),
])
def test_label_files_that_would_be_read_wrongly_are_one_line_errors(tmp_path, capsys, name, text, problem):
    """Files a reader would otherwise take in silently with another meaning: no dimensions at all, a
    composite defined twice (last wins), a source listed twice (half its weight), a YAML name that is
    not a string; and a folder named like a labels file."""
    path = tmp_path / name
    if text is None:
        path.mkdir()
    else:
        path.write_text(text)
    code = run_cli(lambda: ExperimentConfig.resolve({"model": {"name": "han"}, "data": {"labels": str(path)}},
                                                    "run.yaml"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert str(path) in err and problem in err
