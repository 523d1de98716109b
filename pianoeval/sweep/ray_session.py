"""Ray for the sweep and ablation engines: start a local Ray or join a cluster, and the
resources a trial asks of it.

``init_ray(options)`` starts a local Ray (on this machine's cores, the dashboard only with
``options.dashboard``, on ``options.dashboard_host``) or joins the cluster at
``options.address``: unreachable addresses fail in one line within
``options.connect_timeout`` seconds, and a cluster with token authentication says how to
join it. ``options`` is a ``SweepOptions`` (or anything with its Ray fields).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from typing import Any

from pianoeval.errors import ConfigError

# Seconds a reused actor waits for a stopped trial's thread (Ray's default is 2 s; a
# trial notices a stop between batches, see trainable.StopWhenTuneStops).
THREAD_TIMEOUT_S = "60"
_QUIET_ENV = {
    "TUNE_FUNCTION_THREAD_TIMEOUT_S": THREAD_TIMEOUT_S,
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_DEDUP_LOGS": "1",
    # Ray's newer console output prints a box and a `tensorboard --logdir` hint into its
    # temporary session folder at any verbosity; the classic one is silent at verbose=0,
    # and the engine prints where the run's files really are.
    "RAY_AIR_NEW_OUTPUT": "0",
}


def probe_address(address: str, timeout_s: float) -> None:
    """Fail fast, in one line, when a cluster address cannot be reached: Ray itself retries
    an unreachable GCS for minutes. ``auto`` is left to Ray (it reads the local session file
    and fails at once when there is no cluster)."""
    target = address.removeprefix("ray://")
    if address == "auto" or "://" in target:
        return
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"--address {address}: expected auto, host:port or ray://host:port")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as err:
        reason = "timed out" if isinstance(err, socket.timeout) else (err.strerror or type(err).__name__)
        raise ConfigError(f"--address {address}: cannot reach the Ray cluster ({reason} after at most "
                          f"{timeout_s:g} s); check the address, that the head node runs (`ray status`) and "
                          "the firewall, or raise --connect-timeout") from None


def _ray_init_bounded(timeout_s: float, address: str, **kwargs):
    """``ray.init`` that gives up after ``timeout_s`` instead of retrying forever."""
    import ray

    outcome: dict[str, Any] = {}

    def connect():
        try:
            outcome["context"] = ray.init(address=address, **kwargs)
        except BaseException as err:  # re-raised in the caller's thread
            outcome["error"] = err

    thread = threading.Thread(target=connect, daemon=True, name="ray-connect")
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        # Ray's connection loop cannot be cancelled: say why in one line and leave now
        # (nothing has been computed yet).
        print(f"error: --address {address}: the Ray cluster did not answer within {timeout_s:g} s "
              "(raise --connect-timeout, or check `ray status --address ...`)", file=sys.stderr)
        sys.stderr.flush()
        os._exit(2)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["context"]


def init_ray(options) -> str | None:
    """Connect to or start Ray; return the dashboard URL when one was started."""
    import ray

    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if ray.is_initialized():
        return None
    with _keep_sigterm_handler():
        return _connect(options)


@contextlib.contextmanager
def _keep_sigterm_handler():
    """``ray.init`` installs Ray's own SIGTERM handler in the driver (it exits with status 15);
    the runner's handler (SIGTERM -> a clean stop that prints the resume command) is put back."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _connect(options) -> str | None:
    import ray  # lazy: see init_ray

    runtime_env = {"env_vars": {k: os.environ[k] for k in _QUIET_ENV}}
    if options.address:
        probe_address(options.address, options.connect_timeout)
        try:
            context = _ray_init_bounded(options.connect_timeout, options.address, log_to_driver=False,
                                        runtime_env=runtime_env, logging_level=logging.WARNING)
        except ConnectionError as err:
            auth = "Authentication" in repr(err.__cause__) or "auth" in str(err).lower()
            hint = ("the cluster uses token authentication: export RAY_AUTH_MODE=token (and the cluster's token "
                    "in ~/.ray/auth_token or RAY_AUTH_TOKEN) here and on every node; see docs/cluster.md"
                    if auth else "check the address and that `ray status --address ...` reaches it")
            raise ConfigError(f"--address {options.address}: cannot connect to the Ray cluster; {hint}") from None
    else:
        # Ray starts workers at niceness 15, as if they were background jobs; here the trials
        # are the work, and on a shared machine a niced trial starves behind everything else.
        os.environ.setdefault("RAY_worker_niceness", "0")
        # "local": a new Ray for this run, never an unrelated `ray start` cluster found on the machine
        context = ray.init(address="local", num_cpus=options.num_cpus, include_dashboard=options.dashboard,
                           dashboard_host=options.dashboard_host, log_to_driver=False,
                           runtime_env=runtime_env, logging_level=logging.WARNING)
    url = getattr(context, "dashboard_url", None)
    return f"http://{url}" if options.dashboard and url else None


def dashboard_lines(url: str) -> list[str]:
    """The dashboard URL and how to get past its token prompt (Ray 2.60 turns token
    authentication on by default; it stays on)."""
    return [f"[sweep] Ray dashboard: {url}",
            "[sweep] it asks for the cluster's token: paste the output of `ray get-auth-token` "
            "(or the contents of ~/.ray/auth_token) into the prompt"]


def trial_resources(cpu: float, gpu: float, say=print) -> dict[str, float]:
    """Ray resources of one trial. A GPU fraction asked of a cluster without GPUs could
    never be scheduled (Tune would wait forever): the trials then run on CPU, and say so."""
    import ray

    if gpu > 0 and not ray.cluster_resources().get("GPU", 0):
        say(f"[sweep] the Ray cluster has no GPU: trials run on CPU (resources.gpu {gpu:g} -> 0); "
            "--set resources.gpu=0 silences this, a cluster with GPUs uses them")
        gpu = 0.0
    return {"cpu": cpu, "gpu": gpu}
