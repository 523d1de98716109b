"""The results a sweep leaves behind, written atomically into its run directory.

* ``trials.parquet``: one row per trial: ``config/<key>`` for every sampled
  parameter, status (completed / pruned / error / diverged) and error message,
  epochs run, the ASHA rung a pruned trial stopped at, ``best/<metric>`` (the
  objective's best epoch and the recorded metrics at that epoch), ``final/<key>``
  for every scalar reported at the last epoch (metrics, diagnostics, gradient
  norms), wall time, CPU- and GPU-seconds, seed, git commit, trial directory.
* ``best.yaml``: the best trial's resolved config, ready to run
  (``python runners/train.py --config best.yaml``) or to be an ablation's base.
* ``summary.md``: the top-k trials as a table, and how many were pruned / failed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from pianoeval.config import dump_yaml
from pianoeval.data import leakage_warnings
from pianoeval.io import atomic_write_parquet, atomic_write_text
from pianoeval.provenance import git_commit

STATUS_ORDER = ("completed", "pruned", "diverged", "error")


def trial_status(error: str | None, epochs_run: int, max_epochs: int, early_stopped: bool,
                 closed_form: bool = False) -> str:
    if error:
        return "diverged" if "TrialDiverged" in error else "error"
    if epochs_run < max_epochs and not early_stopped and not closed_form:  # a closed-form fit is one step
        return "pruned"
    return "completed"


def _best_row(history: pd.DataFrame, metric: str, mode: str) -> pd.Series | None:
    if history is None or history.empty or metric not in history:
        return None
    values = history[metric].astype(float)
    if values.isna().all():
        return None
    index = values.idxmax() if mode == "max" else values.idxmin()
    return history.loc[index]


def trial_rows(results, space, run_meta: dict[str, Any]) -> pd.DataFrame:
    """Rows of ``trials.parquet`` from a Tune ``ResultGrid``."""
    rows = []
    max_epochs = space.budget.max_epochs
    for result in results:
        history = result.metrics_dataframe
        last = result.metrics or {}
        error = None if result.error is None else f"{type(result.error).__name__}: {str(result.error).strip().splitlines()[-1][:500]}"
        epochs = int(last.get("training_iteration", 0) or 0)
        status = trial_status(error, epochs, max_epochs, bool(last.get("early_stopped", 0)),
                              bool(last.get("closed_form", 0)))
        row: dict[str, Any] = {
            "trial_id": Path(result.path).name.removeprefix("trial_"),
            "status": status,
            "error": error,
            "epochs_run": epochs,
            "pruned_at_rung": epochs if status == "pruned" else None,  # the rung, as its epoch milestone
        }
        row.update({f"config/{k}": v for k, v in (result.config or {}).items()})
        best = _best_row(history, space.metric, space.mode)
        row["best_epoch"] = int(best["training_iteration"]) if best is not None else None
        for key in (space.metric, *space.record):
            row[f"best/{key}"] = float(best[key]) if best is not None and key in best else math.nan
        for key, value in last.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and "/" in key:
                row[f"final/{key}"] = float(value)
        wall = float(last.get("time_total_s", 0.0) or 0.0)
        row["wall_seconds"] = wall
        row["cpu_seconds"] = wall * space.resources.cpu
        row["gpu_seconds"] = wall * space.resources.gpu
        row["seed"] = int((result.config or {}).get("seed", space.base.seed))
        row["node_id"] = last.get("node_id")
        row["git_commit"] = run_meta.get("git_commit", git_commit())
        row["trial_dir"] = Path(result.path).name  # relative to the run folder
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(f"best/{space.metric}", ascending=space.mode == "min", na_position="last")
    return frame.reset_index(drop=True)


def best_config(space, frame: pd.DataFrame) -> dict[str, Any] | None:
    """The resolved config of the best trial that has a value for the objective."""
    ranked = frame.dropna(subset=[f"best/{space.metric}"])
    if ranked.empty:
        return None
    top = ranked.iloc[0]
    sampled = {k[len("config/"):]: _plain(v) for k, v in top.items() if k.startswith("config/") and not _missing(v)}
    config = space.base.with_overrides(sampled, "<best trial>").to_dict()
    config["provenance"] = {
        "sweep": space.name, "trial_id": top["trial_id"], "objective": space.metric,
        "value": float(top[f"best/{space.metric}"]), "best_epoch": int(top["best_epoch"]),
        "git_commit": top["git_commit"],
    }
    return config


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def sweep_warnings(space) -> list[str]:
    """Warning lines of the sweep's data (a folds file whose piece leakage is allowed)."""
    data = space.base.data
    return leakage_warnings(data.labels, data.split, data.pieces, data.allow_piece_leakage, data.fold)


def summary_markdown(space, frame: pd.DataFrame, run_dir: Path, top_k: int = 10) -> str:
    counts = frame["status"].value_counts().to_dict() if not frame.empty else {}
    params = [c for c in frame.columns if c.startswith("config/")]
    metrics = [f"best/{space.metric}", *[f"best/{m}" for m in space.record if m != space.metric]]
    lines = [
        f"# Sweep `{space.name}`: {run_dir.name}",
        "",
        *[f"**{line}**" for line in sweep_warnings(space)],
        f"{len(frame)} trials: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUS_ORDER) + ".",
        f"Objective: {space.mode} `{space.metric}`; sampler {space.sampler.name} (seed {space.sampler.seed}); "
        f"ASHA over epochs (max {space.budget.max_epochs}, grace {space.budget.grace_period}, "
        f"reduction factor {space.budget.reduction_factor:g}); {space.resources.cpu:g} CPU"
        + (f" + {space.resources.gpu:g} GPU" if space.resources.gpu else "") + " per trial.",
        f"CPU-hours: {frame['cpu_seconds'].sum() / 3600:.2f}" + (
            f", GPU-hours: {frame['gpu_seconds'].sum() / 3600:.2f}" if space.resources.gpu else "") if not frame.empty else "",
        "",
        f"## Top {min(top_k, len(frame))}",
        "",
        "| rank | trial | status | epochs | " + " | ".join(m.split("/", 1)[1] for m in metrics) + " | "
        + " | ".join(p[len("config/"):] for p in params) + " |",
        "|" + "---|" * (4 + len(metrics) + len(params)),
    ]
    for rank, (_, row) in enumerate(frame.head(top_k).iterrows(), start=1):
        cells = [str(rank), str(row["trial_id"]), row["status"], str(row["epochs_run"])]
        cells += ["" if _missing(row.get(m)) else f"{row[m]:.4f}" for m in metrics]
        cells += ["" if _missing(row.get(p)) else _fmt(row[p]) for p in params]
        lines.append("| " + " | ".join(cells) + " |")
    failed = frame[frame["status"].isin(["error", "diverged"])] if not frame.empty else frame
    if len(failed):
        lines += ["", "## Failed trials", ""]
        lines += [f"- `{r.trial_id}` ({r.status}): {r.error}" for r in failed.itertuples()]
    lines += ["", "Files: `trials.parquet` (every trial, every metric), `best.yaml` (rerun with "
              "`python runners/train.py --config best.yaml`), `sweep.yaml` (the resolved space).", ""]
    return "\n".join(lines)


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def write_results(space, results, run_dir: Path, run_meta: dict[str, Any]) -> pd.DataFrame:
    frame = trial_rows(results, space, run_meta)
    atomic_write_parquet(frame, run_dir / "trials.parquet")
    best = best_config(space, frame)
    if best is not None:
        dump_yaml(best, run_dir / "best.yaml")
    atomic_write_text(run_dir / "summary.md", summary_markdown(space, frame, run_dir))
    return frame
