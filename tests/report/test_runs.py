"""Run folders: which kind, clear errors for the wrong folder, epoch histories, the runner."""

import runpy
import shutil
import sys

import numpy as np
import pandas as pd
import pytest

from pianoeval.errors import ConfigError
from pianoeval.paths import REPO_ROOT
from pianoeval.report import find_run, load_sweep, read_history, run_kind
from pianoeval.report.runs import trial_folder


def test_run_kind_tells_the_three_kinds_apart(sweep_run_dir, ablation_run_dir, staged_run_dir):
    assert run_kind(sweep_run_dir) == "sweep"
    assert run_kind(ablation_run_dir) == "ablation"
    assert run_kind(staged_run_dir) == "staged"
    assert run_kind(staged_run_dir / "round1") == "ablation"  # a stage is an ablation run of its own


def test_wrong_folders_get_one_line_errors_with_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="no such directory"):
        run_kind(tmp_path / "missing")
    with pytest.raises(ConfigError, match="not a sweep or ablation run"):
        run_kind(tmp_path)
    unfinished = tmp_path / "sweeps" / "smoke" / "20261122-042832"
    unfinished.mkdir(parents=True)
    (unfinished / "sweep.yaml").write_text("space: smoke\n")
    # the run lives outside the default results folder: the hint names its --storage
    with pytest.raises(ConfigError, match=rf"runners/sweep.py --space smoke --storage {tmp_path} --resume "
                                          r"--run-id 20261122-042832"):
        run_kind(unfinished)


def test_progress_and_history_files_give_the_same_epochs(ablation_run_dir):
    trials = pd.read_parquet(ablation_run_dir / "trials.parquet")
    for trial_dir in trials["trial_dir"]:
        from_history, source = read_history(trial_folder(trial_dir, ablation_run_dir), prefer="history")
        from_progress, other = read_history(trial_folder(trial_dir, ablation_run_dir), prefer="progress")
        assert source.endswith("run/history.csv") and other.endswith("progress.csv")
        assert list(from_history["epoch"]) == list(from_progress["epoch"]) == [1]  # both count epochs from 1
        np.testing.assert_allclose(from_history["val/r2"], from_progress["val/r2"])


def test_a_moved_run_still_finds_its_trials(sweep_run_dir, tmp_path):
    moved = tmp_path / "copied" / sweep_run_dir.name
    shutil.copytree(sweep_run_dir, moved, ignore=shutil.ignore_patterns("checkpoint_*"))
    shutil.move(sweep_run_dir, tmp_path / "away")  # the recorded absolute paths now point nowhere
    try:
        run = load_sweep(moved)
        assert run.notes == [] and len(run.histories) == len(run.trials)
    finally:
        shutil.move(tmp_path / "away", sweep_run_dir)


def test_find_run_resolves_paths_from_the_repository_root(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # a notebook runs in results/notebooks/
    with pytest.raises(ConfigError, match="not a sweep or ablation run"):
        find_run("pianoeval", "sweep")  # found from the repo root, and then judged
    monkeypatch.setenv("PIANOEVAL_RESULTS", str(tmp_path))
    with pytest.raises(ConfigError, match="no finished sweep run yet"):
        find_run(None, "sweep")


def test_runner_writes_the_report_and_exits_2_on_a_bad_folder(sweep_run_dir, tmp_path, monkeypatch, capsys):
    script = str(REPO_ROOT / "runners" / "report.py")
    monkeypatch.setattr(sys, "argv", [script, str(sweep_run_dir), "--out", str(tmp_path / "out"), "--top-k", "2"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(script, run_name="__main__")
    assert done.value.code == 0 and (tmp_path / "out" / "report.md").is_file()
    top = (tmp_path / "out" / "report.md").read_text().split("## Top 2 trials")[1].split("## ")[0]
    assert [line.split("|")[1].strip() for line in top.splitlines() if line.startswith("| ")][2:] == ["1", "2"]
    monkeypatch.setattr(sys, "argv", [script, str(tmp_path)])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(script, run_name="__main__")
    assert done.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path}: not a sweep or ablation run (expected " \
                                              "sweep.yaml or ablation.yaml with trials.parquet, or stages.json)"
