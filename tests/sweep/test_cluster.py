"""A sweep against a real Ray cluster: `ray start --head` in its own process, a second node
joining it, the runner connecting with --address, and the cluster stopped afterwards."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pianoeval.paths import REPO_ROOT

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Token authentication on every process of the cluster and on the driver, as Ray requires
# (one mode for all nodes); the token is the machine's default (~/.ray/auth_token).
ENV = {**os.environ, "RAY_AUTH_MODE": "token", "PYTHONUNBUFFERED": "1"}


def _start(args: list[str], log: Path) -> subprocess.Popen:
    # --block keeps `ray start` in the foreground and its node processes in its session,
    # so killing the session stops exactly this cluster (never `ray stop`, which would
    # also stop the test session's own Ray)
    return subprocess.Popen([RAY, "start", "--block", "--disable-usage-stats", *args], stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, start_new_session=True, env=ENV)


def _wait_nodes(address: str, count: int, timeout: float = 180) -> list[dict]:
    """The cluster's live nodes (id and CPUs) once there are ``count`` of them."""
    script = ("import json, ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
              "print(json.dumps([{'id': n['NodeID'], 'cpu': n['Resources'].get('CPU', 0)} "
              "for n in ray.nodes() if n['Alive']]))")
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run([sys.executable, "-c", script, address], capture_output=True, text=True, timeout=120, env=ENV)
        if out.returncode == 0 and out.stdout.strip():
            nodes = json.loads(out.stdout.strip().splitlines()[-1])
            if len(nodes) == count:
                return nodes
        time.sleep(2)
    raise AssertionError(f"cluster at {address} did not reach {count} nodes")


@pytest.mark.skipif(not Path(RAY).is_file(), reason="the ray CLI is installed with ray[default]")
def test_sweep_runs_on_a_two_node_cluster(tmp_path):
    # A head without CPUs for tasks (as production heads often are) and a worker node with
    # two: every trial must run on the node that joined the cluster, never in the driver.
    subprocess.run([RAY, "get-auth-token", "--generate"], capture_output=True, env=ENV, timeout=60)
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp = Path("/tmp") / f"ray_cluster_test_{port}"  # Ray's socket paths must stay short
    head = _start(["--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=0",
                   "--include-dashboard=false", f"--temp-dir={temp}"], tmp_path / "head.log")
    worker = None
    try:
        _wait_nodes(address, 1)
        worker = _start([f"--address={address}", "--node-ip-address=127.0.0.1", "--num-cpus=2"], tmp_path / "worker.log")
        nodes = _wait_nodes(address, 2)
        worker_id = next(n["id"] for n in nodes if n["cpu"] == 2)
        storage = tmp_path / "results"
        proc = subprocess.run(
            [sys.executable, str(REPO_ROOT / "runners" / "sweep.py"), "--space", "smoke", "--address", address,
             "--storage", str(storage), "--run-id", "cluster", "--set", "budget.num_samples=2",
             "--set", "budget.max_epochs=1", "--set", "budget.grace_period=1",
             "--set", "data.max_train_segments=40"],
            capture_output=True, text=True, timeout=900, env=ENV)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        trials = pd.read_parquet(storage / "sweeps" / "smoke" / "cluster" / "trials.parquet")
        assert len(trials) == 2 and (trials["status"] == "completed").all()
        assert (trials["node_id"] == worker_id).all(), (worker_id, trials[["trial_id", "node_id"]])
    finally:
        for proc in (worker, head):
            if proc is not None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in (worker, head):
            if proc is not None:
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)
