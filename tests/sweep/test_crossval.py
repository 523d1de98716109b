"""Cross-validated sweeps: folds inside a trial, fold-level pruning, resume mid-fold,
extending a finished sweep, importance and confirmation; on the real bundled data."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
import yaml
from ray.tune.schedulers import TrialScheduler

from pianoeval.errors import ConfigError
from pianoeval.paths import REPO_ROOT
from pianoeval.sweep import SweepOptions, load_space, run_sweep
from pianoeval.ablation.confirm import check_confirm, run_confirmation
from pianoeval.sweep.crossval import FOLD_DONE, FoldPruner, behind_incumbent, fold_order
from pianoeval.sweep.record import check_extension, planned_parts

HERE = Path(__file__).parent
CV_SPACE = HERE / "spaces" / "crossval.yaml"
SWEEP = [sys.executable, str(REPO_ROOT / "runners" / "sweep.py")]


# --- the rules, on a deterministic fake objective -------------------------------------------
def test_fold_order_starts_with_the_first_listed_fold_then_a_fixed_permutation_per_trial():
    order = fold_order((2, 0, 1, 3), 0, "abc")
    assert sorted(order) == [0, 1, 2, 3] and order == fold_order((2, 0, 1, 3), 0, "abc")
    orders = {tuple(fold_order((2, 0, 1, 3), 0, f"t{i}")) for i in range(20)}
    assert {o[0] for o in orders} == {2}  # ASHA's rungs compare every trial on the same fold
    assert len(orders) > 1


def test_behind_incumbent_compares_on_the_shared_folds_only():
    incumbent = {0: 0.70, 1: 0.60, 2: 0.65, 3: 0.62}
    assert behind_incumbent({1: 0.55}, incumbent, "max", 0.02)  # 0.05 behind on fold 1
    assert not behind_incumbent({1: 0.59}, incumbent, "max", 0.02)
    assert not behind_incumbent({0: 0.66, 1: 0.62}, incumbent, "max", 0.02)  # mean 0.64 vs 0.65
    assert behind_incumbent({0: 0.012}, {0: 0.010}, "min", 0.001)  # a loss: lower is better
    assert not behind_incumbent({4: 0.1}, incumbent, "max", 0.0)  # nothing shared: no verdict


def _fold_result(values: dict[int, float]) -> dict:
    return {FOLD_DONE: 1, "val/pairwise_acc": sum(values.values()) / len(values),
            **{f"fold{k}/val/pairwise_acc": v for k, v in values.items()}}


def test_fold_pruner_stops_a_clearly_worse_trial_after_its_first_fold():
    pruner = FoldPruner(folds=(0, 1, 2, 3), max_gap=0.02, metric="val/pairwise_acc", mode="max",
                        time_attr="asha_epoch", max_t=5, grace_period=1)
    good, worse, close = (SimpleNamespace(trial_id=name) for name in ("good", "worse", "close"))
    fake = {0: 0.66, 1: 0.62, 2: 0.64, 3: 0.63}  # the good config's per-fold objective
    for k in range(4):
        values = {f: fake[f] for f in range(k + 1)}
        assert pruner.on_trial_result(None, good, _fold_result(values)) == TrialScheduler.CONTINUE
    assert pruner.incumbent() == fake
    assert pruner.on_trial_result(None, worse, _fold_result({2: 0.55})) == TrialScheduler.STOP
    assert pruner.on_trial_result(None, close, _fold_result({3: 0.62})) == TrialScheduler.CONTINUE
    assert pruner.fold_stopped == 1
    off = FoldPruner(folds=(0, 1), max_gap=None, metric="val/pairwise_acc", mode="max", time_attr="asha_epoch",
                     max_t=5, grace_period=1)
    off.on_trial_result(None, good, _fold_result({0: 0.7, 1: 0.7}))
    assert off.on_trial_result(None, worse, _fold_result({0: 0.1})) == TrialScheduler.CONTINUE


# --- bad input: one line, before anything runs ------------------------------------------------
@pytest.mark.parametrize("folds, message", [("[0, 7]", "fold 7 is out of range (allowed: 0-3"),
                                            ("[1, 1]", "listed twice"), ("[]", "the list is empty"),
                                            ("[0, true]", "budget.folds")])
def test_bad_budget_folds_are_one_line_errors(folds, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_space("smoke", {"budget.folds": yaml.safe_load(folds)})


@pytest.mark.parametrize("args, message", [
    (["--confirm", "9", "--set", "budget.num_samples=4"], "--confirm 9: more than the 4 trials"),
    (["--set", "budget.folds=[0,9]"], "budget.folds: fold 9 is out of range"),
])
def test_bad_sweep_flags_exit_2_in_one_line(args, message, tmp_path):
    done = subprocess.run([*SWEEP, "--space", "smoke", "--dry-run", *args], capture_output=True, text=True,
                          env={**os.environ, "PIANOEVAL_RESULTS": str(tmp_path)}, timeout=120)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_extension_refuses_fewer_samples_and_a_journal_of_another_sweep(tmp_path):
    space = load_space("smoke")
    run = tmp_path / "run"
    run.mkdir()
    (run / "sweep.yaml").write_text(yaml.safe_dump({"num_samples": 6, "parts": [{"name": "", "num_samples": 6}]}))
    planned = planned_parts(run)
    assert planned == [("", 6)]
    with pytest.raises(ConfigError, match="already has 6 trials; to extend it ask for more than 6"):
        check_extension(space, run, "run", planned, 4)
    check_extension(space, run, "run", planned, None)  # a plain resume
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run / "optuna.journal")))
    optuna.create_study(study_name="han/other", storage=storage)
    with pytest.raises(ConfigError, match="belongs to another sweep"):
        check_extension(space, run, "run", planned, 12)


# --- on the real data ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cv_run(ray_session, tmp_path_factory):
    storage = str(tmp_path_factory.mktemp("cv") / "results")
    lines = []
    space = load_space(CV_SPACE)
    result = run_sweep(space, SweepOptions(storage=storage, max_concurrent=1, evaluate_test=True,
                                           print_fn=lines.append))
    return SimpleNamespace(space=space, result=result, lines=lines, storage=storage)


def test_a_two_fold_sweep_writes_per_fold_columns_means_and_cost(cv_run):
    trials = pd.read_parquet(cv_run.result.run_dir / "trials.parquet").set_index("config/train.lr")
    good = trials.loc[3e-3]
    assert good["status"] == "completed" and good["folds_done"] == 2 and good["epochs_run"] == 2
    assert good["best/val/r2"] == pytest.approx((good["fold0/val/r2"] + good["fold1/val/r2"]) / 2)
    assert good["sd/val/r2"] > 0 and good["cpu_seconds"] > 0
    assert {"fold0/val/pairwise_acc", "fold1/val/pairwise_acc", "sd/val/pairwise_acc"} <= set(trials.columns)
    for fold in (0, 1):  # each fold trained in its own folder of the trial
        assert json.loads((cv_run.result.run_dir / good["trial_dir"] / f"fold{fold}" / "metrics.json")
                          .read_text())["status"] == "completed"
    summary = (cv_run.result.run_dir / "summary.md").read_text()
    assert "| fold 0 | fold 1 |" in summary and "fold-epochs" in summary
    best = yaml.safe_load((cv_run.result.run_dir / "best.yaml").read_text())
    assert best["train"]["lr"] == 3e-3 and best["provenance"]["folds"] == [0, 1]


def test_evaluate_test_records_each_fold_models_test_score_without_selecting_on_it(cv_run):
    trials = pd.read_parquet(cv_run.result.run_dir / "trials.parquet").set_index("config/train.lr")
    good = trials.loc[3e-3]
    for fold in (0, 1):
        metrics = json.loads((cv_run.result.run_dir / good["trial_dir"] / f"fold{fold}" / "metrics.json").read_text())
        assert good[f"fold{fold}/test/r2"] == pytest.approx(metrics["test/r2"])
        assert good[f"fold{fold}/val/r2"] == pytest.approx(metrics["val/r2"])
    assert good["cv/test/r2"] == pytest.approx((good["fold0/test/r2"] + good["fold1/test/r2"]) / 2)
    assert good["best/val/r2"] != pytest.approx(good["cv/test/r2"])  # the objective stays validation


def test_each_reference_is_fitted_on_each_fold_and_summarised_by_its_mean(cv_run):
    run_dir = cv_run.result.run_dir
    references = pd.read_parquet(run_dir / "references.parquet")
    assert list(zip(references["model"], references["fold"])) == [("global_mean", 0), ("global_mean", 1),
                                                                 ("music_mean", 0), ("music_mean", 1)]
    fitted = {(r.model, r.fold): json.loads((run_dir / r.trial_dir / "metrics.json").read_text())
              for r in references.itertuples()}
    assert all("test/r2" in m for m in fitted.values())  # --evaluate-test: test too, as for the trials
    summary = (run_dir / "summary.md").read_text().split("## Reference baselines", 1)[1]
    assert "| reference | predicts | status | val/r2 mean | sd | fold 0 | fold 1 | val/pairwise_acc mean |" in summary
    line = next(line for line in summary.splitlines() if line.startswith("| music_mean |"))
    mean, _, fold0, fold1 = (float(cell) for cell in line.strip("|").split("|")[3:7])
    folds = [fitted[("music_mean", k)]["val/r2"] for k in (0, 1)]
    assert [mean, fold0, fold1] == pytest.approx([sum(folds) / 2, *folds], abs=1e-4)


def test_the_showcase_pairs_the_winner_with_a_reference_by_fold(cv_run, tmp_path):
    """runners/reference_tables.py --sweep: the winner's fold models against a reference
    model's runs on the same folds (here music_mean, fitted in seconds), paired by fold."""
    from pianoeval.report.reference import find_runs, load_sweep_winner
    from pianoeval.report.reference_tables import showcase_markdown
    from pianoeval.train.cli import build_config
    from pianoeval.train.run import train_run

    runs_root = tmp_path / "reference"
    for fold in (0, 1):
        train_run(build_config("music_mean", None, "performer", fold, None, []),
                  out_dir=runs_root / f"music_mean-performer{fold}", threads=1, verbose=False)
    winner = load_sweep_winner(cv_run.result.run_dir)
    trials = pd.read_parquet(cv_run.result.run_dir / "trials.parquet").set_index("config/train.lr")
    assert winner.trial_id == trials.loc[3e-3, "trial_id"] and sorted(winner.folds) == [0, 1]
    assert winner.trials == 2 and winner.cpu_seconds == pytest.approx(trials["cpu_seconds"].sum())
    runs = find_runs([runs_root])
    ref = runs.folds("music_mean", "performer")
    text = showcase_markdown(runs, winner, against="music_mean")
    diffs = [winner.folds[f].score("r2") - ref[f].score("r2") for f in (0, 1)]
    assert f"{sum(diffs) / 2:+.3f} [" in text  # the paired mean difference, with its interval
    assert "fold ensemble (test)" in text and "the whole sweep (2 trials)" in text
    with pytest.raises(ConfigError, match="--against han: no finished han-performer<fold> run"):
        showcase_markdown(runs, winner, against="han")
    done = subprocess.run([sys.executable, str(REPO_ROOT / "runners" / "reference_tables.py"), "--runs",
                           str(runs_root), "--sweep", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no best.yaml and trials.parquet there" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_fold_pruning_stops_the_hopeless_config_after_its_first_fold(cv_run):
    trials = pd.read_parquet(cv_run.result.run_dir / "trials.parquet").set_index("config/train.lr")
    lines = [line for line in cv_run.lines if line.startswith("[sweep] trial")]
    assert "lr=0.003" in lines[0], "the grid seed should draw the good rate first: " + lines[0]
    hopeless = trials.loc[1e-8]
    assert hopeless["status"] == "pruned" and hopeless["pruned_after"] == "fold" and hopeless["folds_done"] == 1
    assert hopeless["epochs_run"] == 1  # one fold of one epoch: half the compute of a full trial
    assert "pruned after 1 of 2 folds" in lines[1]


def test_confirmation_retrains_the_top_config_on_every_fold(cv_run):
    space, run_dir = cv_run.space, cv_run.result.run_dir
    trials = pd.read_parquet(run_dir / "trials.parquet")
    with pytest.raises(ConfigError, match="--confirm 2: only 1 trials .* finished every fold"):
        check_confirm(space, trials, 2, run_dir)
    from pianoeval.ablation.runner import AblationOptions

    table = run_confirmation(space, run_dir, 1, AblationOptions(storage=cv_run.storage, print_fn=lambda line: None),
                             say=lambda line: None)
    assert len(table) == 1 and table.iloc[0]["folds"] == 4  # every fold of the performer split
    summary = (run_dir / "summary.md").read_text()
    assert "## Confirmation" in summary and "optimism" in summary
    best = yaml.safe_load((run_dir / "best.yaml").read_text())
    assert best["provenance"]["chosen_by"] == "confirmation" and (run_dir / "best_search.yaml").is_file()
    assert (run_dir / "confirm" / "comparison.md").is_file()


def test_extending_a_finished_sweep_adds_trials_and_retrains_nothing(ray_session, tmp_path):
    storage = str(tmp_path / "results")
    overrides = {"budget.max_epochs": 1, "budget.num_samples": 3, "data.max_train_segments": 40}
    first = run_sweep(load_space("smoke", overrides), SweepOptions(storage=storage, run_id="ext",
                                                                   print_fn=lambda line: None))
    before = {p.parent.name: p.read_text() for p in first.run_dir.glob("trial_*/result.json")}
    assert len(before) == 3
    lines = []
    extended = run_sweep(load_space("smoke", overrides), SweepOptions(storage=storage, run_id="ext", resume=True,
                                                                      num_samples=5, print_fn=lines.append))
    trials = pd.read_parquet(extended.run_dir / "trials.parquet")
    assert len(trials) == 5 and trials["trial_id"].is_unique
    for name, content in before.items():  # the first three were not trained again
        assert (first.run_dir / name / "result.json").read_text() == content
    assert sum(t.startswith("extend-1/") for t in trials["trial_dir"]) == 2
    assert any("extending run ext from 3 to 5 trials" in line for line in lines)
    storage_ = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(extended.run_dir / "optuna.journal")))
    study = optuna.load_study(study_name="smoke/ext", storage=storage_)  # one study: the sampler saw the first 3
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 5
    assert yaml.safe_load((extended.run_dir / "sweep.yaml").read_text())["num_samples"] == 5
    summary = (extended.run_dir / "summary.md").read_text()  # importance over the 5 finished trials
    assert "## Hyper-parameter importance" in summary and "| train.lr |" in summary
    assert (extended.run_dir / "importance.png").stat().st_size > 1000


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_mid_fold_resumes_without_retraining_a_finished_fold(ray_session, tmp_path):
    storage = tmp_path / "results"
    env = {**os.environ, "PIANOEVAL_RESULTS": str(storage), "PYTHONUNBUFFERED": "1"}
    cmd = [*SWEEP, "--space", "smoke", "--run-id", "cv", "--max-concurrent", "1", "--set", "budget.num_samples=2",
           "--set", "budget.max_epochs=2", "--set", "budget.folds=[0,1]", "--set", "data.max_train_segments=40",
           "--set", "budget.fold_max_gap=null", "--set", "budget.grace_period=2"]
    run_dir = storage / "sweeps" / "smoke" / "cv"
    with open(tmp_path / "first.log", "w") as log:
        driver = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:  # the first trial has finished a fold and is training its second one
            _wait(lambda: any(len(list(t.glob("fold*"))) == 2 and list(t.glob("fold*/metrics.json"))
                              for t in run_dir.glob("trial_*")), 600, "a trial in its second fold")
        finally:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    finished = {p: p.read_text() for p in run_dir.glob("trial_*/fold*/metrics.json")}
    assert finished
    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=env, timeout=900)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    trials = pd.read_parquet(run_dir / "trials.parquet")
    assert len(trials) == 2 and trials["trial_id"].is_unique and (trials["folds_done"] == 2).all()
    for path, content in finished.items():  # a finished fold is read back, never trained again
        assert path.read_text() == content
