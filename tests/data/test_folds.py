"""Fold files on the real bundled data: the built-in splits written as files, piece leakage
refused (and reported by check_split.py), malformed files as one-line errors."""

import json
import runpy
import sys
from pathlib import Path

import pytest

from pianoeval.cli import run_cli
from pianoeval.data import leakage_warnings
from pianoeval.data.folds import builtin_fold_file
from pianoeval.experiment import ExperimentConfig
from pianoeval.paths import REPO_ROOT


@pytest.fixture(scope="module")
def written(percepiano, tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("folds")
    paths = {}
    for split in ("piece", "performer"):
        paths[split] = str(folder / f"written_{split}.json")
        Path(paths[split]).write_text(json.dumps(builtin_fold_file(percepiano.segments, split)))
    return paths


def resolve(data: dict, source="run.yaml"):
    return ExperimentConfig.resolve({"model": {"name": "han"}, "data": data}, source)


def one_line_error(capsys, data: dict) -> str:
    code = run_cli(lambda: resolve(data))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    return err


def check_split(capsys, *args) -> tuple[int, str, str]:
    argv = sys.argv
    sys.argv = ["check_split.py", *args]
    try:
        runpy.run_path(str(REPO_ROOT / "runners" / "check_split.py"), run_name="__main__")
        code = 0
    except SystemExit as exit:
        code = exit.code
    finally:
        sys.argv = argv
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("fold", range(4))
def test_a_written_piece_split_gives_exactly_the_built_in_folds(percepiano, written, fold):
    from_file = percepiano.fold(written["piece"], fold)
    built_in = percepiano.fold("piece", fold)
    assert (from_file.train, from_file.validation, from_file.test) == (built_in.train, built_in.validation,
                                                                        built_in.test)


def test_the_clean_file_passes_the_audit_and_resolves(written, capsys):
    code, out, _ = check_split(capsys, written["piece"])
    assert code == 0 and "every fold passes" in out and "leaked_pieces" in out
    assert resolve({"split": written["piece"], "fold": 3}).data.fold == 3


def _leaky(percepiano, written, tmp_path) -> tuple[str, str]:
    """The written piece split with half of one validation piece's performances moved to training."""
    folds = json.loads(Path(written["piece"]).read_text())
    val = folds["folds"][0]["val"]
    piece = percepiano.by_id[val[0]].score_key
    moved = [k for k in val if percepiano.by_id[k].score_key == piece][::2]
    folds["folds"][0]["val"] = [k for k in val if k not in moved]
    folds["folds"][0]["train"] += moved
    path = tmp_path / "leaky.json"
    path.write_text(json.dumps(folds))
    return str(path), piece


def test_piece_leakage_is_refused_naming_the_file_fold_and_pieces(percepiano, written, tmp_path, capsys):
    path, piece = _leaky(percepiano, written, tmp_path)
    err = one_line_error(capsys, {"split": path, "fold": 2})  # any fold of the file: the file is refused
    assert f"{path}: fold 0: piece leakage: 1 of 39 validation/test pieces also have keys in training: {piece}" in err
    code, out, err = check_split(capsys, path)
    assert code == 2 and f"fold 0: 1 leaked pieces (train and val/test): {piece}" in out
    assert f"{path}: folds [0] fail the audit" in err


def test_the_performer_split_leaks_every_piece_unless_allowed(written, capsys):
    err = one_line_error(capsys, {"split": written["performer"]})
    assert "fold 0: piece leakage: 99 of 99" in err and "data.allow_piece_leakage: true" in err
    config = resolve({"split": written["performer"], "allow_piece_leakage": True})
    warnings = leakage_warnings("percepiano19", config.data.split, None, True)
    assert len(warnings) == 4 and all(w.startswith("WARNING") and "99 of 99" in w for w in warnings)


def test_a_pieces_map_decides_what_a_piece_is(percepiano, written, tmp_path, capsys):
    works: dict[str, list[str]] = {}
    for seg in percepiano.segments:  # coarser pieces: whole works, which the piece split spreads over folds
        works.setdefault(seg.work, []).append(seg.segment_id)
    pieces = tmp_path / "works.json"
    pieces.write_text(json.dumps(works))
    err = one_line_error(capsys, {"split": written["piece"], "pieces": str(pieces)})
    assert "fold 0: piece leakage: 4 of 4" in err and "Beethoven_WoO80" in err
    code, out, _ = check_split(capsys, written["piece"], "--pieces", str(pieces))
    assert code == 2 and "4 leaked pieces" in out


@pytest.mark.parametrize("content, data, message", [
    ({"train": ["x"]}, {}, "expected a list of folds"),
    ("not folds", {}, "expected a non-empty list of folds"),
    ([{"train": [], "val": [], "dev": []}], {}, "fold 0: unknown entry 'dev'"),
    (None, {"fold": 4}, "data.fold: 4 is out of range: {path} has 4 folds (allowed: 0-3)"),
    ("both", {}, "fold 1: 1 keys are on two sides of the fold"),
    ("unknown", {}, "fold 0: 2 unknown keys"),
])
def test_bad_folds_files_are_one_line_errors_naming_file_and_fold(written, tmp_path, capsys, content, data, message):
    folds = json.loads(Path(written["piece"]).read_text())
    if content == "both":
        folds["folds"][1]["val"].append(folds["folds"][1]["train"][0])
    elif content == "unknown":
        folds["folds"][0]["train"] += ["Chopin_op10_8bars_1_1", "nonsense"]
    elif content is not None:
        folds = content
    path = tmp_path / "folds.json"
    path.write_text(json.dumps(folds))
    err = one_line_error(capsys, {"split": str(path), **data})
    assert message.format(path=path) in err and str(path) in err


def _edited(written, tmp_path, edit) -> str:
    folds = json.loads(Path(written["piece"]).read_text())
    edit(folds)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(folds))
    return str(path)


def _keep(side: str, n: int):
    def edit(folds):
        if side == "test":
            folds["test"] = folds["test"][:n]
        else:
            folds["folds"][2][side] = folds["folds"][2][side][:n]
    return edit


@pytest.mark.parametrize("edit, message", [
    (_keep("train", 0), "fold 2: train (0 labelled keys): a fold needs at least 2"),
    (_keep("val", 1), "fold 2: val (1 labelled keys): a fold needs at least 2"),
    (_keep("test", 1), "fold 0: test (1 labelled keys): a fold needs at least 2"),  # a test list of one: no R2
    (lambda folds: folds["folds"][3]["val"].append(folds["folds"][3]["val"][5]),
     "fold 3: 1 keys are listed twice on one side of the fold"),
])
def test_folds_with_a_short_side_or_a_key_twice_on_one_side_are_refused_before_a_run(written, tmp_path, capsys,
                                                                                      edit, message):
    """A side with fewer than 2 labelled keys crashed the run after its data loaded (or after training, at
    the test evaluation); a key listed twice on one side was used once without a word."""
    path = _edited(written, tmp_path, edit)
    err = one_line_error(capsys, {"split": path, "fold": 1})  # any fold of the file: the file is refused
    assert f"{path}: {message}" in err
    code, out, _ = check_split(capsys, path)
    assert code == 2 and ("sides with fewer than 2" in out or "listed twice on one side" in out)


@pytest.mark.parametrize("edit", [lambda folds: folds.pop("test"), _keep("test", 0)], ids=["no test", "empty test"])
def test_a_folds_file_without_a_test_list_passes_and_says_its_runs_are_judged_on_validation(written, tmp_path,
                                                                                          capsys, edit):
    path = _edited(written, tmp_path, edit)
    code, out, _ = check_split(capsys, path)
    assert code == 0 and f"{path}: folds [0, 1, 2, 3] have no test list: their runs are evaluated on validation only" in out
    config = ExperimentConfig.resolve({"model": {"name": "music_mean"}, "data": {"split": path, "fold": 3}})
    assert config.data.split == path


def test_write_needs_out(capsys):
    code, _, err = check_split(capsys, "--write", "piece")
    assert code == 2 and "--write needs --out" in err
