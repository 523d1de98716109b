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
import logging
import math
import os
import signal
import threading
import time
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pianoeval.config import load_yaml
from pianoeval.errors import ConfigError, RunInterrupted
from pianoeval.io import check_output_root, run_id_for
from pianoeval.paths import results_root
from pianoeval.provenance import git_commit
from pianoeval.sweep.loggers import parse_loggers
from pianoeval.sweep.ray_session import dashboard_lines, init_ray, trial_resources
from pianoeval.sweep.record import (EXTENSION_PREFIX, OPTUNA_JOURNAL, check_evaluate_test, check_extension,
                                    check_same_space, is_local, planned_parts, record_references, saved_tune_state,
                                    study_name, study_storage, write_sweep_file)
from pianoeval.sweep.space import DefineByRun, SearchSpace, grid_size

MAX_FAILURES = 2  # retries of a crashed trial, from its last checkpoint


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


def unfinished_trials(results, expected: int, finished=None) -> int:
    """Trials of a ``Tuner.fit`` that neither finished nor failed (an interrupted run),
    including those never started. After a fit a signal stopped, Tune's "terminated" also
    covers the trials it stopped: a trial then counts as finished only when its last result
    says so (``done``, a final evaluation) or ``finished(result)`` does (e.g. the run wrote
    its summary just before the signal)."""
    missing = max(expected, len(results)) - results.num_terminated - results.num_errors
    if missing or not _was_interrupted(results):
        return missing
    finished = finished or (lambda result: False)
    return sum(1 for r in results if r.error is None and not (r.metrics or {}).get("done")
               and not (r.metrics or {}).get("final_eval") and not finished(r))


def _was_interrupted(results) -> bool:
    try:
        return results in _INTERRUPTED
    except TypeError:  # an object without weak references (a test double) was never fitted here
        return False


_INTERRUPTED: "weakref.WeakSet" = weakref.WeakSet()  # the fits a signal stopped (see fit_experiment)


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
                        remote=not is_local(space_root))
    run_path = f"{space_root}/{run_id}"
    planned = planned_parts(Path(run_path)) if options.resume and is_local(run_path) else []
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
        if is_local(run_path) and not (Path(run_path) / "sweep.yaml").is_file():
            raise  # stopped before the run existed: nothing to resume
        raise RunInterrupted(run_id) from None


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
    if is_local(run_path) and not options.resume:  # the run exists from now on: --resume finds it
        Path(run_path).mkdir(parents=True, exist_ok=True)
        write_sweep_file(space, run_path, [("", num_samples)], options.evaluate_test)
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
    if is_local(run_path):
        Path(run_path).mkdir(parents=True, exist_ok=True)
    # run files written here on the driver: the run folder, or under results/ for remote storage
    local_dir = Path(run_path) if is_local(run_path) else results_root() / "sweeps" / space.name / run_id
    callbacks = [_progress_callback(space, num_samples, say), *options.callbacks,
                 *tracking_callbacks(loggers, f"sweeps/{space.name}", run_id, local_dir,
                                     _describe_trial(space, run_id), say)]
    if options.resume and is_local(run_path) and not saved_tune_state(Path(run_path)):
        # stopped before Tune saved its first state: no trial had finished, start it afresh
        say(f"[sweep] run {run_id} was stopped before its first trial finished: starting it again")
        options = replace(options, resume=False)
        planned = []

    def new_tuner(part: str, samples: int, sampler_seed: int, finished: dict | None = None, resume: bool = False):
        searcher = OptunaSearch(space=DefineByRun(space.parameters), metric=space.metric, mode=space.mode,
                                sampler=sampler_for(space, sampler_seed), study_name=study_name(space, run_id),
                                storage=study_storage(run_path))
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
    if is_local(run_path):
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
        write_sweep_file(space, run_path, planned, options.evaluate_test)
        tuner = new_tuner(part, num_samples - have, space.sampler.seed + len(planned) - 1,
                          finished_trials(earlier, space.metric, space.folds))
        callbacks[0].done = have  # the progress line counts on from the earlier trials
        results = fit_experiment(tuner)
    local_dir.mkdir(parents=True, exist_ok=True)
    every = [*_earlier_results(planned[:-1], part_path, trainable), results]
    if not unfinished_trials(results, planned[-1][1]):  # every trial is done: the references beside them
        fit_space_references(space, local_dir, options.evaluate_test, say)
        if options.resume:  # resumed with another reference_baselines: the run records the list it shows now
            record_references(space, run_path)
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
    if resume and (not is_local(path) or saved_tune_state(Path(path))):
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
    """``tuner.fit()`` with SIGTERM handled as Ctrl-C (Tune saves its state first); a fit that
    Ctrl-C or SIGTERM stopped is remembered as interrupted (``unfinished_trials``)."""
    from ray.tune import ResultGrid  # lazy: see _fit_sweep

    with stop_cleanly_on_sigterm(), _tune_interrupt_seen() as interrupted:
        results = tuner.fit()
        if interrupted() and isinstance(results, ResultGrid):  # Tune's handler fired: see _tune_interrupt_seen
            _INTERRUPTED.add(results)
    return results


@contextlib.contextmanager
def _tune_interrupt_seen():
    """Whether Tune's SIGINT handler fired during the fit. Tune installs it when the fit starts,
    and when it fires it puts back the handler it found: this module's marker, which otherwise
    acts as the handler before it did. Off the main thread, or with Tune's handler disabled,
    Tune installs none and this reports nothing."""
    off = os.getenv("TUNE_DISABLE_SIGINT_HANDLER", "0") != "0"
    if off or threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = signal.getsignal(signal.SIGINT)

    def marker(signum, frame):  # a second Ctrl-C, after Tune's handler put this one back
        if previous == signal.SIG_IGN:
            return None
        if callable(previous):
            return previous(signum, frame)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, marker)
    try:
        yield lambda: signal.getsignal(signal.SIGINT) is marker
    finally:
        signal.signal(signal.SIGINT, previous)


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


