"""One training run: fit, select the best checkpoint, evaluate it on validation and test.

``train_run(config)`` writes to its run directory:

* ``resolved.yaml``: the resolved config plus provenance (git commit, versions,
  device, threads, and under ``compute`` the accelerator, precision and determinism
  that took effect, see ``pianoeval.train.hardware``); ``python runners/train.py
  --config resolved.yaml`` reruns it;
* ``metrics.json``: the best checkpoint's ``val/*`` and ``test/*`` metrics, the
  best epoch, epochs run, wall time and status;
* ``history.csv``: every epoch's logged metrics (losses, metrics, diagnostics);
* ``predictions.parquet``: per-segment predictions and labels on val and test;
* ``model.pt``: the best weights (a plain state dict; loaded with ``weights_only=True``).

A registry entry with ``fit="closed_form"`` (the reference predictors) is fitted in one
step on the training items instead (``fit_closed_form``): the same files but
``model.pt``, ``history.csv`` with one row, and ``metrics.json`` with a ``fit`` block
(what the fit chose and, per stage, counts such as ``music_mean``'s fallback items).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch

from pianoeval.config import dump_yaml
from pianoeval.data import fold_has_test, leakage_warnings
from pianoeval.data.labels import label_dimensions
from pianoeval.errors import ConfigError, TrialDiverged
from pianoeval.experiment import ExperimentConfig, monitor_mode
from pianoeval.io import atomic_write, atomic_write_parquet, atomic_write_text
from pianoeval.models.registry import get_model
from pianoeval.paths import results_root
from pianoeval.provenance import changed_inputs, input_record, provenance
from pianoeval.train import hardware
from pianoeval.train.data import build_datamodule, labelled_items
from pianoeval.train.module import PerformanceModule, stage_metrics


@dataclass
class RunResult:
    out_dir: Path
    status: str  # "completed" | "diverged" | "stopped" (evaluated after an interrupted training)
    metrics: dict[str, float] = field(default_factory=dict)
    best_epoch: int | None = None
    epochs_run: int = 0
    wall_seconds: float = 0.0
    error: str | None = None
    fit: dict = field(default_factory=dict)  # closed-form fits: what the fit chose, per-stage counts
    warnings: list[str] = field(default_factory=list)  # e.g. piece leakage let through on purpose


class History(L.Callback):
    """Records every epoch's logged scalars.

    ``on_train_epoch_end`` runs after the epoch's validation, so it sees the epoch's
    training loss, validation metrics and diagnostics together."""

    def __init__(self, path: Path | None = None, rows: list[dict] | None = None):
        self.path = path
        self.rows: list[dict] = list(rows or [])
        self._started = time.time() - (self.rows[-1]["seconds"] if self.rows else 0.0)

    def on_train_epoch_end(self, trainer, pl_module):
        row = {"epoch": trainer.current_epoch + 1, "seconds": time.time() - self._started}  # epochs count from 1
        row.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        if self.path is not None:  # written every epoch, so an interrupted run keeps its curve
            atomic_write_text(self.path, pd.DataFrame(self.rows).to_csv(index=False))


class EpochLine(L.Callback):
    """One line per epoch: losses, headline metrics, the collapse diagnostic, time."""

    def __init__(self, max_epochs: int, print_fn=print):
        self.max_epochs = max_epochs
        self.print = print_fn
        self._t = time.time()

    def on_train_epoch_end(self, trainer, pl_module):
        m = {k: float(v) for k, v in trainer.callback_metrics.items()}
        self.print(
            f"epoch {trainer.current_epoch + 1:3d}/{self.max_epochs}  train_loss {m.get('train/loss', math.nan):.4f}  "
            f"val_loss {m.get('val/loss', math.nan):.4f}  val_r2 {m.get('val/r2', math.nan):+.3f}  "
            f"val_pairwise {m.get('val/pairwise_acc', math.nan):.3f}  pred/target_std {m.get('val/pred_std_ratio', math.nan):.2f}  "
            f"{time.time() - self._t:.1f}s"
        )
        self._t = time.time()


def default_run_dir(config: ExperimentConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    split = Path(config.data.split).stem  # a folds file by its name, never its path
    return results_root() / "runs" / f"{stamp}-{config.model_name}-{split}{config.data.fold}-s{config.seed}"


def _set_threads(threads: int | None) -> int:
    if threads:
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
    return torch.get_num_threads()


def evaluate_weights(config: ExperimentConfig, module: PerformanceModule, datamodule, stages=("val", "test")):
    """Evaluate ``module`` (eval mode) on the given stages: (metrics, predictions frame)."""
    module.eval()
    metrics, frames = {}, []
    loaders = {"val": datamodule.val_dataloader, "test": datamodule.test_dataloader}
    with torch.no_grad():
        for stage in stages:
            for batch in loaders[stage]():
                module._collect(stage, batch)
            values, raw = module.stage_results(stage)
            metrics.update({f"{stage}/{k}": v for k, v in values.items()})
            frames.append(prediction_frame(stage, raw["segment_id"], raw["group"], raw["prediction"], raw["label"],
                                           module.label_names))
    return metrics, pd.concat(frames, ignore_index=True)


def prediction_frame(stage: str, segment_ids, groups, predictions: np.ndarray, labels: np.ndarray,
                     dimension_names) -> pd.DataFrame:
    """One stage's rows of ``predictions.parquet``, a pred/ and a label/ column per dimension."""
    frame = pd.DataFrame({"stage": stage, "segment_id": list(segment_ids), "group": groups})
    for j, name in enumerate(dimension_names):
        frame[f"pred/{name}"] = predictions[:, j]
        frame[f"label/{name}"] = labels[:, j]
    return frame


def load_weights(module: PerformanceModule, path: Path) -> None:
    """Load a ``model.pt`` (or a Lightning checkpoint) safely: ``weights_only=True``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in state:  # a Lightning checkpoint: keys of the LightningModule ("model.*")
        module.load_state_dict(state["state_dict"])
    else:  # model.pt: the registered model's own state dict
        module.model.load_state_dict(state)


def train_run(
    config: ExperimentConfig,
    out_dir: Path | None = None,
    threads: int | None = None,
    progress: bool = False,
    verbose: bool = True,
    callbacks: list | tuple = (),
    resume_from: Path | None = None,
    evaluate_test: bool = True,
) -> RunResult:
    """Train ``config`` and evaluate its best checkpoint; see the module docstring.

    ``evaluate_test=False`` evaluates the best checkpoint on validation only (sweeps
    select on validation and never look at the test set)."""
    device = hardware.resolve_device(config.train)  # bad settings fail here, before any work
    settings = hardware.trainer_settings(config.train, device, say=print if verbose else None)
    out_dir = Path(out_dir) if out_dir is not None else default_run_dir(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    threads = _set_threads(threads)
    evaluate_test = evaluate_test and fold_has_test(config.data.split, config.data.fold)
    if get_model(config.model_name).fit == "closed_form":
        return fit_closed_form(config, out_dir, threads, evaluate_test)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)  # GPU/TPU banners and tips
    started = time.time()
    L.seed_everything(config.seed, workers=True, verbose=False)
    datamodule = build_datamodule(config)
    datamodule.setup()
    module = PerformanceModule(config, datamodule.input_dim, steps_per_epoch=datamodule.steps_per_epoch())
    warnings = _warnings(config, verbose)
    if resume_from is not None:  # before resolved.yaml is rewritten: it holds the inputs read so far
        warnings += _changed_input_warnings(out_dir / "resolved.yaml", config, verbose)
    train = config.train
    history_path = out_dir / "history.csv"
    earlier = []
    if resume_from is not None and history_path.is_file():
        earlier = pd.read_csv(history_path).to_dict("records")
    history = History(history_path, earlier)
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=out_dir / "checkpoints", filename="best", monitor=train.monitor, mode=monitor_mode(train.monitor),
        save_top_k=1, enable_version_counter=False)
    # every epoch's state, for --resume (Lightning's save_last only follows the best checkpoint)
    last = L.pytorch.callbacks.ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="last", monitor=None,
                                               save_top_k=1, enable_version_counter=False)
    cbs = [history, checkpoint, last, *callbacks]
    if verbose:
        cbs.append(EpochLine(train.max_epochs))
    if train.early_stopping_patience:
        cbs.append(L.pytorch.callbacks.EarlyStopping(train.monitor, patience=train.early_stopping_patience,
                                                     mode=monitor_mode(train.monitor), check_finite=False))
    trainer = L.Trainer(
        **settings, max_epochs=train.max_epochs, gradient_clip_val=train.grad_clip,
        logger=False, enable_progress_bar=progress, enable_model_summary=False,
        num_sanity_val_steps=0, callbacks=cbs, limit_train_batches=train.limit_train_batches,
    )
    # written once the Trainer has set torch's flags, so that it records what took effect
    compute = hardware.compute_provenance(train, device)
    dump_yaml({**config.to_dict(), "provenance": {**provenance(device, threads, input_record(config)),
                                                  "compute": compute}},
              out_dir / "resolved.yaml")
    status, error = "completed", None
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    except TrialDiverged as err:
        status, error = "diverged", str(err)
        if verbose:
            print(f"[train] {err}")
    except SystemExit:
        if trainer.interrupted:  # Lightning turns Ctrl-C (and SIGTERM, which run_cli makes one) into exit(1)
            raise KeyboardInterrupt from None
        raise
    result = RunResult(out_dir, status, epochs_run=len(history.rows), error=error, warnings=warnings)
    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
    if best is not None and best.is_file():
        _evaluate_best(config, module, datamodule, best, result, evaluate_test)
    result.wall_seconds = time.time() - started
    _write_summary(result, threads, device)
    return result


def _changed_input_warnings(resolved: Path, config: ExperimentConfig, verbose: bool) -> list[str]:
    """The lines of input files that changed since the interrupted run recorded them: printed
    (when verbose) and kept in ``metrics.json``'s warnings, since the run now mixes both versions."""
    lines = changed_inputs(resolved, [config])
    if verbose:
        for line in lines:
            print(f"[train] {line}")
    return lines


def _warnings(config: ExperimentConfig, verbose: bool) -> list[str]:
    data = config.data
    lines = leakage_warnings(data.labels, data.split, data.pieces, data.allow_piece_leakage, data.fold)
    if not fold_has_test(data.split, data.fold):
        lines.append(f"{data.split}: fold {data.fold} has no test list: the best checkpoint is evaluated on "
                     "validation only (no test/* metrics)")
    if verbose:
        for line in lines:
            print(f"[train] {line}")
    return lines


def _evaluate_best(config, module, datamodule, best: Path, result: RunResult, evaluate_test: bool) -> None:
    """Load the best checkpoint, save it as ``model.pt``, evaluate it; fills ``result``."""
    load_weights(module, best)
    # Lightning's checkpoint stores the 0-based epoch; epochs count from 1 everywhere else
    result.best_epoch = int(torch.load(best, map_location="cpu", weights_only=True)["epoch"]) + 1
    atomic_write(result.out_dir / "model.pt", lambda tmp: torch.save(module.model.state_dict(), tmp))
    stages = ("val", "test") if evaluate_test else ("val",)
    result.metrics, predictions = evaluate_weights(config, module, datamodule, stages)
    atomic_write_parquet(predictions, result.out_dir / "predictions.parquet")


def fit_closed_form(config: ExperimentConfig, out_dir: Path, threads: int, evaluate_test: bool = True) -> RunResult:
    """Fit a closed-form predictor on the fold's training items and evaluate it on validation
    (and test): the run files of ``train_run``, counted as one epoch."""
    started = time.time()
    datamodule = build_datamodule(config)
    datamodule.setup()
    dump_yaml({**config.to_dict(), "provenance": provenance("cpu", threads, input_record(config))},
              out_dir / "resolved.yaml")
    names = label_dimensions(config.data.labels)
    predictor = get_model(config.model_name).build(config.model_spec(), datamodule.input_dim, len(names))
    result = RunResult(out_dir, "completed", best_epoch=1, epochs_run=1, warnings=_warnings(config, verbose=False))
    result.fit = {"train_items": len(labelled_items(datamodule, "train"))}
    result.fit.update(predictor.fit(labelled_items(datamodule, "train")))
    frames = []
    for stage in ("val", "test") if evaluate_test else ("val",):
        items = labelled_items(datamodule, stage)
        predictions, counts = predictor.predict(items)
        values = stage_metrics(items.labels, predictions, items.group, items.label_std, names)
        result.metrics.update({f"{stage}/{k}": v for k, v in values.items()})
        result.fit.update({f"{stage}/{k}": v for k, v in counts.items()})
        frames.append(prediction_frame(stage, items.segment_ids, items.group, predictions, items.labels, names))
    atomic_write_parquet(pd.concat(frames, ignore_index=True), out_dir / "predictions.parquet")
    result.wall_seconds = time.time() - started
    row = {"epoch": 1, "seconds": result.wall_seconds, **{k: v for k, v in result.metrics.items() if k.startswith("val/")}}
    atomic_write_text(out_dir / "history.csv", pd.DataFrame([row]).to_csv(index=False))
    _write_summary(result, threads, "cpu")
    return result


def _write_summary(result: RunResult, threads: int, device: str) -> None:
    warnings = {"warnings": result.warnings} if result.warnings else {}
    summary = {"status": result.status, "error": result.error, **warnings, "best_epoch": result.best_epoch,
               "epochs_run": result.epochs_run, "wall_seconds": result.wall_seconds, "threads": threads,
               "device": device, **({"fit": result.fit} if result.fit else {}), **result.metrics}
    atomic_write_text(result.out_dir / "metrics.json", json.dumps(summary, indent=1, default=_json_default))


def read_checkpoint(path: Path, fix: str) -> dict:
    """A Lightning checkpoint loaded with ``weights_only=True``; one that cannot be read (cut short
    by a kill while it was written, a failed copy) is a one-line ConfigError naming it and ``fix``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch's RuntimeError (zip archive), UnpicklingError, EOFError, ...
        reason = str(err).strip().splitlines()[0].split(". ")[0][:120] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{path}: not a readable checkpoint, truncated or corrupted ({reason}); {fix}") from None


def evaluate_stopped_run(config: ExperimentConfig, out_dir: Path, threads: int | None = None) -> RunResult:
    """Evaluate the best checkpoint of a run whose training was stopped before it finished
    (killed, or out of time): ``model.pt``, ``predictions.parquet`` and ``metrics.json``
    with status ``stopped``, as a finished run would have written them."""
    out_dir = Path(out_dir)
    best = out_dir / "checkpoints" / "best.ckpt"
    if not best.is_file():
        raise ConfigError(f"{best}: no best checkpoint to evaluate; train first")
    best_epoch = read_checkpoint(best, "train again with another --out")["epoch"]  # before any data loads
    threads = _set_threads(threads)
    started = time.time()
    datamodule = build_datamodule(config)
    datamodule.setup()
    module = PerformanceModule(config, datamodule.input_dim, steps_per_epoch=datamodule.steps_per_epoch())
    history = out_dir / "history.csv"
    epochs_run = int(pd.read_csv(history)["epoch"].max()) if history.is_file() else 0
    last = out_dir / "checkpoints" / "last.ckpt"
    warnings = _warnings(config, verbose=False)
    try:  # the last completed epoch, even when history.csv predates --resume
        epochs_run = max(epochs_run, best_epoch + 1, int(read_checkpoint(last, "")["epoch"]) + 1)
    except FileNotFoundError:
        epochs_run = max(epochs_run, best_epoch + 1)
    except ConfigError as err:  # killed while it was written: the best checkpoint is still the one to evaluate
        epochs_run = max(epochs_run, best_epoch + 1)
        warnings.append(f"WARNING: {str(err).rstrip('; ')}: epochs_run counted from history.csv")
    result = RunResult(out_dir, "stopped", epochs_run=epochs_run, warnings=warnings)
    _evaluate_best(config, module, datamodule, best, result, evaluate_test=True)
    result.wall_seconds = time.time() - started
    _write_summary(result, threads, "cpu")
    return result


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(type(value).__name__)


def final_table(metrics: dict[str, float], warnings: list[str] = ()) -> str:
    """Per-dimension R2 and pairwise accuracy on validation and test (test only when the run
    was scored on it), as a text table (the dimensions are the run's label set, in label
    order), then any warning lines."""
    stages = ("val", "test") if "test/r2" in metrics else ("val",)
    columns = [(f"{stage}/{metric}", f"{stage}_{short}", width) for metric, short, width in
               (("r2", "r2", 8), ("pairwise_acc", "pair", 9)) for stage in stages]

    def row(label: str, suffix: str) -> str:
        return f"{label:44s} " + " ".join(f"{metrics.get(key + suffix, math.nan):{w}.3f}" for key, _, w in columns)

    lines = [f"{'dimension':44s} " + " ".join(f"{title:>{w}s}" for _, title, w in columns)]
    lines += [row(name, f"/{name}") for name in [k.removeprefix("val/r2/") for k in metrics if k.startswith("val/r2/")]]
    lines.append(row("mean", ""))
    lines += list(warnings)
    return "\n".join(lines)
