"""The Ray Tune trainable: one trial = one Lightning training run of a sampled config.

It merges the sampled flat config (``{"train.lr": 3e-4, ...}``) into the space's
base config, uses exactly the CPU threads the trial was given (two trials on two
cores would otherwise fight), reports every epoch through Ray's Lightning callback
with a checkpoint, and resumes from Tune's checkpoint after a failure or a
``--resume``. A trial whose loss turns non-finite raises ``TrialDiverged``; the
marker it leaves makes Tune's retries of that trial fail at once instead of
training again into the same divergence.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

import lightning as L

from pianoeval.errors import TrialDiverged
from pianoeval.experiment import ExperimentConfig
from pianoeval.models.registry import get_model
from pianoeval.paths import results_root
from pianoeval.sweep.crossval import (ASHA_EPOCH, FOLD, FOLD_DONE, FOLD_EPOCHS, FOLDS_DONE, FOLDS_TOTAL, fold_key,
                                      fold_order, mean_and_sd)
from pianoeval.train.run import train_run

DIVERGED_MARKER = "diverged.txt"
CHECKPOINT_NAME = "checkpoint.ckpt"
CHECKPOINT_FOLD = "fold.json"  # beside a cross-validated trial's checkpoint: the fold it belongs to


def _report_callback(fold: int | None = None, first_fold: bool = True):
    """The per-epoch report. ``fold``: the fold being trained in a cross-validated trial
    (reported, and written beside the checkpoint so a restored trial knows whose it is);
    ``first_fold``: whether ASHA's epoch (``asha_epoch``) is reported."""
    from ray.tune.integration.pytorch_lightning import TuneReportCheckpointCallback

    class EpochReport(TuneReportCheckpointCallback):
        """Reports every logged scalar plus the epoch and an early-stopping flag.

        ``on_train_epoch_end`` runs after the epoch's validation, so train loss,
        validation metrics and diagnostics of the same epoch are reported together."""

        def _get_report_dict(self, trainer, pl_module):
            report = super()._get_report_dict(trainer, pl_module)
            if report is None:
                return None
            report = {k: (v if math.isfinite(v) else float("nan")) for k, v in report.items()}
            report["epoch"] = trainer.current_epoch + 1
            if first_fold:
                report[ASHA_EPOCH] = trainer.current_epoch + 1
            if fold is not None:
                report[FOLD] = fold
            report["early_stopped"] = int(bool(trainer.should_stop))
            report["node_id"] = _node_id()
            return report

        @contextlib.contextmanager
        def _get_checkpoint(self, trainer):
            with super()._get_checkpoint(trainer) as checkpoint:
                if checkpoint is not None and fold is not None:
                    (Path(checkpoint.path) / CHECKPOINT_FOLD).write_text(json.dumps({"fold": fold}))
                yield checkpoint

    return EpochReport(filename=CHECKPOINT_NAME, on="train_epoch_end")


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def _stop_requested() -> bool:
    """Whether Tune asked this trial to stop (ASHA pruned it, or the sweep is ending).

    Ray stops a function trainable only when it next reports, i.e. after a whole
    epoch; reusing the actor for the next trial waits ~2 s for that and gives up.
    Reading the session's stop flag between batches (a Ray-internal attribute, hence
    the defensive lookup) frees the actor within one batch instead."""
    try:
        from ray.train._internal.session import get_session

        session = get_session()
        return bool(session is not None and session.stop_event.is_set())
    except (ImportError, AttributeError):
        return False


class StopWhenTuneStops(L.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if _stop_requested():
            raise SystemExit(0)  # what Ray itself does to end a stopped trial's thread

    on_validation_batch_end = on_train_batch_end


def trial_output_dir() -> Path:
    """Where a trial's run files go: its folder in the experiment's storage.

    Not ``get_trial_dir()``: that is the trial's working directory, which for an actor
    reused across trials is a temporary folder that is never synced to storage. With
    remote storage (s3://...), run files stay on the node under results/remote-runs/
    and the final metrics travel to the driver in the trial's last Tune report."""
    import pyarrow.fs
    import ray.tune


    storage = ray.tune.get_context().get_storage()
    if isinstance(storage.storage_filesystem, pyarrow.fs.LocalFileSystem):
        path = Path(storage.trial_fs_path)
    else:
        path = results_root() / "remote-runs" / storage.experiment_dir_name / storage.trial_dir_name
    path.mkdir(parents=True, exist_ok=True)
    return path


def train_in_trial(experiment, threads: int, evaluate_test: bool, final_report: bool = False) -> None:
    """Train one resolved config inside a Tune trial (sweeps and ablations share this).

    ``final_report``: after training, report the best checkpoint's val/test metrics to
    Tune as one more result (``final_eval: 1``), so the driver has them wherever the
    trial ran. Only without ASHA stopping the trial at its last epoch (ablations)."""
    import ray.tune


    trial_dir = trial_output_dir()
    marker = trial_dir / DIVERGED_MARKER
    if marker.is_file():
        raise TrialDiverged(marker.read_text())
    resume_from = None
    checkpoint = ray.tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume_from = trial_dir / "resume.ckpt"
            shutil.copyfile(Path(folder) / CHECKPOINT_NAME, resume_from)
    result = train_run(experiment, out_dir=trial_dir / "run", threads=threads, verbose=False,
                       callbacks=[_report_callback(), StopWhenTuneStops()], resume_from=resume_from,
                       evaluate_test=evaluate_test)
    if result.status == "diverged":
        marker.write_text(result.error or "diverged")
        raise TrialDiverged(result.error)
    closed_form = get_model(experiment.model_name).fit == "closed_form"
    if final_report or closed_form:
        # a closed-form fit ran no epoch callback: this one report is its only result (its "epoch 1")
        summary = {k: float(v) for k, v in result.metrics.items() if isinstance(v, (int, float))}
        ray.tune.report({**summary, "final_eval": int(final_report), "status_completed": 1,
                         "epochs_run": result.epochs_run, "closed_form": int(closed_form),
                         "best_epoch": result.best_epoch if result.best_epoch is not None else -1,
                         "wall_seconds": result.wall_seconds, "node_id": _node_id()})


def run_trial(config: dict[str, Any], base: dict[str, Any], threads: int, evaluate_test: bool = False,
              fixed_model: dict[str, Any] | None = None, folds: tuple[int, ...] = (), order_seed: int = 0,
              metrics: tuple[str, ...] = ()) -> None:
    """Sweep entry point (wrapped with ``tune.with_parameters``): base + sampled values; a
    sampled ``model.name`` keeps the space's fixed model fields (``fixed_model``). With
    several ``folds`` the trial is cross-validated (``train_folds_in_trial``); ``metrics``:
    the objective first, then the recorded metrics."""

    experiment = ExperimentConfig.resolve(base, "<sweep base>").with_overrides(config, "<sampled config>",
                                                                             keep_model=fixed_model)
    if len(folds) > 1:
        train_folds_in_trial(experiment, folds, order_seed, threads, evaluate_test, metrics)
        return
    if folds:
        experiment = experiment.with_overrides({"data.fold": folds[0]}, "budget.folds")
    train_in_trial(experiment, threads, evaluate_test)


def _finished_fold(out_dir: Path) -> dict | None:
    """A fold's summary when that fold's run finished (its ``metrics.json`` says completed)."""
    path = out_dir / "metrics.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    return summary if summary.get("status") == "completed" else None


def _restored_checkpoint(trial_dir: Path) -> tuple[int | None, Path | None]:
    """The fold and file of the checkpoint Tune restored this trial from (none: a fresh trial)."""
    import ray.tune

    checkpoint = ray.tune.get_checkpoint()
    if checkpoint is None:
        return None, None
    with checkpoint.as_directory() as folder:
        marker = Path(folder) / CHECKPOINT_FOLD
        if not marker.is_file():
            return None, None
        resume_from = trial_dir / "resume.ckpt"
        shutil.copyfile(Path(folder) / CHECKPOINT_NAME, resume_from)
        return int(json.loads(marker.read_text())["fold"]), resume_from


def train_folds_in_trial(experiment, folds: tuple[int, ...], order_seed: int, threads: int, evaluate_test: bool,
                         metrics: tuple[str, ...]) -> None:
    """Train one config on each of ``folds`` in this trial (see ``pianoeval.sweep.crossval``).

    Each fold's run goes to ``<trial>/fold<k>/``; a fold whose run finished is read back,
    never trained again, so a resumed trial continues with its unfinished fold (from the
    checkpoint Tune restored, when that checkpoint is the fold's)."""
    import ray.tune


    trial_dir = trial_output_dir()
    marker = trial_dir / DIVERGED_MARKER
    if marker.is_file():
        raise TrialDiverged(marker.read_text())
    order = fold_order(tuple(folds), order_seed, ray.tune.get_context().get_trial_id())
    restored_fold, resume_from = _restored_checkpoint(trial_dir)
    done: dict[int, dict] = {}
    fold_epochs = 0
    for position, fold in enumerate(order):
        out_dir = trial_dir / f"fold{fold}"
        summary = _finished_fold(out_dir)
        if summary is None:
            result = train_run(experiment.with_overrides({"data.fold": fold}, "budget.folds"), out_dir=out_dir,
                               threads=threads, verbose=False,
                               callbacks=[_report_callback(fold, first_fold=position == 0), StopWhenTuneStops()],
                               resume_from=resume_from if restored_fold == fold else None,
                               evaluate_test=evaluate_test)
            if result.status == "diverged":
                marker.write_text(f"fold {fold}: {result.error or 'diverged'}")
                raise TrialDiverged(f"fold {fold}: {result.error}")
            summary = _finished_fold(out_dir) or {"epochs_run": result.epochs_run, **result.metrics}
        done[fold] = summary
        fold_epochs += int(summary.get("epochs_run") or 0)
        ray.tune.report(_fold_done_report(done, metrics, fold, len(order), fold_epochs))


def _fold_done_report(done: dict[int, dict], metrics: tuple[str, ...], fold: int, total: int,
                      fold_epochs: int) -> dict[str, Any]:
    """The result after a fold: the objective as the mean over the finished folds, its sd,
    and every finished fold's values (``fold<k>/<metric>``, test metrics included)."""
    objective = metrics[0]
    report: dict[str, Any] = {FOLD_DONE: 1, FOLD: fold, FOLDS_DONE: len(done), FOLDS_TOTAL: total,
                              FOLD_EPOCHS: fold_epochs, "node_id": _node_id()}
    for k, summary in done.items():
        for key, value in summary.items():
            if key.startswith(("val/", "test/")) and isinstance(value, (int, float)):
                report[fold_key(k, key)] = float(value)
    for key in dict.fromkeys((*metrics, *[k.split("/", 1)[1] for k in report if k.startswith("fold")])):
        values = [float(s[key]) for s in done.values() if isinstance(s.get(key), (int, float))]
        if values:
            report[f"cv/{key}"], report[f"cv/{key}_sd"] = mean_and_sd(values)
    report[objective] = report.get(f"cv/{objective}", float("nan"))  # what Optuna and the progress line read
    return report


def run_ablation_trial(config: dict[str, Any], configs: dict[str, dict], threads: int) -> None:
    """Ablation entry point: ``config["trial"]`` names one resolved run of the trial set."""

    experiment = ExperimentConfig.resolve(configs[config["trial"]], f"<ablation trial {config['trial']}>")
    train_in_trial(experiment, threads, evaluate_test=True, final_report=True)
