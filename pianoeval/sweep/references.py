"""Reference baselines of a sweep: closed-form predictors fitted beside its trials.

After a sweep's trials finish (a new run, a ``--resume`` of a finished one, an extension),
``fit_references`` fits each of the space's ``reference_baselines`` (by default
``global_mean``, the training mean, and ``music_mean``, the mean of the other performances
of the same excerpt) on each fold the space judges (``space.folds``), in this process on
one CPU, seconds each. It evaluates them on validation only, like the trials (with
``--evaluate-test`` on test too), and writes:

* ``<run>/references/<name>/fold<k>/``: a normal run folder (``resolved.yaml``,
  ``metrics.json``, ``predictions.parquet``, ``history.csv``); a finished one is read
  back, never fitted again;
* ``<run>/references.parquet``: one row per reference x fold: the common columns of
  ``pianoeval.sweep.rows``, then ``model`` (the reference's name), ``reference`` (True),
  its ``val/*`` (and ``test/*``) metrics and its ``fit/*`` counts.

They are never trials: ``trials.parquet``, ``best.yaml``, the importance and the
confirmation do not see them; ``summary.md`` shows them in a table of their own. A
reference that fails is one line and an ``error`` row, and the sweep's results are written
all the same. The ablation engine fits its references with ``fit_reference`` too.
``reference_table`` is the summary's and the report's table of them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from pianoeval.experiment import ExperimentConfig
from pianoeval.io import atomic_write_parquet, read_table
from pianoeval.models.registry import get_model, list_models
from pianoeval.provenance import git_commit
from pianoeval.sweep.crossval import mean_and_sd
from pianoeval.sweep.rows import RunContext, failure_summary, rows_frame, text, trial_row

REFERENCES_DIR = "references"
REFERENCES_FILE = "references.parquet"
REFIT_FIX = ("delete it; `python runners/report.py <run>` fits the references again "
             "(a finished fit in references/ is read back)")


def fit_reference(config: ExperimentConfig, out_dir: Path, evaluate_test: bool = True) -> tuple[dict[str, Any], bool]:
    """A reference baseline's run summary (its ``metrics.json``) in ``out_dir``, and whether it
    was fitted now: a finished fit found there (with test metrics when ``evaluate_test``) is
    read back; otherwise ``config`` is fitted (closed form, in this process, one thread).
    Raises what the fit raises."""
    # lazy: torch and Lightning load only when a reference is fitted (summaries and reports read the tables)
    from pianoeval.train.run import train_run

    summary = _read_summary(out_dir / "metrics.json")
    if summary.get("status") == "completed" and (not evaluate_test or any(k.startswith("test/") for k in summary)):
        return summary, False
    train_run(config, out_dir=out_dir, threads=1, verbose=False, evaluate_test=evaluate_test)
    return _read_summary(out_dir / "metrics.json"), True


def _read_summary(path: Path) -> dict[str, Any]:
    """A run's ``metrics.json``; empty when there is none or it cannot be read (then the fit is redone)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # missing, or cut short / not JSON (ValueError covers both decoders)
        return {}


def fit_references(references: dict[str, ExperimentConfig], folds: tuple[int, ...] | list[int], run_dir: Path, *,
                   metric: str, mode: str, evaluate_test: bool, say=print) -> pd.DataFrame:
    """Fit (or read back) each reference on each fold into ``<run_dir>/references/<name>/fold<k>/``
    and write ``<run_dir>/references.parquet``; returns its rows (see the module docstring).
    ``metric``: the sweep's objective, printed for each new fit."""
    context = RunContext(cpu=1, gpu=0, git_commit=git_commit(), run_dir=run_dir, metric=metric, mode=mode,
                         max_epochs=1)
    stages = ("val/", "test/") if evaluate_test else ("val/",)
    rows, read_back = [], 0
    for name, config in references.items():
        for fold in folds:
            out_dir = run_dir / REFERENCES_DIR / name / f"fold{fold}"
            try:
                fold_config = config.with_overrides({"data.fold": fold}, f"reference_baselines: {name}")
                summary, fitted = fit_reference(fold_config, out_dir, evaluate_test)
            except Exception as err:  # one line, not raised: the sweep's own results must still be written
                summary = failure_summary(err)
                say(f"[sweep] reference {name}/fold{fold} failed and is left out: {summary['error']}")
                rows.append(_row(name, config.seed, fold, summary, context, stages))
                continue
            if fitted:
                say(f"[sweep] reference {name}/fold{fold}: {metric}={summary.get(metric, math.nan):.4f}")
            read_back += not fitted
            rows.append(_row(name, config.seed, fold, summary, context, stages, trial_dir=out_dir))
    if read_back:
        say(f"[sweep] reference baselines: {read_back} finished fits read back from {run_dir / REFERENCES_DIR}")
    frame = rows_frame(rows)
    atomic_write_parquet(frame, run_dir / REFERENCES_FILE)
    return frame


def fit_space_references(space, run_dir: Path, evaluate_test: bool, say=print) -> pd.DataFrame | None:
    """A finished sweep's reference baselines (``space.references()`` on ``space.folds``);
    None, and nothing written, when the space lists none (``reference_baselines: []``)."""
    references = space.references()
    if not references:
        return None
    return fit_references(references, space.folds, run_dir, metric=space.metric, mode=space.mode,
                          evaluate_test=evaluate_test, say=say)


def _row(name: str, seed: int, fold: int, summary: dict[str, Any], context: RunContext, stages: tuple[str, ...],
         trial_dir: Path | None = None) -> dict[str, Any]:
    """A reference's row: the common columns, its name, and the metrics of the stages this
    sweep evaluates (a fit read back from a run with ``--evaluate-test`` has test metrics too)."""
    row = trial_row({"status": "error", **summary}, context, fold=fold, seed=seed, trial_dir=trial_dir)
    row.update({"model": name, "reference": True})
    if row["status"] == "completed":
        row.update({k: v for k, v in summary.items() if k.startswith(stages)})
        row.update({f"fit/{k}": v for k, v in (summary.get("fit") or {}).items()
                    if k.startswith(stages) or not k.startswith(("val/", "test/"))})
    return row


def reference_table(references: pd.DataFrame, metric: str, mode: str, record: list[str] | tuple[str, ...],
                    folds: list[int] | tuple[int, ...], best: float | None) -> pd.DataFrame:
    """One row per reference baseline of ``references.parquet``: what it predicts, its status,
    the objective and the recorded metrics (over several folds: the mean over its completed
    folds, with the objective's sd and per-fold values, as in the top-trials table) and how far
    the ``best`` trial's objective is ahead of it (positive: the trial is better)."""
    cv = len(folds) > 1
    rows = []
    for name, group in references.groupby("model", sort=False):
        done = group[group["status"] == "completed"]
        failed = len(group) - len(done)
        status = ("completed" if not failed else f"{failed} of {len(group)} folds failed" if cv
                  else f"{text(group['status'].iloc[0])}: {text(group['error'].iloc[0]) or 'no error recorded'}")
        row: dict[str, Any] = {"reference": name, "predicts": _predicts(str(name)), "status": status}
        mean, sd = mean_and_sd(_values(done, metric))
        if cv:
            row.update({f"{metric} mean": mean, "sd": sd})
            by_fold = done.set_index("fold")[metric] if metric in done else pd.Series(dtype=float)
            row.update({f"fold {k}": float(by_fold[k]) if k in by_fold.index else math.nan for k in folds})
        else:
            row[metric] = mean
        for m in record:
            if m != metric:
                row[f"{m} mean" if cv else m] = mean_and_sd(_values(done, m))[0]
        row["best trial ahead by"] = (math.nan if best is None else best - mean if mode == "max" else mean - best)
        rows.append(row)
    return pd.DataFrame(rows)


def _values(rows: pd.DataFrame, metric: str) -> list[float]:
    return [float(v) for v in rows[metric].dropna()] if metric in rows else []


def _predicts(name: str) -> str:
    """What a reference predicts, from its registry description (``reference: ...``); empty for
    a name the registry no longer has (an old run's table is still shown)."""
    return get_model(name).description.removeprefix("reference: ") if name in list_models() else ""


def read_references(run_dir: Path) -> pd.DataFrame | None:
    """``references.parquet`` of a run folder, or None when it has none; a file that cannot be
    read is one line saying how to write it again."""
    path = Path(run_dir) / REFERENCES_FILE
    return read_table(path, REFIT_FIX) if path.is_file() else None


def listed_references(references: pd.DataFrame | None, names: list[str] | tuple[str, ...]) -> pd.DataFrame | None:
    """The rows of the references the space lists now (a run resumed with another
    ``reference_baselines``, or ``[]``, keeps its older fits on disk; they are not shown);
    None when none is left."""
    if references is None or "model" not in references:
        return references
    kept = references[references["model"].isin(list(names))]
    return kept if len(kept) else None
