"""Watching runs: TensorBoard files in every trial folder, MLflow and W&B by --logger."""

import argparse
import math
import subprocess
import sys
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pianoeval.ablation.cli import main
from pianoeval.errors import ConfigError
from pianoeval.paths import REPO_ROOT
from pianoeval.sweep import SweepOptions, load_space, run_sweep
from pianoeval.sweep.tracking import LoggerChoice, parse_loggers, wandb_mode

TINY_SWEEP = {"budget.max_epochs": 2, "budget.num_samples": 2, "data.max_train_segments": 40}


def _scalars(trial_dir: Path) -> dict[str, dict[int, float]]:
    """Every scalar of a trial folder's TensorBoard files: tag -> {step: value}."""
    events = EventAccumulator(str(trial_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: {s.step: s.value for s in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def _assert_curves_match_history(trial_dir: Path) -> dict[str, dict[int, float]]:
    assert list(trial_dir.glob("events.out.tfevents.*")), f"no TensorBoard file in {trial_dir}"
    scalars = _scalars(trial_dir)
    history = pd.read_csv(trial_dir / "run" / "history.csv")
    metrics = [c for c in history.columns if c not in ("epoch", "seconds")]
    assert "val/r2" in metrics and "train/loss" in metrics
    for column in metrics:
        curve = scalars[f"ray/tune/{column}"]
        for epoch, value in zip(history["epoch"], history[column]):
            if math.isnan(value):
                assert epoch not in curve  # NaN is not written
            else:
                assert curve[epoch] == pytest.approx(value, rel=1e-5, abs=1e-7), (column, epoch)
    return scalars


def test_loggers_parse_and_reject_unknown_or_repeated_ones():
    assert parse_loggers(["mlflow", "wandb=my-project"]) == (LoggerChoice("mlflow"), LoggerChoice("wandb", "my-project"))
    assert parse_loggers(["mlflow=sqlite:////tmp/x.db"])[0].target == "sqlite:////tmp/x.db"
    with pytest.raises(ConfigError, match="unknown logger 'comet'; use mlflow"):
        parse_loggers(["comet"])
    with pytest.raises(ConfigError, match="given twice"):
        parse_loggers(["wandb", "wandb=p"])


def test_a_logger_without_its_extra_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` now raises ImportError
    with pytest.raises(ConfigError) as err:
        parse_loggers(["mlflow"])
    assert str(err.value) == ("--logger mlflow: mlflow is not installed; install the 'tracking' extra: "
                              "pip install -e '.[tracking]'")


@pytest.mark.parametrize("runner", [["runners/sweep.py", "--space", "smoke"], ["runners/ablate.py", "han_incremental"]])
def test_the_runners_exit_2_with_one_line_when_the_extra_is_missing(runner, tmp_path):
    script = ("import runpy, sys; sys.modules['wandb'] = None; sys.argv = sys.argv[1:]; "
              "runpy.run_path(sys.argv[0], run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", script, *runner, "--logger", "wandb", "--storage", str(tmp_path)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1:] == [
        "error: --logger wandb: wandb is not installed; install the 'tracking' extra: pip install -e '.[tracking]'"]
    assert not (tmp_path / "sweeps").exists() and not (tmp_path / "ablations").exists()  # nothing started


def test_wandb_is_offline_unless_logged_in_and_reachable(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))  # no stored credentials
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    assert wandb_mode() == ("offline", "not logged in")
    # logged in, but the server does not answer (a closed local port): offline, and says why
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    mode, why = wandb_mode()
    assert mode == "offline" and why.startswith("cannot reach http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_MODE", "disabled")  # the user's choice wins
    assert wandb_mode() == ("disabled", "WANDB_MODE is set")


def test_a_tiny_sweep_writes_tensorboard_mlflow_and_wandb_runs_that_match_history(ray_session, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")  # no network in tests (the default without a login)
    lines = []
    result = run_sweep(load_space("smoke", TINY_SWEEP),
                       SweepOptions(storage=str(tmp_path), loggers=("mlflow", "wandb"), print_fn=lines.append))
    trials = pd.read_parquet(result.run_dir / "trials.parquet")
    assert len(trials) == 2
    assert f"[sweep] watch: tensorboard --logdir {result.run_dir}  |  optuna-dashboard " \
           f"{result.run_dir}/optuna.journal" in lines
    for trial_dir in trials["trial_dir"]:
        _assert_curves_match_history(result.run_dir / trial_dir)
        offline = list((result.run_dir / trial_dir / "wandb").glob("offline-run-*"))
        assert len(offline) == 1 and list(offline[0].glob("run-*.wandb")), trial_dir

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{result.run_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sweeps/smoke")
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    assert set(runs) == set(trials["trial_dir"])  # one run per trial, named by its folder
    for trial_dir in trials["trial_dir"]:
        run = runs[trial_dir]
        assert {k: run.data.tags[k] for k in ("space", "fold", "seed", "run")} == {
            "space": "smoke", "fold": "0", "seed": "7", "run": result.run_dir.name}
        assert run.data.tags["git_commit"] == trials.iloc[0]["git_commit"]
        history = pd.read_csv(result.run_dir / trial_dir / "run" / "history.csv")
        for column in ("train/loss", "val/r2", "val/pairwise_acc"):
            logged = {m.step: m.value for m in client.get_metric_history(run.info.run_id, column)}
            assert logged == pytest.approx(dict(zip(history["epoch"], history[column])), rel=1e-9), column

    # the study's journal (what optuna-dashboard opens) holds every trial
    study = optuna.load_study(study_name=f"smoke/{result.run_dir.name}",
                              storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
                                  str(result.run_dir / "optuna.journal"))))
    assert len(study.trials) == 2


def test_an_ablation_names_trial_folders_by_variant_and_logs_its_final_evaluation_apart(ray_session, tmp_path):
    args = argparse.Namespace(name="han_incremental", dry_run=False, no_estimate=True, resume=False, run_id="test",
                              address=None, storage=str(tmp_path), num_cpus=None, max_concurrent=None, only=["han"],
                              until=None, logger=["mlflow"], max_failures=2, connect_timeout=30.0,
                              set=["budget.max_epochs=1", "folds=[0]", "seeds=[0]", "data.max_train_segments=40",
                                   "model.hidden_size=16", "data.eval_batch_size=64", "reference_baselines=[]"])
    assert main(args) == 0
    run_dir = tmp_path / "ablations" / "han_incremental" / "test"
    trials = pd.read_parquet(run_dir / "trials.parquet").set_index("variant")
    assert set(trials.index) == {"bilstm_baseline", "han"}
    for variant, row in trials.iterrows():
        assert Path(row["trial_dir"]).name.endswith(f"-{variant}-fold0-seed0")
        scalars = _assert_curves_match_history(run_dir / row["trial_dir"])
        # the best checkpoint's evaluation: once, at the best epoch, not a point of the val/test curves
        assert scalars["best/test/r2"] == {row["best_epoch"]: pytest.approx(row["test/r2"], rel=1e-5)}
        assert "ray/tune/test/r2" not in scalars
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{run_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ablations/han_incremental")
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"bilstm_baseline/fold0/seed0", "han/fold0/seed0"}
    tags = runs["han/fold0/seed0"].data.tags
    assert (tags["ablation"], tags["variant"], tags["fold"], tags["seed"]) == ("han_incremental", "han", "0", "0")
    assert runs["han/fold0/seed0"].data.metrics["best/test/r2"] == pytest.approx(trials.loc["han", "test/r2"])
