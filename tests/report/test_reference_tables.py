"""The PercePiano reproduction tables (pianoeval/report/reference.py, reference_tables.py and
runners/reference_tables.py) on real run folders: the parameter-free ``music_mean`` and
``global_mean`` fitted on performer folds 0 and 1 of the bundled data (seconds each), copied
under other names where a test needs more runs."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pianoeval.errors import ConfigError
from pianoeval.metrics import pairwise_accuracy, r2_mean
from pianoeval.report import reference_tables
from pianoeval.report.reference import find_runs, fold_ensemble, landing, paired_gain
from pianoeval.report.reference_tables import reference_markdown

ROOT = Path(__file__).resolve().parents[2]
FITTED = [(model, fold) for model in ("music_mean", "global_mean") for fold in (0, 1)]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    """A run root with music_mean-performer{0,1} and global_mean-performer{0,1}, made as
    ``runners/train.py --model M --split performer --fold K --threads 1 --out ...`` makes them."""
    from pianoeval.train.cli import build_config
    from pianoeval.train.run import train_run

    root = tmp_path_factory.mktemp("reference_runs")
    for model, fold in FITTED:
        train_run(build_config(model, None, "performer", fold, None, []), out_dir=root / f"{model}-performer{fold}",
                  threads=1, verbose=False)
    return root


def _copy(fitted: Path, root: Path, copies: dict[str, str]) -> Path:
    """``root`` holding each fitted run ``source`` under the name ``target``."""
    root.mkdir(exist_ok=True)
    for target, source in copies.items():
        shutil.copytree(fitted / source, root / target)
    return root


def _own_scores(run) -> tuple[float, float]:
    dims = [c[5:] for c in run.test.columns if c.startswith("pred/")]
    labels, pred = run.test[[f"label/{d}" for d in dims]].to_numpy(), run.test[[f"pred/{d}" for d in dims]].to_numpy()
    return r2_mean(labels, pred), pairwise_accuracy(labels, pred, run.test["group"].to_numpy()).mean


def test_the_runs_are_found_and_scored_as_their_metrics_say(fitted):
    runs = find_runs([fitted], cite="results/runs/reference")
    assert sorted((r.model, r.fold) for r in runs.finished) == sorted(FITTED)
    assert not runs.unfinished and not runs.skipped and not runs.not_used
    run = runs.folds("music_mean", "performer")[0]
    assert run.cited == "results/runs/reference/music_mean-performer0"
    assert run.command == ("python runners/train.py --model music_mean --split performer --fold 0 --seed 7 "
                           "--threads 1 --out results/runs/reference/music_mean-performer0")
    r2, pairwise = _own_scores(run)  # the project's metrics on the saved predictions give metrics.json's numbers
    assert r2 == pytest.approx(run.score("r2"), abs=1e-6)
    assert pairwise == pytest.approx(run.score("pairwise_acc"), abs=1e-6)
    assert len(run.test) == 193  # the fixed performer-split test set


def test_an_ensemble_of_identical_predictions_scores_as_the_single_model(fitted, tmp_path):
    root = _copy(fitted, tmp_path / "runs", {"twin-performer0": "music_mean-performer0",
                                             "twin-performer1": "music_mean-performer0",
                                             "twin-performer2": "music_mean-performer0"})
    runs = find_runs([root])
    twins = list(runs.folds("twin", "performer").values())
    single = fold_ensemble(twins[:1])
    ensemble = fold_ensemble(twins)
    assert ensemble.folds == (0, 1, 2) and ensemble.segments == 193 and not ensemble.note
    assert ensemble.r2 == pytest.approx(single.r2, abs=1e-12) == pytest.approx(twins[0].score("r2"), abs=1e-6)
    assert ensemble.pairwise == pytest.approx(single.pairwise, abs=1e-12)
    assert ensemble.pairwise == pytest.approx(twins[0].score("pairwise_acc"), abs=1e-6)
    assert ensemble.r2_per_dimension == pytest.approx(single.r2_per_dimension, abs=1e-12)


def test_an_ensemble_of_two_folds_averages_their_predictions(fitted):
    runs = find_runs([fitted])
    folds = list(runs.folds("music_mean", "performer").values())
    mean_pred = np.mean([r.test.filter(like="pred/").to_numpy(np.float64) for r in folds], axis=0)
    labels = folds[0].test.filter(like="label/").to_numpy(np.float64)
    assert fold_ensemble(folds).r2 == pytest.approx(r2_mean(labels, mean_pred), abs=1e-12)


def test_a_gain_has_a_t_interval_only_with_two_paired_folds(fitted, tmp_path, monkeypatch):
    runs = find_runs([fitted])
    two = paired_gain(runs, "performer", "music_mean", "global_mean")
    assert two.folds == (0, 1)
    for key in ("r2", "pairwise_acc"):
        diffs = [runs.folds("music_mean", "performer")[f].score(key) - runs.folds("global_mean", "performer")[f].score(key)
                 for f in (0, 1)]
        assert two.mean[key] == pytest.approx(np.mean(diffs))
        low, high = two.ci[key]
        assert low <= two.mean[key] <= high
    assert two.ci["r2"][1] - two.ci["r2"][0] > 0  # the two folds differ, so the interval has a width

    root = _copy(fitted, tmp_path / "runs", {"music_mean-performer0": "music_mean-performer0",
                                             "music_mean-performer1": "music_mean-performer1",
                                             "global_mean-performer0": "global_mean-performer0"})
    one = paired_gain(find_runs([root]), "performer", "music_mean", "global_mean")
    assert one.folds == (0,) and one.ci == {"r2": None, "pairwise_acc": None} and math.isfinite(one.mean["r2"])

    monkeypatch.setattr(reference_tables, "GAIN_PAIRS", (("music_mean", "global_mean"),))
    assert "no CI: fewer than 2 paired folds" in reference_markdown(find_runs([root]))
    text = reference_markdown(runs)
    assert "no CI" not in text and f"{two.mean['r2']:+.3f} [{two.ci['r2'][0]:+.3f}, {two.ci['r2'][1]:+.3f}]" in text


def test_runs_without_usable_predictions_are_skipped_and_counted(fitted, tmp_path):
    root = _copy(fitted, tmp_path / "runs", {"music_mean-performer0": "music_mean-performer0",
                                             "music_mean-performer1": "music_mean-performer1",
                                             "global_mean-performer0": "global_mean-performer0"})
    (root / "music_mean-performer1" / "predictions.parquet").unlink()
    (root / "global_mean-performer0" / "predictions.parquet").write_bytes(b"PAR1 cut short")
    runs = find_runs([root])
    assert [r.cited for r in runs.finished] == [str(root / "music_mean-performer0")]
    assert sorted(r.why for r in runs.skipped) == ["no predictions.parquet", "predictions.parquet unreadable"]
    text = reference_markdown(runs)
    assert "Skipped (2): " in text
    assert "| *`music_mean` (reference)* | 0.355 / 0.500 | *skipped* | – | – | 0.355 (n=1) |" in text


def test_an_unfinished_run_is_listed_with_its_last_epoch(fitted, tmp_path):
    root = _copy(fitted, tmp_path / "runs", {"music_mean-performer0": "music_mean-performer0",
                                             "han-performer0": "music_mean-performer0"})
    for name in ("metrics.json", "predictions.parquet"):  # a run still training: history.csv only
        (root / "han-performer0" / name).unlink()
    runs = find_runs([root])
    assert [(r.model, r.why) for r in runs.unfinished] == [("han", "unfinished (last epoch 1 in history.csv)")]
    text = reference_markdown(runs)
    assert "| `han` | *running/unfinished* | – | – | – |" in text
    assert "No finished `han` run on this split yet." in text


def test_a_name_under_two_roots_is_read_once(fitted, tmp_path):
    first = _copy(fitted, tmp_path / "a", {"music_mean-performer0": "music_mean-performer0"})
    second = _copy(fitted, tmp_path / "b", {"music_mean-performer0": "music_mean-performer0"})
    runs = find_runs([first, second])
    assert [r.cited for r in runs.finished] == [str(first / "music_mean-performer0")]
    assert [r.why for r in runs.not_used] == [f"under {second} too; the one under {first} is used"]
    cited = find_runs([first, second], cite="results/runs/reference")  # no read paths where the tables cite others
    assert [r.why for r in cited.not_used] == ["in 2 of the --runs folders; the first finished copy is used"]


def test_a_root_without_runs_is_a_one_line_error(tmp_path):
    (tmp_path / "empty" / "notes").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"--runs .*empty: holds no runs"):
        find_runs([tmp_path / "empty"])
    with pytest.raises(ConfigError, match=r"--runs .*absent: no such folder"):
        find_runs([tmp_path / "absent"])


def test_where_a_model_lands_against_the_paper():
    assert landing(0.30, 0.05, 0.285) == "within"
    assert landing(0.40, 0.05, 0.285) == "above"
    assert landing(0.20, 0.05, 0.285) == "below"
    assert landing(0.357, float("nan"), 0.397) == "below"  # one fold: no sd, never within


def _runner(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "runners/reference_tables.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_runner_writes_the_tables_and_exits_2_on_a_bad_root(fitted, tmp_path):
    out = tmp_path / "reference.md"
    done = _runner("--runs", str(fitted), "--out", str(out), "--cite", "results/runs/reference")
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert text.startswith("### Performer split") and "`results/runs/reference/global_mean-performer1`" in text
    assert "4 runs, " in text

    missing = tmp_path / "no_such_runs"
    done = _runner("--runs", str(fitted), str(missing))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [f"error: --runs {missing}: no such folder (give folders of runs "
                                                "named <model>-<split><fold>, e.g. results/runs/reference)"]
