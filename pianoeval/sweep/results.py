"""The results a sweep leaves behind, written atomically into its run directory.

* ``trials.parquet``: one row per trial: the common columns of every trials table
  (``pianoeval.sweep.rows``: trial id, fold, seed, status and error, epochs run, best
  epoch, wall time, CPU- and GPU-seconds, node, git commit, trial directory), then
  ``config/<key>`` for every sampled parameter, the ASHA rung a pruned trial stopped at,
  ``best/<metric>`` (the objective's best epoch and the recorded metrics at that epoch)
  and ``final/<key>`` for every scalar reported at the last epoch (metrics, diagnostics,
  gradient norms). A cross-validated trial (``budget.folds``) has instead ``fold<k>/<metric>``
  for each finished fold, ``best/<metric>`` the mean over them and ``sd/<metric>``,
  ``folds_done``, ``pruned_after`` (epoch: ASHA in its first fold; fold: fold pruning); its
  ``epochs_run`` counts all its folds and its ``fold`` is empty.
* ``best.yaml``: the best trial's resolved config, ready to run
  (``python runners/train.py --config best.yaml``) or to be an ablation's base.
* ``summary.md``: the top-k trials as a table, the reference baselines beside them (from
  ``references.parquet``, see ``pianoeval.sweep.references``), how many were pruned /
  failed, the hyper-parameter importance (PED-ANOVA; plot ``importance.png``) and, after
  ``--confirm``, the confirmation table.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from pianoeval.config import dump_yaml
from pianoeval.sweep.crossval import FOLDS_DONE, fold_key, fold_values, last_fold_done, mean_and_sd
from pianoeval.sweep.rows import STATUS_ORDER, RunContext, best_epoch_row, rows_frame, text, trial_row
from pianoeval.sweep.space import Categorical, IntRange
from pianoeval.data import leakage_warnings
from pianoeval.io import atomic_write_parquet, atomic_write_text
from pianoeval.provenance import git_commit
from pianoeval.sweep.references import listed_references, read_references, reference_table

def trial_rows(results, space, run_meta: dict[str, Any], run_dir: Path | None = None) -> pd.DataFrame:
    """Rows of ``trials.parquet`` from Tune ``ResultGrid``s (one, or a list: a run and its
    extensions): the common columns of ``pianoeval.sweep.rows``, then the sweep's own;
    ``trial_dir`` relative to ``run_dir`` when given."""
    grids = results if isinstance(results, (list, tuple)) else [results]
    context = RunContext(cpu=space.resources.cpu, gpu=space.resources.gpu,
                         git_commit=run_meta.get("git_commit") or git_commit(), run_dir=run_dir,
                         metric=space.metric, mode=space.mode, max_epochs=space.budget.max_epochs)
    rows = []
    for result in (r for grid in grids for r in grid):
        config = result.config or {}
        fold = (None if space.cross_validated else space.folds[0] if space.budget.folds
                else int(config.get("data.fold", space.base.data.fold)))
        row = trial_row(result, context, fold=fold, seed=int(config.get("seed", space.base.seed)))
        row.update(_cv_columns(result, space, row) if space.cross_validated else _columns(result, space, row))
        row.update({f"config/{k}": v for k, v in config.items()})
        rows.append(row)
    frame = rows_frame(rows)
    if not frame.empty:
        complete = frame["status"].eq("completed")
        frame = (frame.assign(_complete=complete)
                 .sort_values(["_complete", f"best/{space.metric}"], ascending=[False, space.mode == "min"],
                              na_position="last")
                 .drop(columns="_complete"))
    return frame.reset_index(drop=True)


def _columns(result, space, row: dict[str, Any]) -> dict[str, Any]:
    """A single-fold trial: the ASHA rung it stopped at, its best epoch's values and its last
    epoch's scalars."""
    history, last = result.metrics_dataframe, result.metrics or {}
    columns: dict[str, Any] = {
        "pruned_at_rung": row["epochs_run"] if row["status"] == "pruned" else None,  # the rung, as its epoch
    }
    best = best_epoch_row(history, space.metric, space.mode)
    for key in (space.metric, *space.record):
        columns[f"best/{key}"] = float(best[key]) if best is not None and key in best else math.nan
    for key, value in last.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and "/" in key:
            columns[f"final/{key}"] = float(value)
    return columns


TEST_FOLD_KEY = re.compile(r"^fold\d+/test/")  # a fold's test metric, e.g. fold2/test/r2


def _cv_columns(result, space, row: dict[str, Any]) -> dict[str, Any]:
    """A cross-validated trial: each finished fold's value (its best epoch), the mean and sd
    over the finished folds (``best/<metric>``: the mean), and how far it got."""
    history, last = result.metrics_dataframe, result.metrics or {}
    folds = space.folds
    final = last_fold_done(history)
    done = int(final[FOLDS_DONE]) if final is not None else 0
    pruned = row["status"] == "pruned"
    columns: dict[str, Any] = {
        "folds_done": done,
        "pruned_after": ("fold" if done else "epoch") if pruned else None,
        "pruned_at_rung": None if done or not pruned else int(last.get("epoch", 0) or 0),
    }
    for key in (space.metric, *space.record):
        values = fold_values(final, key, folds) if final is not None else {}
        for k in folds:
            columns[f"{fold_key(k, key)}"] = values.get(k, math.nan)
        mean, sd = mean_and_sd(list(values.values()))
        columns[f"best/{key}"], columns[f"sd/{key}"] = mean, sd
    if final is not None:
        for key, value in final.items():  # with --evaluate-test: recorded, never used to select or prune
            if key.startswith("cv/test/") or TEST_FOLD_KEY.match(key):
                if isinstance(value, (int, float)):
                    columns[key] = float(value)
    elif history is not None and space.metric in history:  # stopped in its first fold: its best epoch there
        first = best_epoch_row(history, space.metric, space.mode)
        columns["first_fold/" + space.metric] = float(first[space.metric]) if first is not None else math.nan
    return columns


def best_config(space, frame: pd.DataFrame) -> dict[str, Any] | None:
    """The resolved config of the best trial (``best_trial``)."""
    top = best_trial(frame, space.metric, space.cross_validated)
    if top is None:
        return None
    config = sampled_config(space, top).to_dict()
    config["provenance"] = {
        "sweep": space.name, "trial_id": text(top["trial_id"]), "objective": space.metric,
        "value": float(top[f"best/{space.metric}"]), "git_commit": text(top["git_commit"]),
        **({"folds": list(space.folds), "value_is": f"mean over folds {list(space.folds)}",
            "sd": float(top[f"sd/{space.metric}"])} if space.cross_validated else
           {"best_epoch": int(top["best_epoch"])}),
    }
    return config


def best_trial(frame: pd.DataFrame, metric: str, cross_validated: bool) -> pd.Series | None:
    """The best trial (``frame`` is best first) that has a value for the objective; in a
    cross-validated sweep the best over every fold, a trial pruned early never."""
    column = f"best/{metric}"
    ranked = frame.dropna(subset=[column]) if column in frame else frame.iloc[:0]
    if cross_validated:
        ranked = ranked[ranked["status"] == "completed"]
    return None if ranked.empty else ranked.iloc[0]


def sampled_config(space, row: pd.Series):
    """A trial's resolved config: the space's base with the trial's sampled values."""
    sampled = {k[len("config/"):]: _plain(v) for k, v in row.items() if k.startswith("config/") and not _missing(v)}
    return space.base.with_overrides(sampled, f"<trial {text(row['trial_id']) or '?'}>", keep_model=space.fixed_model)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def sweep_warnings(space) -> list[str]:
    """Warning lines of the sweep's data (a folds file whose piece leakage is allowed)."""
    data = space.base.data
    return leakage_warnings(data.labels, data.split, data.pieces, data.allow_piece_leakage, data.fold)


def summary_markdown(space, frame: pd.DataFrame, run_dir: Path, top_k: int = 10,
                     importance: pd.DataFrame | None = None, confirmation: pd.DataFrame | None = None,
                     references: pd.DataFrame | None = None) -> str:
    counts = frame["status"].value_counts().to_dict() if not frame.empty else {}
    params = [c for c in frame.columns if c.startswith("config/")]
    metrics = [f"best/{space.metric}", *[f"best/{m}" for m in space.record if m != space.metric]]
    cv = space.cross_validated
    folds = (f"; {len(space.folds)} folds per trial {list(space.folds)} (the objective is the mean over a trial's "
             f"finished folds; fold pruning "
             + (f"at a gap of {space.budget.fold_max_gap:g}" if space.budget.fold_max_gap is not None else "off")
             + ")") if cv else ""
    lines = [
        f"# Sweep `{space.name}`: {run_dir.name}",
        "",
        *[f"**{line}**" for line in sweep_warnings(space)],
        f"{len(frame)} trials: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUS_ORDER) + ".",
        f"Objective: {space.mode} `{space.metric}`; sampler {space.sampler.name} (seed {space.sampler.seed}); "
        f"ASHA over epochs (max {space.budget.max_epochs}, grace {space.budget.grace_period}, "
        f"reduction factor {space.budget.reduction_factor:g}){folds}; {space.resources.cpu:g} CPU"
        + (f" + {space.resources.gpu:g} GPU" if space.resources.gpu else "") + " per trial.",
        f"CPU-hours: {frame['cpu_seconds'].sum() / 3600:.2f}" + (
            f", GPU-hours: {frame['gpu_seconds'].sum() / 3600:.2f}" if space.resources.gpu else "")
        + (f"; {int(frame['epochs_run'].sum())} fold-epochs trained" if cv else "") if not frame.empty else "",
        "",
        f"## Top {min(top_k, len(frame))}",
        "",
    ]
    if cv:
        fold_cols = [fold_key(k, space.metric) for k in space.folds]
        head = (["rank", "trial", "status", "folds", "fold-epochs", f"{space.metric} mean", "sd"]
                + [f"fold {k}" for k in space.folds] + [f"{m.split('/', 1)[1]} mean" for m in metrics[1:]]
                + ["CPU-h"] + [p[len("config/"):] for p in params])
    else:
        fold_cols = []
        head = (["rank", "trial", "status", "epochs"] + [m.split("/", 1)[1] for m in metrics]
                + [p[len("config/"):] for p in params])
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rank, (_, row) in enumerate(frame.head(top_k).iterrows(), start=1):
        cells = [str(rank), text(row["trial_id"]) or "", text(row["status"]) or ""]
        if cv:
            cells += [f"{int(row['folds_done'])}/{len(space.folds)}", str(int(row["epochs_run"])),
                      _num(row.get(metrics[0])), _num(row.get(f"sd/{space.metric}"))]
            cells += [_num(row.get(c)) for c in fold_cols] + [_num(row.get(m)) for m in metrics[1:]]
            cells += [f"{row['cpu_seconds'] / 3600:.3f}"]
        else:
            cells += [str(row["epochs_run"])] + [_num(row.get(m)) for m in metrics]
        cells += ["" if _missing(row.get(p)) else _fmt(row[p]) for p in params]
        lines.append("| " + " | ".join(cells) + " |")
    if references is not None and len(references):
        lines += ["", *references_markdown(references, space, frame)]
    failed = frame[frame["status"].isin(["error", "diverged"])] if not frame.empty else frame
    if len(failed):
        lines += ["", "## Failed trials", ""]
        lines += [f"- `{text(r.trial_id) or '?'}` ({r.status}): {text(r.error) or 'no error recorded'}"
                  for r in failed.itertuples()]
    if importance is not None:
        lines += ["", *importance_markdown(importance, space)]
    if confirmation is not None and len(confirmation):
        lines += ["", *confirmation_markdown(confirmation, space)]
    lines += ["", "Files: `trials.parquet` (every trial, every metric), `best.yaml` (rerun with "
              "`python runners/train.py --config best.yaml`), `sweep.yaml` (the resolved space)"
              + (", `importance.png`" if importance is not None and len(importance) else "")
              + (", `references.parquet` and `references/` (the reference baselines' rows and run folders)"
                 if references is not None and len(references) else "")
              + (", `confirm/` (the confirmation runs and their comparison.md)" if confirmation is not None else "")
              + ".", ""]
    return "\n".join(lines)


def references_markdown(references: pd.DataFrame, space, frame: pd.DataFrame) -> list[str]:
    """The reference baselines' table (``reference_table``) and how to read it."""
    best = best_trial(frame, space.metric, space.cross_validated)
    table = reference_table(references, space.metric, space.mode, space.record, space.folds,
                            None if best is None else float(best[f"best/{space.metric}"]))
    stages = "validation and test" if references.columns.str.startswith("test/").any() else "validation"
    by_fold = " fold by fold" if space.cross_validated else ""
    lines = ["## Reference baselines", "",
             f"Closed-form predictors fitted on the trials' training data{by_fold} and evaluated on {stages}; "
             "never trials (not in `trials.parquet`, never the best config). "
             f"`best trial ahead by`: the best trial's `{space.metric}` minus the reference's"
             + ("" if space.mode == "max" else " with the sign flipped (lower is better)")
             + "; positive: the trial is better. The trial's value is its search score, the best of many on the "
             "same validation data, so it is optimistic.", "",
             "| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(_num(v) if isinstance(v, float) else str(v) for v in row) + " |")
    return lines


def _num(value) -> str:
    return "" if _missing(value) else f"{float(value):.4f}"


def importance_markdown(importance: pd.DataFrame, space) -> list[str]:
    lines = ["## Hyper-parameter importance", ""]
    if importance.empty:
        return lines + [importance.attrs.get("why", "not computed"), ""]
    lines += [f"PED-ANOVA (Optuna) over the {importance.attrs.get('trials', '?')} trials that finished"
              f"{' every fold' if space.cross_validated else ''}, on `{space.metric}`: the share of the objective's "
              "spread among the best trials each parameter accounts for (higher matters more). Plot: `importance.png`.",
              "", "| parameter | importance |", "|---|---|"]
    lines += [f"| {r.parameter} | {r.importance:.3f} |" for r in importance.itertuples()]
    return lines


def confirmation_markdown(confirmation: pd.DataFrame, space) -> list[str]:
    """The top configs retrained on every fold with a fresh seed, beside their search scores:
    the optimism of picking the best of many on the same validation data, as a number."""
    metric = space.metric
    lines = ["## Confirmation (top configs retrained on every fold, fresh seed)", "",
             f"Search score: the trial's `{metric}` in the search; confirmed: the mean over every fold of the retrained "
             "config (fresh seed), with its sd; optimism = search - confirmed. The best config (`best.yaml`) is the "
             "one the confirmation ranks first.", "",
             f"| confirmed rank | trial | search rank | search {metric} | confirmed {metric} | sd | optimism | "
             f"confirmed {metric.replace('val/', 'test/', 1)} | folds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for rank, row in enumerate(confirmation.itertuples(), start=1):
        lines.append(f"| {rank} | {text(row.trial_id) or '?'} | {row.search_rank} | {row.search:.4f} | "
                     f"{row.confirmed:.4f} | {row.confirmed_sd:.4f} | {row.search - row.confirmed:+.4f} | "
                     f"{_num(row.confirmed_test)} | {row.folds} |")
    return lines


def parameter_importance(space, frame: pd.DataFrame) -> pd.DataFrame:
    """PED-ANOVA importance of each sampled parameter on the objective, over the trials that
    finished (every fold, in a cross-validated sweep); empty with the reason in ``attrs``."""
    import optuna  # lazy: only when a sweep's results are written

    done = frame[frame["status"] == "completed"].dropna(subset=[f"best/{space.metric}"])
    result = pd.DataFrame(columns=["parameter", "importance"])
    distributions = {p.key: _optuna_distribution(p.distribution) for p in space.parameters}
    varied = [k for k in distributions if f"config/{k}" in done and done[f"config/{k}"].nunique(dropna=True) > 1]
    if len(done) < 4 or not varied:
        result.attrs["why"] = (f"Not computed: it needs at least 4 finished trials and a parameter that varies "
                               f"({len(done)} finished, {len(varied)} varied parameters).")
        return result
    study = optuna.create_study(direction="maximize" if space.mode == "max" else "minimize")
    for _, row in done.iterrows():
        params = {k: _plain(row[f"config/{k}"]) for k in distributions
                  if f"config/{k}" in row and not _missing(row[f"config/{k}"])}
        study.add_trial(optuna.trial.create_trial(params=params, value=float(row[f"best/{space.metric}"]),
                                                  distributions={k: distributions[k] for k in params}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PED-ANOVA is experimental in Optuna; its warning says only that
        scores = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), normalize=True)
    result = pd.DataFrame({"parameter": list(scores), "importance": [float(v) for v in scores.values()]})
    result.attrs["trials"] = len(done)
    return result


def _optuna_distribution(distribution):
    import optuna  # lazy: see parameter_importance

    if isinstance(distribution, Categorical):
        return optuna.distributions.CategoricalDistribution(list(distribution.values))
    if isinstance(distribution, IntRange):
        return optuna.distributions.IntDistribution(distribution.low, distribution.high, log=distribution.log,
                                                    step=distribution.step)
    return optuna.distributions.FloatDistribution(distribution.low, distribution.high, log=distribution.log)


def importance_figure(importance: pd.DataFrame, space, path: Path) -> None:
    """A horizontal bar per parameter, most important on top."""
    import matplotlib  # lazy: plotting only when a sweep's results are written

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = importance.sort_values("importance")
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(ordered) + 1.2))
    ax.barh(ordered["parameter"], ordered["importance"], color="#4c72b0")
    ax.set_xlabel(f"importance on {space.metric} (PED-ANOVA, normalised)")
    ax.set_title(f"{space.name}: hyper-parameter importance ({importance.attrs.get('trials', '?')} trials)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def write_results(space, results, run_dir: Path, run_meta: dict[str, Any],
                  confirmation: pd.DataFrame | None = None) -> pd.DataFrame:
    frame = trial_rows(results, space, run_meta, run_dir)
    atomic_write_parquet(frame, run_dir / "trials.parquet")
    best = best_config(space, frame)
    if best is not None:
        dump_yaml(best, run_dir / "best.yaml")
    write_summary(space, frame, run_dir, confirmation)
    return frame


def write_summary(space, frame: pd.DataFrame, run_dir: Path, confirmation: pd.DataFrame | None = None) -> None:
    """``summary.md`` (and ``importance.png``) from the trials table and, when the run has one,
    ``references.parquet``."""
    importance = parameter_importance(space, frame) if space.parameters and not frame.empty else None
    if importance is not None and len(importance):
        importance_figure(importance, space, run_dir / "importance.png")
    atomic_write_text(run_dir / "summary.md", summary_markdown(space, frame, run_dir, importance=importance,
                                                               confirmation=confirmation,
                                                               references=listed_references(
                                                                   read_references(run_dir),
                                                                   space.reference_baselines)))
