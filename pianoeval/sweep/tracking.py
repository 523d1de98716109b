"""Watching runs: TensorBoard curves in every trial folder, MLflow and W&B by flag.

All three are Ray Tune logger callbacks on the driver. They see what a trial reports
to Tune every epoch (the scalars of its ``history.csv``: losses, metrics, diagnostics),
wherever the trial runs:

* TensorBoard, always: ``events.out.tfevents.*`` in each trial's folder (Ray's
  ``TBXLoggerCallback``), so ``tensorboard --logdir <run>`` shows every trial, named
  by its folder path. Curves are tagged ``ray/tune/<metric>`` with the epoch as step; an
  ablation trial's final evaluation (its best checkpoint on val and test) is written
  once as ``best/<metric>`` at the best epoch, not as one more point of the curves.
* ``--logger mlflow[=URI]``: one MLflow run per trial (``MLflowLoggerCallback``) in
  an experiment named after the sweep or ablation; default store: ``<run>/mlflow.db``.
* ``--logger wandb[=PROJECT]``: one W&B run per trial (``WandbLoggerCallback``),
  grouped by run; offline (files under each trial folder's ``wandb/``) unless the
  user has logged in and the server answers.

Every run carries tags that group folds and variants in those UIs (space or ablation,
variant, fold, seed, git commit). MLflow and W&B are the optional ``tracking`` extra;
asking for one without it is a one-line error naming the extra.
"""

from __future__ import annotations

import netrc
import os
import socket
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from ray.air.constants import TRAINING_ITERATION
from ray.tune.logger import TBXLoggerCallback
from ray.tune.result import TIMESTEPS_TOTAL

# parse_loggers: defined Ray-free with the flag; the engines (sweep, ablation) import it from here
from pianoeval.sweep.loggers import LoggerChoice, parse_loggers  # noqa: F401

DEFAULT_WANDB_PROJECT = "pianoeval"
MLFLOW_DB = "mlflow.db"
MLFLOW_BATCH = 1000  # the most metrics one MLflow log_batch call takes
WANDB_PROBE_SECONDS = 3.0
WANDB_UPLOAD_SECONDS = 120  # the most a finished run waits for W&B uploads (Ray's default: 30 min)

# What a trial is, for the trackers' UIs: (its run name, its tags).
Describe = Callable[[object], tuple[str, dict[str, str]]]


def _final_scalars(result: dict) -> tuple[dict[str, float], int]:
    """An ablation trial's final evaluation as ``best/<metric>`` scalars, and its best epoch."""
    scalars = {f"best/{k}": float(v) for k, v in result.items()
               if k.startswith(("val/", "test/")) and isinstance(v, (int, float))}
    return scalars, int(result.get("best_epoch", -1))


def _local_folder(trial) -> str | None:
    """The trial's folder in the run's storage when that is a local folder (else None)."""
    return trial.path if trial.path and "://" not in trial.path else None


class TrialCurves(TBXLoggerCallback):
    """Ray's TensorBoard logger, writing straight into the trial's folder, with an ablation
    trial's final evaluation kept off the curves."""

    def log_trial_start(self, trial):
        # Ray's writes into its staging folder, which reaches the run folder only when Ray
        # saves the experiment's state; in the trial folder, TensorBoard sees every epoch
        if trial in self._trial_writer:
            self._trial_writer[trial].close()
        trial.init_local_path()
        folder = _local_folder(trial) or trial.local_path
        Path(folder).mkdir(parents=True, exist_ok=True)
        self._trial_writer[trial] = self._summary_writer_cls(folder, flush_secs=30)
        self._trial_result[trial] = {}

    def log_trial_result(self, iteration: int, trial, result: dict):
        if not result.get("final_eval"):
            return super().log_trial_result(iteration, trial, result)
        if trial not in self._trial_writer:
            self.log_trial_start(trial)
        scalars, best_epoch = _final_scalars(result)
        writer = self._trial_writer[trial]
        for key, value in scalars.items():
            writer.add_scalar(key, value, global_step=max(best_epoch, 0))
        self._trial_result[trial] = scalars  # the HParams view's metrics for this trial
        writer.flush()


def _mlflow_callback(choice: LoggerChoice, experiment: str, tracking_dir: Path, describe: Describe):
    import mlflow
    from mlflow.entities import Metric
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.utils import flatten_dict

    class TrialRuns(MLflowLoggerCallback):
        """One MLflow run per trial, named and tagged by ``describe``; each report is one
        ``log_batch`` call (Ray's callback logs metric by metric: a hundred-odd store
        writes per epoch, seconds during which the driver waits)."""

        def setup(self, *args, **kwargs):
            super().setup(*args, **kwargs)
            self._client = mlflow.MlflowClient(self.tracking_uri)

        def _log_batch(self, trial, result: dict, step: int) -> None:
            now = int(time.time() * 1000)
            metrics = [Metric(key, float(value), now, step) for key, value in flatten_dict(result).items()
                       if isinstance(value, (int, float))]
            for start in range(0, len(metrics), MLFLOW_BATCH):
                self._client.log_batch(self._trial_runs[trial], metrics=metrics[start:start + MLFLOW_BATCH])

        def log_trial_start(self, trial):
            if trial not in self._trial_runs:
                name, tags = describe(trial)
                run = self.mlflow_util.start_run(tags={**self.tags, **tags, "trial_name": name}, run_name=name)
                self._trial_runs[trial] = run.info.run_id
            if not self.log_params_on_trial_end:
                self.mlflow_util.log_params(run_id=self._trial_runs[trial], params_to_log=trial.config)

        def log_trial_result(self, iteration: int, trial, result: dict):
            if trial not in self._trial_runs:
                self.log_trial_start(trial)
            if not result.get("final_eval"):
                return self._log_batch(trial, result, result.get(TIMESTEPS_TOTAL) or result[TRAINING_ITERATION])
            scalars, best_epoch = _final_scalars(result)
            self._log_batch(trial, scalars, max(best_epoch, 0))

    # MLflow's file store is in maintenance mode (it refuses to open without an opt-out);
    # a SQLite file is its local store now
    uri = choice.target or f"sqlite:///{(tracking_dir / MLFLOW_DB).resolve()}"
    return TrialRuns(tracking_uri=uri, experiment_name=experiment), f"MLflow: mlflow ui --backend-store-uri {uri}"


def _wandb_logged_in(host: str) -> bool:
    """Whether W&B has credentials for ``host``: WANDB_API_KEY (or an identity token file),
    or the .netrc entry ``wandb login`` writes. Read without starting wandb's service."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    try:
        return netrc.netrc(os.environ.get("NETRC") or None).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode() -> tuple[str, str]:
    """(mode, why): ``offline`` unless the user has logged in and the W&B server answers
    within a few seconds; a ``WANDB_MODE`` the user set wins."""
    import wandb

    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"], "WANDB_MODE is set"
    settings = wandb.Settings()
    settings.update_from_env_vars(dict(os.environ))  # WANDB_BASE_URL for a self-hosted server
    url = urlparse(settings.base_url)
    if not _wandb_logged_in(url.hostname or ""):
        return "offline", "not logged in"
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=WANDB_PROBE_SECONDS).close()
    except OSError as err:
        return "offline", f"cannot reach {url.geturl()} ({err})"
    return "online", f"logged in to {url.geturl()}"


def _wandb_callback(choice: LoggerChoice, group: str, describe: Describe):
    from ray.air.integrations.wandb import WandbLoggerCallback

    mode, why = wandb_mode()
    os.environ["WANDB_MODE"] = mode  # Ray asks for an API key unless the mode is offline

    class TrialRuns(WandbLoggerCallback):
        """One W&B run per trial, named by ``describe``; its tags go to the run's config
        (group by them in the UI) and to its tag list."""

        def _start_logging_actor(self, trial, exclude_results, **init):
            name, tags = describe(trial)
            init.update(name=name, tags=[f"{k}:{v}" for k, v in tags.items()],
                        config={**init.get("config", {}), **tags}, mode=mode)
            if _local_folder(trial):  # straight into the trial folder (else Ray's staging folder)
                Path(trial.path).mkdir(parents=True, exist_ok=True)
                init["dir"] = trial.path
            return super()._start_logging_actor(trial, exclude_results, **init)

        def log_trial_result(self, iteration: int, trial, result: dict):
            if result.get("final_eval"):  # W&B steps only go forward: at the report's own step
                result = {**_final_scalars(result)[0], "training_iteration": result["training_iteration"]}
            return super().log_trial_result(iteration, trial, result)

        def __del__(self):
            # Ray's __del__ stops logging actors still open; on_experiment_end has stopped them
            # all when a run ends, and at interpreter exit Ray's module globals are gone
            if self._trial_logging_actors:
                super().__del__()

    project = choice.target or DEFAULT_WANDB_PROJECT
    if mode == "offline":
        where = (f"{why}, so runs are written offline under each trial folder's wandb/ and the run goes on; "
                 "`wandb sync <trial>/wandb/offline-run-*` uploads them later")
    else:
        where = f"{mode} ({why}), project {project}, group {group}"
    return TrialRuns(project=project, group=group, upload_timeout=WANDB_UPLOAD_SECONDS), f"W&B: {where}"


def tracking_callbacks(loggers: tuple[LoggerChoice, ...], experiment: str, run_id: str, tracking_dir: Path,
                       describe: Describe, say=print) -> list:
    """TensorBoard's callback, then one per ``--logger`` choice, each with a line saying where
    to look. ``experiment`` (``sweeps/smoke``) names the MLflow experiment; the W&B group is
    ``<experiment>/<run_id>``; default stores go under ``tracking_dir``."""
    callbacks = [TrialCurves()]
    for choice in loggers:
        if choice.name == "mlflow":
            callback, line = _mlflow_callback(choice, experiment, tracking_dir, describe)
        else:
            callback, line = _wandb_callback(choice, f"{experiment}/{run_id}", describe)
        callbacks.append(callback)
        say(f"[tracking] {line}")
    return callbacks
