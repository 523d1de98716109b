"""Running an ablation's trial set on the sweep engine's Ray machinery.

Trained trials (variant x fold x seed) run as Ray Tune trials (same trainable, same
resources, retries, checkpoints, reuse and ``--resume`` as sweeps; ASHA when the
budget asks for it). Each trial trains with Lightning, selects its best checkpoint
on validation and evaluates it on validation and test. Eval-only variants then
evaluate a trained variant's checkpoints under different settings (e.g. a level
zeroed only at evaluation), fold by fold and seed by seed, without training. Reference
baselines (closed-form predictors, seconds each) are fitted last, in this process, into
``references/<name>/fold<k>-seed<s>/``; their rows have ``reference`` set.

Results: ``<storage>/ablations/<name>/<run-id>/trials.parquet`` (one row per run of
the trial set: the columns every trials table has, ``pianoeval.sweep.rows``, then the
variant, its flags and its ``val/*``, ``test/*`` and ``fit/*`` metrics) and ``comparison.md`` (paired comparison tables with confidence
intervals, tests, per-dimension deltas and cost; see ``pianoeval.ablation.compare``).
Each trained trial's folder, ``trial_<id>-<variant>-fold<k>-seed<s>``, holds its
TensorBoard curves; ``--logger`` adds MLflow and W&B (``pianoeval.sweep.tracking``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from pianoeval.ablation.spec import AblationSpec, Trial, trial_record
from pianoeval.data import leakage_warnings
from pianoeval.config import dump_yaml
from pianoeval.errors import RunInterrupted
from pianoeval.experiment import monitor_mode
from pianoeval.io import atomic_write_parquet, run_id_for
from pianoeval.provenance import git_commit
from pianoeval.sweep.engine import (MAX_FAILURES, SweepOptions, fit_experiment, results_folder, tune_experiment,
                                    unfinished_trials)
from pianoeval.sweep.engine import trial_dirname as sweep_trial_dirname
from pianoeval.sweep.ray_session import init_ray, trial_resources
from pianoeval.sweep.rows import RunContext, failure_summary, rows_frame, text, trial_row, tune_trial_id
from pianoeval.sweep.loggers import parse_loggers
from pianoeval.sweep.references import REFERENCES_DIR, fit_reference
from pianoeval.sweep.tracking import tracking_callbacks
from pianoeval.sweep.trainable import run_ablation_trial
from pianoeval.train.data import build_datamodule
from pianoeval.train.module import PerformanceModule
from pianoeval.train.run import evaluate_weights, load_weights


@dataclass
class AblationOptions:
    address: str | None = None
    storage: str | None = None
    resume: bool = False
    run_id: str | None = None
    num_cpus: int | None = None
    max_concurrent: int | None = None
    max_failures: int = MAX_FAILURES
    connect_timeout: float = 30.0
    loggers: tuple[str, ...] = ()  # --logger values: mlflow[=URI], wandb[=PROJECT]
    tracking_dir: Path | None = None  # default MLflow store's folder; None: the trial set's run folder
    print_fn: Any = print


@dataclass
class AblationResult:
    run_dir: Path
    trials: pd.DataFrame
    wall_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def run_dir_for(spec: AblationSpec, options: AblationOptions, stage: str | None = None) -> tuple[Path, str]:
    base = results_folder(options.storage) / "ablations" / spec.name
    run_id = run_id_for(base, options.resume, options.run_id, "ablation.yaml", f"ablation {spec.name!r}")
    run_dir = base / run_id
    return (run_dir / stage if stage else run_dir), run_id


def trial_dirname(trial) -> str:
    """``trial_<id>-<variant>-fold<k>-seed<s>``: the folder (and its TensorBoard run) says
    which run of the trial set it is. Variant names are the spec's keys: only letters,
    digits and ``_.+-`` reach the path."""
    key = str((trial.config or {}).get("trial", "")).replace("/", "-")
    label = re.sub(r"[^A-Za-z0-9_.+-]+", "_", key)[:80]
    return f"{sweep_trial_dirname(trial)}-{label}" if label else sweep_trial_dirname(trial)


def _describe_trial(spec: AblationSpec, trials: dict[str, Trial], run_id: str):
    """An ablation trial's name (its key) and tags for TensorBoard, MLflow and W&B."""
    commit = git_commit()

    def describe(trial) -> tuple[str, dict[str, str]]:
        tags = {"ablation": spec.name, "run": run_id, "trial_id": trial.trial_id, "git_commit": commit}
        run = trials.get((trial.config or {}).get("trial"))
        if run is None:
            return trial.trial_id, tags
        tags.update(variant=run.variant, fold=str(run.fold), seed=str(run.seed), model=run.config.model_name)
        return run.key, tags

    return describe


def _progress_callback(total: int, print_fn):
    from ray import tune

    class TrialLine(tune.Callback):
        def __init__(self):
            self.done = 0

        def _line(self, trial, status):
            self.done += 1
            result = trial.last_result or {}
            epochs = result.get("epochs_run", result.get("training_iteration", 0))
            name = (trial.config or {}).get("trial", trial.trial_id)
            print_fn(f"[ablate] {self.done}/{total} {name} {status} after "
                     f"{epochs} epochs, {result.get('time_total_s', 0):.0f}s: "
                     f"val/r2={result.get('val/r2', float('nan')):.4f} test/r2={result.get('test/r2', float('nan')):.4f} "
                     f"val/pairwise_acc={result.get('val/pairwise_acc', float('nan')):.4f}")

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._line(trial, "done")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._line(trial, f"ERROR ({str(trial.error_file or '')})")

    return TrialLine()


def train_trials(spec: AblationSpec, trials: list[Trial], run_dir: Path, options: AblationOptions):
    """Run the trained trials with Ray Tune; returns the ResultGrid and the resources
    the trials ran with (no GPU when the cluster has none, whatever the spec asked)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler


    loggers = parse_loggers(options.loggers)  # a missing extra fails here, before Ray starts
    init_ray(SweepOptions(address=options.address, num_cpus=options.num_cpus,
                          connect_timeout=options.connect_timeout))
    configs = {t.key: t.config.to_dict() for t in trials}
    threads = max(1, int(spec.resources.cpu))
    resources = trial_resources(spec.resources.cpu, spec.resources.gpu, options.print_fn)
    trainable = tune.with_resources(tune.with_parameters(run_ablation_trial, configs=configs, threads=threads),
                                    resources)
    tracking_dir = options.tracking_dir or run_dir
    callbacks = [_progress_callback(len(trials), options.print_fn),
                 *tracking_callbacks(loggers, f"ablations/{spec.name}", tracking_dir.name, tracking_dir,
                                     _describe_trial(spec, {t.key: t for t in trials}, tracking_dir.name),
                                     options.print_fn)]
    param_space = {"trial": tune.grid_search([t.key for t in trials])}
    budget = spec.budget
    if budget.asha_grace_period:
        # Hopeless trials stop at the first rung; trials reaching max_t finish on their own
        # (stop_last_trials=False) so that their final evaluation on val/test runs.
        scheduler = ASHAScheduler(time_attr="training_iteration", metric=budget.asha_metric,
                                  mode=monitor_mode(budget.asha_metric), max_t=budget.max_epochs,
                                  grace_period=budget.asha_grace_period,
                                  reduction_factor=budget.asha_reduction_factor, stop_last_trials=False)
    else:
        scheduler = FIFOScheduler()
    # a run killed before Tune saved its first experiment state is built afresh (restoring it
    # would give one trial with an empty config: tuner.pkl does not hold the param space)
    tuner = tune_experiment(trainable, storage_path=str(run_dir.parent), name=run_dir.name, resume=options.resume,
                            callbacks=callbacks, max_failures=options.max_failures,
                            max_concurrent=options.max_concurrent, dirname=trial_dirname, param_space=param_space,
                            scheduler=scheduler)
    results = fit_experiment(tuner)
    return results, spec.resources.model_copy(update=resources)


def _data_warnings(config) -> list[str]:
    data = config.data
    return leakage_warnings(data.labels, data.split, data.pieces, data.allow_piece_leakage, data.fold)


def run_context(spec: AblationSpec, resources, run_dir: Path, commit: str) -> RunContext:
    """What the trial set's rows share; ``resources``: what a trained trial held."""
    return RunContext(cpu=resources.cpu, gpu=resources.gpu, git_commit=commit, run_dir=run_dir,
                      metric=spec.budget.asha_metric, mode=monitor_mode(spec.budget.asha_metric),
                      max_epochs=spec.budget.max_epochs)


def _row(trial: Trial, source, context: RunContext, eval_only: bool = False, **where) -> dict[str, Any]:
    """A run's row: the common columns (``trial_row`` of its Tune result or summary), then the
    ablation's: which run of the trial set it is, and its ``val/*`` and ``test/*`` metrics
    (the best checkpoint's; a pruned run's: its last epoch's ``val/*``)."""
    row = trial_row(source, context, fold=trial.fold, seed=trial.seed, **where)
    row.update({
        "variant": trial.variant, "model": trial.config.model_name, "eval_only": eval_only,
        "reference": trial.reference, "source_variant": trial.eval_only_source,
        "warnings": "\n".join(_data_warnings(trial.config)) or None,  # e.g. piece leakage let through
    })
    if row["status"] not in ("error", "diverged"):  # a failed run's last epoch is no result
        metrics = source if isinstance(source, Mapping) else (source.metrics or {})
        row.update({k: v for k, v in metrics.items() if k.startswith(("val/", "test/"))})
    return row


def collect_trained(results, trials: dict[str, Trial], context: RunContext) -> list[dict[str, Any]]:
    rows = []
    for result in results:
        key = (result.config or {}).get("trial")
        if key not in trials:
            continue
        last = result.metrics or {}
        metrics_file = Path(result.path) / "run" / "metrics.json"
        if result.error is None and not last.get("final_eval") and metrics_file.is_file():
            # the run wrote its summary but Tune's last result is not its final evaluation
            summary = {**json.loads(metrics_file.read_text()), "node_id": last.get("node_id")}
            summary["wall_seconds"] = last.get("time_total_s", summary.get("wall_seconds"))
            rows.append(_row(trials[key], summary, context, trial_id=tune_trial_id(Path(result.path)),
                             trial_dir=result.path))
        else:  # its final evaluation, pruned by ASHA, or failed (diverged / error from the exception's type)
            rows.append(_row(trials[key], result, context))
    return rows


def evaluate_one(trial: Trial, weights: Path) -> dict[str, Any]:
    """One eval-only trial: ``trial``'s config evaluated on the trained ``weights``; its metrics."""
    datamodule = build_datamodule(trial.config)
    datamodule.setup()
    module = PerformanceModule(trial.config, datamodule.input_dim)
    load_weights(module, weights)
    metrics, _ = evaluate_weights(trial.config, module, datamodule)
    return metrics


def evaluate_eval_only(trials: list[Trial], trained_rows: list[dict], context: RunContext, print_fn) -> list[dict]:
    """Evaluate eval-only variants on their source variant's trained weights. A trial that
    cannot be evaluated (no weights, or its evaluation raised) is a failed row, not the end
    of the trial set: the others are evaluated and every row is written."""

    sources = {(r["variant"], r["fold"], r["seed"]): r for r in trained_rows}
    rows, failed = [], []
    for trial in trials:
        source = sources.get((trial.eval_only_source, trial.fold, trial.seed))
        folder = text(source["trial_dir"]) if source else None  # relative to the run folder
        weights = context.run_dir / folder / "run" / "model.pt" if folder else None
        if weights is None or not weights.is_file():
            why = f"source run {trial.eval_only_source}/fold{trial.fold}/seed{trial.seed} has no trained weights"
            print_fn(f"[ablate] skip {trial.key}: {why}")
            rows.append(_row(trial, {"status": "error", "error": why}, context, eval_only=True))
            failed.append(trial.key)
            continue
        started = time.time()
        try:
            metrics = evaluate_one(trial, weights)
        except Exception as err:  # recorded, not raised: the other trials' rows and the report must be written
            summary = {**failure_summary(err), "wall_seconds": time.time() - started}
            print_fn(f"[ablate] {trial.key} failed on {trial.eval_only_source}'s weights: {summary['error']}")
            rows.append(_row(trial, summary, context, eval_only=True, trial_dir=weights.parent))
            failed.append(trial.key)
            continue
        summary = {**metrics, "status": "completed", "wall_seconds": time.time() - started, "epochs_run": 0,
                   "best_epoch": source.get("best_epoch")}
        rows.append(_row(trial, summary, context, eval_only=True, trial_dir=weights.parent))
        print_fn(f"[ablate] {trial.key} evaluated on {trial.eval_only_source}'s weights: "
                 f"test/r2={metrics.get('test/r2', float('nan')):.4f}")
    if failed:
        print_fn(f"[ablate] {len(failed)} of {len(trials)} eval-only trials failed (their rows say why): "
                 + ", ".join(failed))
    return rows


def fit_references(trials: list[Trial], context: RunContext, print_fn) -> list[dict]:
    """Fit the reference baselines (closed form, in this process, on one CPU) and evaluate them;
    a finished one (its ``metrics.json`` says completed) is read back, not fitted again
    (``fit_reference``, which sweeps share)."""

    context = replace(context, cpu=1, gpu=0)
    rows = []
    for trial in trials:
        out_dir = context.run_dir / REFERENCES_DIR / trial.variant / f"fold{trial.fold}-seed{trial.seed}"
        try:
            summary, fitted = fit_reference(trial.config, out_dir)
        except Exception as err:  # recorded, not raised: the trained runs' results must still be written
            summary = failure_summary(err)
            print_fn(f"[ablate] reference {trial.key} failed: {summary['error']}")
            rows.append(_row(trial, summary, context))
            continue
        if fitted:
            fallback = {k: v for k, v in (summary.get("fit") or {}).items() if "fallback" in k}
            print_fn(f"[ablate] reference {trial.key}: test/r2={summary.get('test/r2', float('nan')):.4f} "
                     f"test/pairwise_acc={summary.get('test/pairwise_acc', float('nan')):.4f}"
                     + "".join(f", {k} {v:g}" for k, v in fallback.items()))
        row = _row(trial, {"status": "error", **summary}, context, trial_dir=out_dir)
        row.update({f"fit/{k}": v for k, v in summary.get("fit", {}).items()})
        rows.append(row)
    return rows


def run_trial_set(spec: AblationSpec, run_dir: Path, options: AblationOptions) -> pd.DataFrame:
    """Train + evaluate every trial of ``spec``; write ``trials.parquet`` in ``run_dir``."""
    try:  # connect first: a cluster that cannot be reached leaves no run folder behind
        init_ray(SweepOptions(address=options.address, num_cpus=options.num_cpus,
                              connect_timeout=options.connect_timeout))
    except KeyboardInterrupt:
        if not (run_dir / "ablation.yaml").is_file():
            raise  # stopped before the run existed: nothing to resume
        raise RunInterrupted(run_dir.name) from None
    run_dir.mkdir(parents=True, exist_ok=True)
    trained = [t for t in spec.trials if t.eval_only_source is None and not t.reference]
    evaluated = [t for t in spec.trials if t.eval_only_source is not None]
    references = [t for t in spec.trials if t.reference]
    if not (run_dir / "ablation.yaml").is_file():
        dump_yaml({"ablation": spec.name, "source": spec.source, "description": spec.description,
                   "baseline": spec.baseline, "variants": [*spec.variants, *spec.eval_only],
                   "reference_baselines": list(spec.references),
                   "folds": list(spec.folds), "seeds": list(spec.seeds), "metrics": list(spec.metrics),
                   "budget": spec.budget.model_dump(), "resources": spec.resources.model_dump(),
                   "trials": {t.key: trial_record(t) for t in spec.trials},
                   "git_commit": git_commit()}, run_dir / "ablation.yaml")
    try:
        results, resources = train_trials(spec, trained, run_dir, options)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM before Tune took over its own handling
        raise RunInterrupted(run_dir.name) from None
    if unfinished_trials(results, len(trained), lambda r: (Path(r.path) / "run" / "metrics.json").is_file()):
        # Tune saved its state; finished trials keep their folders and are not retrained on resume
        raise RunInterrupted(run_dir.name)
    context = run_context(spec, resources, run_dir, git_commit())
    rows = collect_trained(results, {t.key: t for t in trained}, context)
    ran = {(r["variant"], r["fold"], r["seed"]) for r in rows}
    for trial in trained:  # never expected; recorded rather than lost if Tune's state drops a trial
        if (trial.variant, trial.fold, trial.seed) not in ran:
            why = "missing from Ray Tune's results; rerun with --resume to train it"
            options.print_fn(f"[ablate] {trial.key}: {why}")
            rows.append(_row(trial, {"status": "error", "error": why}, context))
    rows += evaluate_eval_only(evaluated, rows, context, options.print_fn)
    rows += fit_references(references, context, options.print_fn)
    order = {name: i for i, name in enumerate([*spec.variants, *spec.eval_only, *spec.references])}
    frame = rows_frame(rows)
    frame = frame.sort_values(["variant", "fold", "seed"], key=lambda c: c.map(order) if c.name == "variant" else c)
    frame = frame.reset_index(drop=True)
    atomic_write_parquet(frame, run_dir / "trials.parquet")
    return frame
