"""The sweep engine: a SearchSpace -> Ray Tune trials with an Optuna sampler and ASHA.

``run_sweep(space, options)``:

* connects to Ray (``options.address``: ``auto``, ``ray://host:10001``, ...) or starts
  a local instance (dashboard only with ``--dashboard``, on 127.0.0.1 unless
  ``--dashboard-host`` says otherwise); an already initialised Ray is reused;
* samples with ``OptunaSearch`` over a define-by-run space (so conditional
  parameters work) and the space's sampler (tpe, random, cmaes, gp, grid);
  Ray's Optuna integration never runs Optuna pruners: pruning is ASHA's job,
  over epochs (``budget``: max_epochs, grace_period, reduction_factor);
* runs each trial with the resources the space asks for (``cpu`` threads, ``gpu``
  fraction so small trials pack several to a GPU), ``reuse_actors``, and
  ``FailureConfig`` retries from the trial's last checkpoint;
* ``options.resume`` restores the experiment (``Tuner.restore``): finished trials
  stay finished, unfinished ones continue from their checkpoints, and the Optuna
  searcher's state is restored with the experiment;
* keeps the Optuna study in ``<run>/optuna.journal`` (a ``JournalFileBackend``;
  ``optuna-dashboard <run>/optuna.journal`` opens it) when the storage is local;
* writes TensorBoard files into every trial folder and, by ``--logger``, to MLflow
  and W&B (see ``pianoeval.sweep.tracking``);
* prints one line per finished trial; once every trial is done, fits the space's
  reference baselines beside them (``references/``, ``references.parquet``: see
  ``pianoeval.sweep.references``); then writes ``trials.parquet``, ``best.yaml`` and
  ``summary.md`` (see ``pianoeval.sweep.results``) into ``<storage>/sweeps/<space>/<run-id>/``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pianoeval.config import dump_yaml, flatten, load_yaml
from pianoeval.errors import ConfigError, RunInterrupted
from pianoeval.io import check_output_root, run_id_for
from pianoeval.paths import results_root
from pianoeval.provenance import git_commit
from pianoeval.sweep.loggers import parse_loggers
from pianoeval.sweep.space import DefineByRun, SearchSpace, grid_size

MAX_FAILURES = 2  # retries of a crashed trial, from its last checkpoint
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
OPTUNA_JOURNAL = "optuna.journal"


def trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


@dataclass
class SweepOptions:
    num_samples: int | None = None  # None: the space's budget.num_samples
    max_concurrent: int | None = None  # None: as many as the resources allow
    max_failures: int = MAX_FAILURES  # retries of a crashed trial from its last checkpoint
    address: str | None = None  # None: start (or reuse) a local Ray
    storage: str | None = None  # None: results/ ; a path or a pyarrow filesystem URI
    resume: bool = False
    run_id: str | None = None  # None: a timestamp (with resume: the latest run)
    dashboard: bool = False
    dashboard_host: str = "127.0.0.1"
    num_cpus: int | None = None  # local Ray only; None: all cores
    connect_timeout: float = 30.0  # seconds to reach a cluster given by address
    evaluate_test: bool = False
    loggers: tuple[str, ...] = ()  # --logger values: mlflow[=URI], wandb[=PROJECT]
    print_fn: Any = print
    callbacks: list = field(default_factory=list)  # more ray.tune.Callbacks (e.g. benchmarks watching trials)


@dataclass
class SweepResult:
    run_dir: Path
    trials: Any  # pandas DataFrame of trials.parquet
    best_config: dict | None = None
    wall_seconds: float = 0.0
    dashboard_url: str | None = None
    notes: list[str] = field(default_factory=list)


def sampler_for(space: SearchSpace, seed: int | None = None):
    """The Optuna sampler named by the space, seeded (``seed``: another seed, for an
    extension, so that it does not draw the first part's values again)."""
    import optuna

    name, seed = space.sampler.name, space.sampler.seed if seed is None else seed
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        # CMA-ES samples the continuous parameters; categorical / conditional ones fall
        # back to Optuna's independent sampler (Optuna warns once when that happens).
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    grid = {p.key: p.distribution.grid() for p in space.parameters}
    return optuna.samplers.GridSampler(grid, seed=seed)


def _storage_root(storage: str | None) -> str:
    if storage is not None and "://" in storage:
        return storage.rstrip("/")
    return str(results_folder(storage))


def results_folder(storage: str | None) -> Path:
    """The local results root: ``--storage`` or ``$PIANOEVAL_RESULTS`` or ``results/``,
    checked to be a folder that can be written before anything starts."""
    if storage is None:
        return check_output_root(results_root(), "PIANOEVAL_RESULTS")
    if "://" in storage:
        raise ConfigError(f"--storage {storage}: ablations write to a local folder (or a mounted one)")
    return check_output_root(Path(storage).resolve(), "--storage")


def _is_local(path: str) -> bool:
    return "://" not in path


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


def init_ray(options: SweepOptions) -> str | None:
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


def _connect(options: SweepOptions) -> str | None:
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


@contextlib.contextmanager
def stop_cleanly_on_sigterm():
    """SIGTERM behaves like Ctrl-C during ``Tuner.fit``: Tune's own interrupt handler saves
    the experiment state and stops the trials, instead of the process dying mid-write."""

    def forward(signum, frame):
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler) and handler is not signal.default_int_handler:
            handler(signal.SIGINT, frame)  # Tune's handler: stop after saving state
        else:
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, forward)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def unfinished_trials(results, expected: int) -> int:
    """Trials of a ``Tuner.fit`` that neither finished nor failed (an interrupted run),
    including those never started."""
    done = results.num_terminated + results.num_errors
    return max(expected, len(results)) - done


def trial_resources(cpu: float, gpu: float, say=print) -> dict[str, float]:
    """Ray resources of one trial. A GPU fraction asked of a cluster without GPUs could
    never be scheduled (Tune would wait forever): the trials then run on CPU, and say so."""
    import ray

    if gpu > 0 and not ray.cluster_resources().get("GPU", 0):
        say(f"[sweep] the Ray cluster has no GPU: trials run on CPU (resources.gpu {gpu:g} -> 0); "
            "--set resources.gpu=0 silences this, a cluster with GPUs uses them")
        gpu = 0.0
    return {"cpu": cpu, "gpu": gpu}


def _progress_callback(space: SearchSpace, total: int, print_fn):
    from ray import tune  # lazy: see _fit_sweep

    from pianoeval.sweep.crossval import FOLD_EPOCHS, FOLDS_DONE  # lazy: imports Ray's schedulers (start-up)

    metric, mode = space.metric, space.mode

    class TrialLine(tune.Callback):
        """One line per finished trial: status, epochs, objective, best so far, params."""

        def __init__(self):
            self.done = 0
            self.best = None

        def _line(self, trial, status: str) -> None:
            self.done += 1
            result = trial.last_result or {}
            value = result.get(metric, math.nan)
            metric_label, counts = metric, True
            epochs = result.get("training_iteration", 0)
            if space.cross_validated:
                done = int(result.get(FOLDS_DONE, 0))
                epochs = int(result.get(FOLD_EPOCHS, result.get("epoch", 0)))
                counts = done == len(space.folds)  # only a trial over every fold can be the best
                if status == "completed" and not counts:
                    status = (f"pruned after {done} of {len(space.folds)} folds" if done else
                              f"pruned at epoch {result.get('epoch', 0)} of its first fold")
                metric_label = f"{metric} (mean of {done} folds)" if done else f"{metric} (first fold)"
            elif (status == "completed" and epochs < space.budget.max_epochs and not result.get("early_stopped")
                    and not result.get("closed_form")):
                status = f"pruned at epoch {epochs}"
            if counts and isinstance(value, float) and math.isfinite(value):
                better = self.best is None or (value > self.best if mode == "max" else value < self.best)
                self.best = value if better else self.best
            params = ", ".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in trial.config.items())
            best = f"{self.best:.4f}" if self.best is not None else "n/a"
            print_fn(f"[sweep] trial {self.done}/{total} {trial.trial_id} {status}: {metric_label}={value:.4f} "
                     f"(best {best}) after {epochs} epochs, {result.get('time_total_s', 0):.0f}s | {params}")

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._line(trial, "completed")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._line(trial, "error")

    return TrialLine()


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def run_sweep(space: SearchSpace, options: SweepOptions | None = None) -> SweepResult:
    """Run (or resume, or extend) a sweep of ``space``; see the module docstring."""
    options = options or SweepOptions()
    loggers = parse_loggers(options.loggers)  # a missing extra fails here, before Ray starts
    space_root = f"{_storage_root(options.storage)}/sweeps/{space.name}"
    run_id = run_id_for(space_root, options.resume, options.run_id, "sweep.yaml", f"space {space.name!r}",
                        remote=not _is_local(space_root))
    run_path = f"{space_root}/{run_id}"
    planned = planned_parts(Path(run_path)) if options.resume and _is_local(run_path) else []
    num_samples = options.num_samples or (sum(n for _, n in planned) if planned else space.budget.num_samples)
    if space.sampler.name == "grid":
        num_samples = grid_size(space)  # every grid point once
    if planned:
        check_same_space(space, Path(run_path))
        check_extension(space, Path(run_path), run_id, planned, options.num_samples)
        check_evaluate_test(Path(run_path), run_id, options.evaluate_test)

    try:
        return _fit_sweep(space, options, run_id, run_path, space_root, num_samples, loggers, planned)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM before Tune took over its own handling
        if _is_local(run_path) and not (Path(run_path) / "sweep.yaml").is_file():
            raise  # stopped before the run existed: nothing to resume
        raise RunInterrupted(run_id) from None


EXTENSION_PREFIX = "extend-"


def planned_parts(run_dir: Path) -> list[tuple[str, int]]:
    """The Tune experiments of a run and the trials each was asked for: the first one
    (``""``, the run folder itself) and its extensions (``extend-<n>/``), from sweep.yaml."""
    record = run_dir / "sweep.yaml"
    if not record.is_file():
        return []
    recorded = load_yaml(record)
    parts = recorded.get("parts") or [{"name": "", "num_samples": recorded.get("num_samples", 0)}]
    return [(str(p["name"]), int(p["num_samples"])) for p in parts]


def check_extension(space: SearchSpace, run_dir: Path, run_id: str, planned: list[tuple[str, int]],
                    num_samples: int | None) -> None:
    """Bad extensions, before anything runs: fewer trials than the run already has, a grid
    (complete already), and an Optuna journal that belongs to another sweep."""
    have = sum(n for _, n in planned)
    if num_samples is not None and num_samples < have:
        raise ConfigError(f"--num-samples {num_samples}: run {run_id} already has {have} trials; to extend it ask "
                          f"for more than {have} (e.g. --num-samples {2 * have}), or leave --num-samples out to "
                          "resume it as it is")
    if num_samples is not None and num_samples > have and space.sampler.name == "grid":
        raise ConfigError(f"--num-samples {num_samples}: run {run_id} is a grid sweep, which already covers every "
                          f"grid point ({have}); widen the grid in a new run instead")
    journal = run_dir / OPTUNA_JOURNAL
    if journal.is_file():
        import optuna  # lazy: Optuna loads only when a run is resumed

        storage = _study_storage(str(run_dir))
        names = optuna.study.get_all_study_names(storage)
        wanted = study_name(space, run_id)
        if names and wanted not in names:
            raise ConfigError(f"{journal}: holds the Optuna study {', '.join(map(repr, names))}, not {wanted!r}: it "
                              "belongs to another sweep; move it out of the run folder or resume the run it came from")
        keys = {p.key for p in space.parameters}
        if names:
            sampled = {k for t in optuna.load_study(study_name=wanted, storage=storage).trials for k in t.params}
            if sampled - keys:
                raise ConfigError(f"{journal}: its trials sampled {sorted(sampled - keys)[0]!r}, which space "
                                  f"{space.name} does not have: the journal belongs to another space; resume with "
                                  "the space the run was started with")


def check_evaluate_test(run_dir: Path, run_id: str, evaluate_test: bool) -> None:
    """A resumed run keeps the ``--evaluate-test`` it was started with: its trials all have
    test scores or none has (a run recorded before the key existed is not checked)."""
    recorded = load_yaml(run_dir / "sweep.yaml").get("evaluate_test")
    if recorded is None or bool(recorded) == evaluate_test:
        return
    if recorded:
        raise ConfigError(f"{run_dir / 'sweep.yaml'}: evaluate_test: true: run {run_id} was started with "
                          "--evaluate-test; resume it with --evaluate-test, so that every trial is scored on test")
    raise ConfigError(f"{run_dir / 'sweep.yaml'}: evaluate_test: false: run {run_id} was started without "
                      "--evaluate-test and its finished trials have no test scores; resume it without the flag, "
                      "or start a new run with it")


def study_name(space: SearchSpace, run_id: str) -> str:
    return f"{space.name}/{run_id}"


def _fit_sweep(space: SearchSpace, options: SweepOptions, run_id: str, run_path: str, space_root: str,
               num_samples: int, loggers, planned: list[tuple[str, int]]) -> SweepResult:
    # lazy: Ray Tune, Optuna and the trainable (Lightning) load only when a sweep runs
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    # lazy: Ray's schedulers, pandas and Lightning load only when a sweep runs (start-up)
    from pianoeval.sweep.crossval import ASHA_EPOCH, FoldPruner, finished_trials
    from pianoeval.sweep.references import fit_space_references
    from pianoeval.sweep.results import write_results
    from pianoeval.sweep.tracking import tracking_callbacks
    from pianoeval.sweep.trainable import run_trial

    say = options.print_fn
    started = time.time()
    logging.getLogger("ray.tune").setLevel(logging.WARNING)  # per-snapshot INFO lines
    dashboard_url = init_ray(options)
    if dashboard_url:
        for line in dashboard_lines(dashboard_url):
            say(line)
    if _is_local(run_path) and not options.resume:  # the run exists from now on: --resume finds it
        Path(run_path).mkdir(parents=True, exist_ok=True)
        _write_sweep_file(space, run_path, [("", num_samples)], options.evaluate_test)
    threads = max(1, int(space.resources.cpu))
    resources = trial_resources(space.resources.cpu, space.resources.gpu, say)
    if resources["gpu"] != space.resources.gpu:  # GPU-seconds in the results follow what ran
        space = replace(space, resources=space.resources.model_copy(update={"gpu": resources["gpu"]}))
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=space.base.to_dict(), threads=threads,
                             evaluate_test=options.evaluate_test, fixed_model=space.fixed_model,
                             folds=space.folds, order_seed=space.sampler.seed,
                             metrics=(space.metric, *space.record)),
        resources,
    )
    if _is_local(run_path):
        Path(run_path).mkdir(parents=True, exist_ok=True)
    # run files written here on the driver: the run folder, or under results/ for remote storage
    local_dir = Path(run_path) if _is_local(run_path) else results_root() / "sweeps" / space.name / run_id
    callbacks = [_progress_callback(space, num_samples, say), *options.callbacks,
                 *tracking_callbacks(loggers, f"sweeps/{space.name}", run_id, local_dir,
                                     _describe_trial(space, run_id), say)]
    if options.resume and _is_local(run_path) and not saved_tune_state(Path(run_path)):
        # stopped before Tune saved its first state: no trial had finished, start it afresh
        say(f"[sweep] run {run_id} was stopped before its first trial finished: starting it again")
        options = replace(options, resume=False)
        planned = []

    def new_tuner(part: str, samples: int, sampler_seed: int, finished: dict | None = None, resume: bool = False):
        searcher = OptunaSearch(space=DefineByRun(space.parameters), metric=space.metric, mode=space.mode,
                                sampler=sampler_for(space, sampler_seed), study_name=study_name(space, run_id),
                                storage=_study_storage(run_path))
        scheduler = FoldPruner(folds=space.folds, max_gap=space.budget.fold_max_gap if space.cross_validated else None,
                               time_attr=ASHA_EPOCH, metric=space.metric, mode=space.mode,
                               max_t=space.budget.max_epochs, grace_period=space.budget.grace_period,
                               reduction_factor=space.budget.reduction_factor,
                               stop_last_trials=not space.cross_validated)
        scheduler.finished.update(finished or {})  # an extension's pruner knows the earlier trials
        return tune_experiment(trainable, storage_path=run_path if part else space_root, name=part or run_id,
                               resume=resume, callbacks=callbacks, max_failures=options.max_failures,
                               max_concurrent=options.max_concurrent, dirname=trial_dirname, search_alg=searcher,
                               scheduler=scheduler, num_samples=samples)

    def part_path(part: str) -> str:
        return f"{run_path}/{part}" if part else run_path

    folds = (f" x {len(space.folds)} folds {list(space.folds)}" + (
        f", fold pruning at a gap of {space.budget.fold_max_gap:g}" if space.budget.fold_max_gap is not None else "")
        if space.cross_validated else "")
    if options.resume:
        say(f"[sweep] resuming {space.name} run {run_id} from {run_path}")
        last, samples = planned[-1]
        # restored when Tune saved its state; an extension stopped before that starts again
        tuner = new_tuner(last, samples, space.sampler.seed + len(planned) - 1, resume=True)
    else:
        say(f"[sweep] {space.name}: {num_samples} trials of {space.base.model_name}{folds}, sampler "
            f"{space.sampler.name}, ASHA over {space.budget.max_epochs} epochs -> {run_path}")
        tuner = new_tuner("", num_samples, space.sampler.seed)
        planned = [("", num_samples)]
    if _is_local(run_path):
        say(f"[sweep] watch: tensorboard --logdir {run_path}  |  optuna-dashboard {run_path}/{OPTUNA_JOURNAL}")
    results = fit_experiment(tuner)
    have = sum(n for _, n in planned)
    if not unfinished_trials(results, planned[-1][1]) and num_samples > have:
        # an extension: a new Tune experiment in the run folder, on the same Optuna study
        # (its sampler sees every earlier trial); earlier trials are not trained again
        part = f"{EXTENSION_PREFIX}{len(planned)}"
        say(f"[sweep] extending run {run_id} from {have} to {num_samples} trials ({part}/)")
        earlier = [*_earlier_results(planned[:-1], part_path, trainable), results]
        planned = [*planned, (part, num_samples - have)]
        _write_sweep_file(space, run_path, planned, options.evaluate_test)
        tuner = new_tuner(part, num_samples - have, space.sampler.seed + len(planned) - 1,
                          finished_trials(earlier, space.metric, space.folds))
        callbacks[0].done = have  # the progress line counts on from the earlier trials
        results = fit_experiment(tuner)
    local_dir.mkdir(parents=True, exist_ok=True)
    every = [*_earlier_results(planned[:-1], part_path, trainable), results]
    if not unfinished_trials(results, planned[-1][1]):  # every trial is done: the references beside them
        fit_space_references(space, local_dir, options.evaluate_test, say)
        if options.resume:  # resumed with another reference_baselines: the run records the list it shows now
            _record_references(space, run_path)
    trials = write_results(space, every, local_dir, {"git_commit": git_commit()})
    if unfinished_trials(results, planned[-1][1]):
        # Tune saved its state: what finished is in trials.parquet, the rest continues on resume
        raise RunInterrupted(run_id)
    result = SweepResult(local_dir, trials, wall_seconds=time.time() - started, dashboard_url=dashboard_url)
    best_file = local_dir / "best.yaml"
    result.best_config = load_yaml(best_file) if best_file.is_file() else None
    return result


def _earlier_results(parts: list[tuple[str, int]], part_path, trainable) -> list:
    """The finished Tune experiments of a run before its last part (read, not rerun)."""
    from ray import tune  # lazy: see _fit_sweep

    return [tune.Tuner.restore(part_path(part), trainable=trainable).get_results() for part, _ in parts]


def tune_experiment(trainable, *, storage_path: str, name: str, resume: bool, callbacks: list, max_failures: int,
                    max_concurrent: int | None, dirname, param_space: dict | None = None, search_alg=None,
                    scheduler=None, num_samples: int = 1):
    """The one place a Tune experiment is built or restored (sweeps, their extensions,
    ablations, staged rounds and confirmations go through it). ``resume`` restores the
    experiment at ``<storage_path>/<name>`` when Tune saved its state there (finished trials
    stay finished, unfinished ones continue from their checkpoints, errored ones are not
    retried), else builds it afresh. ``param_space`` must be passed again on restore (Tune's
    saved tuner does not hold it)."""
    from ray import tune  # lazy: Ray Tune loads only when trials run

    path = f"{storage_path}/{name}"
    if resume and (not _is_local(path) or saved_tune_state(Path(path))):
        kwargs = {"param_space": param_space} if param_space is not None else {}
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=False, **kwargs)
        tuner._local_tuner._run_config.callbacks = callbacks  # progress line and trackers: this call's, not the saved ones
        return tuner
    return tune.Tuner(
        trainable,
        **({"param_space": param_space} if param_space is not None else {}),
        tune_config=tune.TuneConfig(search_alg=search_alg, scheduler=scheduler, num_samples=num_samples,
                                    max_concurrent_trials=max_concurrent, reuse_actors=True,
                                    trial_dirname_creator=dirname),
        run_config=tune.RunConfig(name=name, storage_path=storage_path, verbose=0, callbacks=callbacks,
                                  failure_config=tune.FailureConfig(max_failures=max_failures),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
    )


def fit_experiment(tuner):
    """``tuner.fit()`` with SIGTERM handled as Ctrl-C (Tune saves its state first)."""
    with stop_cleanly_on_sigterm():
        return tuner.fit()


def saved_tune_state(run_dir: Path) -> bool:
    """Whether Tune saved an experiment state to restore (a driver killed early leaves at
    most its ``tuner.pkl``, and nothing to restore from)."""
    return (run_dir / "tuner.pkl").is_file() and any(run_dir.glob("experiment_state-*.json"))


def _study_storage(run_path: str):
    """The study's Optuna storage: a journal file in a local run folder (which Ray's saved
    searcher state points back to on ``--resume``); in memory for remote storage."""
    if not _is_local(run_path):
        return None
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(Path(run_path) / OPTUNA_JOURNAL)))


def _describe_trial(space: SearchSpace, run_id: str):
    """A sweep trial's name and tags for TensorBoard, MLflow and W&B."""
    base, commit = space.base, git_commit()

    def describe(trial) -> tuple[str, dict[str, str]]:
        config = trial.config or {}
        tags = {"space": space.name, "run": run_id, "trial_id": trial.trial_id, "split": base.data.split,
                "fold": str(config.get("data.fold", base.data.fold)), "seed": str(config.get("seed", base.seed)),
                "git_commit": commit}
        return trial_dirname(trial), tags

    return describe


def _record_references(space: SearchSpace, run_path: str) -> None:
    """Update ``reference_baselines`` in a resumed run's ``sweep.yaml`` (the reports read it)."""
    path = Path(run_path) / "sweep.yaml"
    if not _is_local(run_path) or not path.is_file():
        return
    recorded = load_yaml(path)
    if isinstance(recorded, dict) and recorded.get("reference_baselines") != list(space.reference_baselines):
        dump_yaml({**recorded, "reference_baselines": list(space.reference_baselines)}, path)


def _write_sweep_file(space: SearchSpace, run_path: str, parts: list[tuple[str, int]],
                      evaluate_test: bool = False) -> None:
    """The resolved space and options: what this run is, for reports and for resuming;
    ``parts``: its Tune experiments (the first, then extensions) and their trial counts."""
    if not _is_local(run_path):
        return
    num_samples = sum(n for _, n in parts)
    dump_yaml({
        "space": space.name, "source": str(space.path), **_space_record(space),
        "record": list(space.record), "resources": space.resources.model_dump(), "num_samples": num_samples,
        "git_commit": git_commit(), "reference_baselines": list(space.reference_baselines),
        "evaluate_test": evaluate_test,
        "parts": [{"name": part, "num_samples": n} for part, n in parts],
    }, Path(run_path) / "sweep.yaml")


def _space_record(space: SearchSpace) -> dict[str, Any]:
    """The part of sweep.yaml that judges trials: a resumed or extended run must keep it."""
    return {"metric": space.metric, "mode": space.mode, "sampler": space.sampler.model_dump(),
            "budget": space.budget.model_dump(),
            "parameters": {p.key: {"distribution": type(p.distribution).__name__, **p.distribution.__dict__,
                                   **({"when": p.when} if p.when else {})} for p in space.parameters},
            "base": space.base.to_dict(), "folds": list(space.folds)}


def check_same_space(space: SearchSpace, run_dir: Path) -> None:
    """A resumed or extended run keeps the space its earlier trials were sampled, trained and
    judged by (one Optuna study, one ASHA): a changed base config, parameter, objective, sampler,
    budget or folds (a ``--set`` or an edit of the space since) is a ConfigError naming the key.
    More trials (``--num-samples``), the reference baselines, ``objective.record`` and the
    resources per trial may change."""
    record = run_dir / "sweep.yaml"
    recorded = load_yaml(record)
    now = json.loads(json.dumps(_space_record(space), default=str))  # the plain types dump_yaml writes
    now["budget"].pop("num_samples", None)
    for section, value in now.items():
        if section not in recorded:  # a run from before the key was recorded
            continue
        was = recorded[section]
        if isinstance(was, dict) and section == "budget":
            was = {k: v for k, v in was.items() if k != "num_samples"}
        flat_now, flat_was = (flatten({section: value}), flatten({section: was})) if isinstance(value, dict) else (
            {section: value}, {section: was})
        for key in sorted(set(flat_now) | set(flat_was)):
            if flat_now.get(key) != flat_was.get(key):
                name = {"metric": "objective.metric", "mode": "objective.mode"}.get(key, key.removeprefix("base."))
                raise ConfigError(f"--resume: {name} is {flat_now.get(key)!r} now but {flat_was.get(key)!r} in {record}; "
                                  "a resumed or extended run keeps the space its trials were judged by: resume with the "
                                  "space and --set as they were, or start a new run (leave out --resume)")
