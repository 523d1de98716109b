"""One row per trial: the columns every ``trials.parquet`` shares, sweep or ablation.

A sweep's trials and reference baselines and an ablation's runs (trained, eval-only,
reference) are rows of one schema: the common columns of ``COLUMNS`` (identity, outcome,
compute, provenance), built by ``trial_row`` from what a trial left behind (its Ray Tune
result, or a run summary such as its ``metrics.json``), then the metric and identity
columns of the kind:

* a sweep: ``config/<key>``, ``best/<metric>``, ``final/<key>``, ``pruned_at_rung``; a
  cross-validated trial ``fold<k>/<metric>``, ``sd/<metric>``, ``folds_done``,
  ``pruned_after``, with ``--evaluate-test`` ``fold<k>/test/...`` and ``cv/test/...``
  (``pianoeval.sweep.results``);
* a sweep's reference baselines (``references.parquet``, never in its ``trials.parquet``):
  ``model``, ``reference``, ``val/*`` (with ``--evaluate-test`` ``test/*``), ``fit/*``
  (``pianoeval.sweep.references``);
* an ablation: ``variant``, ``model``, ``eval_only``, ``reference``, ``source_variant``,
  ``warnings``, ``val/*``, ``test/*``, ``fit/*`` (``pianoeval.ablation.runner``).

``rows_frame`` puts the common columns first, with the dtypes of ``COLUMNS``, whatever
kind wrote them. The table in docs/search_spaces.md is this one (a test keeps them equal).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pianoeval.errors import TrialDiverged
from pianoeval.sweep.crossval import FOLD, FOLD_DONE, FOLD_EPOCHS, FOLDS_DONE, FOLDS_TOTAL, last_fold_done

STATUS_ORDER = ("completed", "pruned", "diverged", "error")


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # a pandas dtype: "Int64" is a nullable integer, "str" a string with NaN for missing
    meaning: str


COLUMNS = (
    Column("trial_id", "str", "Ray Tune's id of the trial; empty for a run Tune did not run (an ablation's "
                              "eval-only and reference runs)"),
    Column("fold", "Int64", "the data fold the run trained on and was validated on; empty for a "
                            "cross-validated sweep trial (its folds are its `fold<k>/` columns)"),
    Column("seed", "Int64", "the run's seed"),
    Column("status", "str", "`completed`, `pruned` (stopped by ASHA or fold pruning), `diverged` (non-finite "
                            "loss), `error` (any other failure), `stopped` (evaluated after an interrupted training)"),
    Column("error", "str", "for `diverged` and `error`: the exception's type and the last line of its message"),
    Column("epochs_run", "Int64", "epochs trained, summed over a cross-validated trial's folds (fold-epochs); "
                                  "0 when nothing was trained (eval-only, a run that never started)"),
    Column("best_epoch", "Int64", "the epoch whose checkpoint or objective value the metrics come from; "
                                  "empty when none does (a cross-validated trial, a run without an epoch)"),
    Column("wall_seconds", "float64", "wall-clock time of the trial as Ray Tune counted it (every attempt and "
                                      "fold), or of the run in-process (eval-only, reference)"),
    Column("cpu_seconds", "float64", "`wall_seconds` x the CPUs the trial held"),
    Column("gpu_seconds", "float64", "`wall_seconds` x the GPUs the trial held (0 on a cluster without GPUs)"),
    Column("node_id", "str", "the Ray node of the trial's last result; empty for in-process runs"),
    Column("git_commit", "str", "the commit the run was made with"),
    Column("trial_dir", "str", "the trial's folder, relative to the run folder when inside it; empty when "
                               "nothing ran"),
)
COLUMN_NAMES = tuple(c.name for c in COLUMNS)


@dataclass(frozen=True)
class RunContext:
    """What every row of one sweep or trial set shares: the resources one trial holds, the
    commit, the run folder (trial folders are recorded relative to it), and the objective
    and budget that say a Tune trial's best epoch and whether it was pruned."""

    cpu: float
    gpu: float
    git_commit: str
    run_dir: Path | None
    metric: str
    mode: str  # "max" | "min"
    max_epochs: int


def text(value) -> str | None:
    """A text column's value, or None where the row has none. A missing value of a ``str``
    column reads back from parquet as NaN, and ``bool(nan)`` is True: read a row's text with
    this (or ``present``), never by its truth (``if row.error``, ``row.get("trial_dir") or ...``)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value) or None


def present(value) -> bool:
    """Whether a row has a value in a text column (not None, NaN or empty)."""
    return text(value) is not None


def trial_status(error: BaseException | None, epochs_run: int, max_epochs: int, early_stopped: bool) -> str:
    """completed / pruned / diverged / error; a failure's kind from its exception type (Ray
    re-raises a trial's exception as a subclass of it)."""
    if error is not None:
        return "diverged" if isinstance(error, TrialDiverged) else "error"
    return "pruned" if epochs_run < max_epochs and not early_stopped else "completed"


def error_text(error: BaseException | None) -> str | None:
    if error is None:
        return None
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[-1][:500] if text else ''}"


def failure_summary(error: BaseException) -> dict[str, Any]:
    """The summary of a run that raised ``error`` before it could write its own."""
    return {"status": trial_status(error, 0, 1, False), "error": error_text(error)}


def trial_row(source, context: RunContext, *, fold: int | None, seed: int, trial_id: str | None = None,
              trial_dir: str | Path | None = None) -> dict[str, Any]:
    """The common columns of one trial, from a finished Ray Tune ``Result`` or from a run
    summary (a ``metrics.json``, or a dict with its keys: ``status`` and optionally
    ``error``, ``epochs_run``, ``best_epoch``, ``wall_seconds``, ``node_id``). A Tune
    result gives its own trial id and folder; a summary takes them as arguments."""
    if isinstance(source, Mapping):
        outcome = dict(source)
    else:
        outcome = _tune_outcome(source, context)
        trial_id = tune_trial_id(Path(source.path))
        trial_dir = source.path
    wall = float(outcome.get("wall_seconds") or 0.0)
    return {
        "trial_id": trial_id, "fold": fold, "seed": seed,
        "status": outcome["status"], "error": outcome.get("error"),
        "epochs_run": int(outcome.get("epochs_run") or 0), "best_epoch": _epoch(outcome.get("best_epoch")),
        "wall_seconds": wall, "cpu_seconds": wall * context.cpu, "gpu_seconds": wall * context.gpu,
        "node_id": outcome.get("node_id"), "git_commit": context.git_commit,
        "trial_dir": _relative(trial_dir, context.run_dir),
    }


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a table: the common columns first, in ``COLUMNS``' order and dtypes, then the
    kind's own columns as the rows hold them."""
    frame = pd.DataFrame(rows)
    for column in COLUMNS:
        values = frame[column.name] if column.name in frame else pd.Series([None] * len(frame), dtype=object)
        frame[column.name] = values.astype(column.dtype)
    return frame[[*COLUMN_NAMES, *[c for c in frame.columns if c not in COLUMN_NAMES]]]


def best_epoch_row(history: pd.DataFrame | None, metric: str, mode: str) -> pd.Series | None:
    """The reported result with the best value of ``metric`` (None: no such value)."""
    if history is None or history.empty or metric not in history:
        return None
    values = history[metric].astype(float)
    if values.isna().all():
        return None
    index = values.idxmax() if mode == "max" else values.idxmin()
    return history.loc[index]


def _tune_outcome(result, context: RunContext) -> dict[str, Any]:
    """Status, epochs, best epoch, wall time and node of a trial from its Tune results."""
    last, history = result.metrics or {}, result.metrics_dataframe
    outcome = {"wall_seconds": last.get("time_total_s", 0.0), "node_id": last.get("node_id"),
               "error": error_text(result.error)}
    if result.error is None and (last.get("final_eval") or last.get("closed_form")):
        # the run's own summary, reported after its final evaluation (ablation trials, closed-form fits)
        best = last.get("best_epoch")
        return {**outcome, "status": "completed", "epochs_run": last.get("epochs_run"),
                "best_epoch": best if best is not None and best >= 1 else None}  # -1: the run had none
    if FOLD in last or (history is not None and FOLD in history):
        final = last_fold_done(history)
        done = int(final[FOLDS_DONE]) if final is not None else 0
        finished = final is not None and done == int(final[FOLDS_TOTAL])
        epochs = int(final[FOLD_EPOCHS]) if final is not None else 0
        if not finished and not last.get(FOLD_DONE):  # stopped inside a fold: that fold's epochs count too
            epochs += int(last.get("epoch", 0) or 0)
        status = trial_status(result.error, 0, 1, False) if result.error is not None else (
            "completed" if finished else "pruned")
        return {**outcome, "status": status, "epochs_run": epochs, "best_epoch": None}
    epochs = int(last.get("training_iteration", 0) or 0)
    best = best_epoch_row(history, context.metric, context.mode)
    return {**outcome, "epochs_run": epochs, "best_epoch": best["training_iteration"] if best is not None else None,
            "status": trial_status(result.error, epochs, context.max_epochs, bool(last.get("early_stopped", 0)))}


def tune_trial_id(path: Path) -> str:
    """Tune's trial id from its folder: ``trial_<id>``, or ``trial_<id>-<label>`` in an ablation."""
    return path.name.removeprefix("trial_").split("-", 1)[0]


def _epoch(value) -> int | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def _relative(path: str | Path | None, run_dir: Path | None) -> str | None:
    """A trial folder relative to the run folder (portable when a run is copied); else as it is."""
    if not path:
        return None
    if run_dir is None:
        return str(path)
    try:
        return str(Path(path).resolve().relative_to(Path(run_dir).resolve()))
    except ValueError:
        return str(path)
