"""Interrupt a tiny real sweep and a tiny real ablation at a random moment, with SIGTERM (what
`kill`, a scheduler or a closing terminal sends) or SIGKILL (a crash, the OOM killer), then
resume: every trial is present exactly once and no finished trial is trained again.

A SIGTERM must stop cleanly (exit 130) and print the exact command that resumes the run;
the test runs that printed command, not one of its own.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pianoeval.paths import REPO_ROOT

pytestmark = pytest.mark.slow

TINY_SWEEP = ["--space", "smoke", "--run-id", "chaos", "--max-concurrent", "1", "--set", "budget.num_samples=3",
              "--set", "budget.max_epochs=1", "--set", "budget.grace_period=1", "--set", "data.max_train_segments=24"]
TINY_ABLATION = """\
description: chaos test - two variants x two seeds, one epoch each
base: {model: {name: note_voice, hidden_size: 16, num_heads: 4}, data: {max_train_segments: 24, eval_batch_size: 64}}
variants:
  lr_low: {train: {lr: 3.0e-4}}
  lr_high: {train: {lr: 3.0e-3}}
baseline: lr_low
folds: [0]
seeds: [0, 1]
metrics: [val/r2]
budget: {max_epochs: 1}
reference_baselines: []
"""


def _wait_for(marker: Path, log: Path, timeout: float) -> None:
    """Until the run exists (its record file is written: from then on it can be resumed)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if marker.is_file():
            return
        time.sleep(0.2)
    raise AssertionError(f"{marker} not written in {timeout:.0f} s:\n{log.read_text()}")


def _finished(run_dir: Path, kind: str) -> dict[str, str]:
    """Finished trials and a hash of what they wrote: unchanged after resuming = not retrained."""
    if kind == "sweep":
        files = [p for p in run_dir.glob("trial_*/result.json") if '"done": true' in p.read_text()]
    else:
        files = list(run_dir.glob("trial_*/run/metrics.json"))
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.parametrize("kind,signum,seed", [
    ("sweep", signal.SIGTERM, 0), ("sweep", signal.SIGKILL, 1),
    ("ablation", signal.SIGTERM, 2), ("ablation", signal.SIGKILL, 3),
])
def test_interrupted_run_resumes_with_every_trial_once(kind, signum, seed, tmp_path):
    results = tmp_path / "results"
    env = {**os.environ, "PIANOEVAL_RESULTS": str(results), "PYTHONUNBUFFERED": "1"}
    if kind == "sweep":
        cmd = [sys.executable, str(REPO_ROOT / "runners" / "sweep.py"), *TINY_SWEEP]
        run_dir, expected = results / "sweeps" / "smoke" / "chaos", 3
        marker = run_dir / "sweep.yaml"
    else:
        spec = tmp_path / "chaos_spec.yaml"
        spec.write_text(TINY_ABLATION)
        cmd = [sys.executable, str(REPO_ROOT / "runners" / "ablate.py"), str(spec), "--run-id", "chaos",
               "--max-concurrent", "1"]
        run_dir, expected = results / "ablations" / "chaos_spec" / "chaos", 4
        marker = run_dir / "ablation.yaml"
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        driver = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            _wait_for(marker, log, timeout=300)
            time.sleep(random.Random(seed).uniform(0.0, 25.0))  # somewhere in the run
            if signum == signal.SIGKILL:
                os.killpg(driver.pid, signal.SIGKILL)  # the driver and its Ray die, no clean-up
            else:
                driver.send_signal(signal.SIGTERM)  # as `kill <pid>` would
            code = driver.wait(timeout=300)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
                driver.wait()
    first = log.read_text()
    assert "Traceback" not in first, first
    finished_before = _finished(run_dir, kind)
    resume = cmd + ["--resume"]
    finished = "[sweep] results:" in first or "[ablate] comparison:" in first
    if signum == signal.SIGTERM:
        if finished:  # the run ended before the signal (which may then land in Ray's shutdown): nothing to resume
            assert code in (0, -signal.SIGTERM), first
        else:
            assert code == 130, first
            printed = re.search(r"resume with: (.+)", first)
            assert printed, first
            resume = shlex.split(printed.group(1))
            resume[0] = sys.executable  # the printed `python`, in this environment
            assert resume[1:3] == cmd[1:3] and resume[-3:] == ["--resume", "--run-id", "chaos"], resume
    resumed = subprocess.run(resume, capture_output=True, text=True, env=env, timeout=900, cwd=REPO_ROOT)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    trials = pd.read_parquet(run_dir / "trials.parquet")
    assert len(trials) == expected
    if kind == "sweep":
        assert trials["trial_id"].is_unique and set(trials["status"]) <= {"completed", "pruned"}
    else:
        assert not trials.duplicated(["variant", "fold", "seed"]).any()
        assert (trials["status"] == "completed").all(), trials[["variant", "seed", "status", "error"]]
    after = _finished(run_dir, kind)
    for path, digest in finished_before.items():  # finished trials were not trained again
        assert after.get(path) == digest, path
