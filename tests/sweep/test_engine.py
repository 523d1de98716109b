"""The sweep engine on the real bundled data: ASHA pruning, results, failures, resume."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from pianoeval.experiment import ExperimentConfig
from pianoeval.paths import REPO_ROOT
from pianoeval.sweep import SweepOptions, load_space, run_sweep

HERE = Path(__file__).parent


@pytest.fixture
def storage(tmp_path):
    return str(tmp_path / "results")


def test_smoke_sweep_prunes_and_leaves_results(ray_session, storage):
    space = load_space("smoke")
    result = run_sweep(space, SweepOptions(storage=storage, print_fn=lambda line: None))
    trials = pd.read_parquet(result.run_dir / "trials.parquet")
    assert result.run_dir == Path(storage) / "sweeps" / "smoke" / result.run_dir.name
    assert len(trials) == space.budget.num_samples
    assert set(trials["status"]) <= {"completed", "pruned"}
    pruned = trials[trials["status"] == "pruned"]
    assert len(pruned) >= 1 and (pruned["epochs_run"] < space.budget.max_epochs).all()
    assert (pruned["pruned_at_rung"] == pruned["epochs_run"]).all()
    for column in ("config/train.lr", "best/val/r2", "best/val/pairwise_acc", "final/val/r2",
                   "final/diag/attn_entropy/readout", "final/grad_norm/total", "wall_seconds",
                   "cpu_seconds", "gpu_seconds", "seed", "git_commit", "best_epoch"):
        assert column in trials.columns, column
    assert trials["best/val/r2"].is_monotonic_decreasing  # sorted best first
    best = yaml.safe_load((result.run_dir / "best.yaml").read_text())
    rerun = ExperimentConfig.resolve({k: v for k, v in best.items() if k != "provenance"})
    assert rerun.train.lr == pytest.approx(trials.iloc[0]["config/train.lr"])
    summary = (result.run_dir / "summary.md").read_text()
    assert "pruned" in summary and trials.iloc[0]["trial_id"] in summary


def test_han_space_runs_for_real_with_a_tiny_budget(ray_session, storage):
    from dataclasses import replace

    space = load_space("han", {"budget.max_epochs": 1, "budget.grace_period": 1, "budget.num_samples": 2,
                               "model.hidden_size": 16, "model.num_heads": 4, "data.max_train_segments": 40,
                               "data.eval_batch_size": 64})
    # the sampled hidden size (64-256) would replace the fixed 16; keep the run CPU-sized
    space = replace(space, parameters=tuple(p for p in space.parameters if p.key != "model.hidden_size"))
    result = run_sweep(space, SweepOptions(storage=storage, print_fn=lambda line: None))
    trials = pd.read_parquet(result.run_dir / "trials.parquet")
    assert len(trials) == 2 and (trials["status"] == "completed").all()
    assert trials["final/diag/attn_entropy/measure"].notna().all()


def test_failing_and_diverging_trials_are_recorded_and_the_sweep_goes_on(ray_session, storage):
    space = load_space(HERE / "spaces" / "faulty.yaml")
    lines = []
    # one retry each (each retry restarts the trial's process): the config error fails again,
    # and the diverged trial's retry stops at once on its marker instead of training again
    result = run_sweep(space, SweepOptions(storage=storage, print_fn=lines.append, max_failures=1))
    trials = pd.read_parquet(result.run_dir / "trials.parquet")
    status = {(row["config/train.lr"], row["config/model.num_heads"]): row for _, row in trials.iterrows()}
    assert status[(1e-3, 4)]["status"] == "completed"
    assert status[(1e-3, 3)]["status"] == "error" and "num_heads" in status[(1e-3, 3)]["error"]
    assert status[(1e12, 4)]["status"] == "diverged" and "training loss became nan" in status[(1e12, 4)]["error"]
    assert sum("error" in line for line in lines) == 3  # one progress line per failed trial


def _wait_for(pattern: str, log: Path, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if log.is_file() and pattern in log.read_text():
            return
        time.sleep(1)
    raise AssertionError(f"{pattern!r} not in {log} after {timeout}s:\n{log.read_text() if log.is_file() else ''}")


def test_killed_driver_resumes_without_losing_or_rerunning_trials(ray_session, storage, tmp_path):
    env = {**os.environ, "PIANOEVAL_RESULTS": storage, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(REPO_ROOT / "runners" / "sweep.py"), "--space", "smoke", "--max-concurrent", "1",
           "--run-id", "killed", "--set", "budget.num_samples=4", "--set", "budget.max_epochs=2",
           "--set", "data.max_train_segments=40"]
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        driver = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            _wait_for("[sweep] trial 2/4", log, timeout=600)
        finally:
            os.killpg(driver.pid, signal.SIGKILL)  # the driver dies mid-sweep, no clean-up
            driver.wait()
    run_dir = Path(storage) / "sweeps" / "smoke" / "killed"
    finished_before = {p.parent.name: p.read_text() for p in run_dir.glob("trial_*/result.json")
                       if p.read_text().count("\n") and '"done": true' in p.read_text()}
    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=env, timeout=900)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    trials = pd.read_parquet(run_dir / "trials.parquet")
    assert len(trials) == 4 and set(trials["status"]) <= {"completed", "pruned"}
    for trial_dir, content in finished_before.items():  # finished trials were not trained again
        assert (run_dir / trial_dir / "result.json").read_text() == content
    assert "resuming smoke run killed" in resumed.stdout
    # the study's journal went on where it stopped: the 4 trials completed in it; a proposal made
    # after Ray last saved the searcher (proposed again on resume) can stay RUNNING there
    journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run_dir / "optuna.journal")))
    states = Counter(t.state.name for t in optuna.load_study(study_name="smoke/killed", storage=journal).trials)
    assert states["COMPLETE"] == 4 and set(states) <= {"COMPLETE", "RUNNING"}, states


def test_closed_form_reference_baselines_run_as_sweep_trials(ray_session, storage):
    space = load_space(HERE / "spaces" / "references.yaml")
    result = run_sweep(space, SweepOptions(storage=storage, print_fn=lambda line: None))
    trials = pd.read_parquet(result.run_dir / "trials.parquet").set_index("config/model.name")
    assert (trials["status"] == "completed").all() and (trials["epochs_run"] == 1).all()
    assert trials.loc["music_mean", "best/val/r2"] > 0.3 > trials.loc["global_mean", "best/val/r2"]
    assert trials.loc["music_mean", "best/val/pairwise_acc"] == 0.5
    assert result.best_config["model"]["name"] == "music_mean"


def test_ctrl_c_during_the_last_trial_is_an_interrupted_run_and_resume_finishes_it(ray_session, storage):
    """Tune marks the trial a Ctrl-C stopped as terminated, like a finished one: without noticing
    the signal, the run was reported done (exit 0, its last trial missing) instead of resumable."""
    from ray import tune

    from pianoeval.errors import RunInterrupted

    class CtrlCInTheLastTrial(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            if len(trials) == 2 and trial is trials[-1] and result.get("training_iteration") == 1:
                os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C in the terminal

    space = load_space("smoke", {"budget.num_samples": 2, "budget.max_epochs": 3, "budget.grace_period": 3,
                                 "data.max_train_segments": 24, "reference_baselines": []})
    options = SweepOptions(storage=storage, run_id="ctrl-c", max_concurrent=1, print_fn=lambda line: None)
    with pytest.raises(RunInterrupted):
        run_sweep(space, SweepOptions(**{**options.__dict__, "callbacks": [CtrlCInTheLastTrial()]}))
    result = run_sweep(space, SweepOptions(**{**options.__dict__, "resume": True}))
    trials = pd.read_parquet(result.run_dir / "trials.parquet")
    assert len(trials) == 2 and (trials["status"] == "completed").all() and (trials["epochs_run"] == 3).all()
