"""The report of a sweep run: learning curves, ASHA rung survival, objective vs each
sampled parameter and vs cost, the top trials and the status counts.

    >>> from pianoeval.report import load_sweep, plot_learning_curves, top_trials
    >>> run = load_sweep("results/sweeps/smoke/20261122-042832")
    >>> plot_learning_curves(run)          # a matplotlib Figure
    >>> top_trials(run, k=5)               # a DataFrame

Everything is read from the run directory (see ``pianoeval.sweep.results``):
``trials.parquet``, ``sweep.yaml``, each trial's ``progress.csv`` and ``references.parquet``
(the reference baselines). A sweep run from before reference baselines has no
``references.parquet``: ``sweep_report`` fits them then (seconds), into the run folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pianoeval.config import load_yaml
from pianoeval.data import DEFAULT_LABELS, leakage_warnings
from pianoeval.errors import ConfigError, PianoevalError
from pianoeval.experiment import DEFAULT_REFERENCES, ExperimentConfig, reference_configs
from pianoeval.io import RESUME_FIX, read_table
from pianoeval.report.figures import STATUS_COLOURS, Document, cost_scale, message_figure, metric_label, new_figure
from pianoeval.report.runs import read_history, run_kind, trial_folder
from pianoeval.sweep.references import (REFERENCES_FILE, fit_references, listed_references, read_references,
                                        reference_table)
from pianoeval.sweep.results import STATUS_ORDER, best_trial
from pianoeval.sweep.rows import text


@dataclass
class SweepRun:
    run_dir: Path
    trials: pd.DataFrame  # trials.parquet, best trial first
    space: dict  # sweep.yaml: the resolved space
    histories: dict[str, pd.DataFrame]  # trial_id -> per-epoch scalars, ``epoch`` from 1
    notes: list[str] = field(default_factory=list)  # what could not be read, one line each
    references: pd.DataFrame | None = None  # references.parquet; None: the run has none

    @property
    def name(self) -> str:
        return self.space.get("space", self.run_dir.parent.name)

    @property
    def metric(self) -> str:
        return self.space["metric"]

    @property
    def mode(self) -> str:
        return self.space["mode"]

    @property
    def objective(self) -> str:
        """The trials.parquet column of the objective at each trial's best epoch."""
        return f"best/{self.metric}"

    @property
    def folds(self) -> list[int]:
        """The folds a trial was judged on (an older sweep.yaml without them: the base config's fold)."""
        return list(self.space.get("folds") or [self.space["base"]["data"]["fold"]])

    @property
    def reference_baselines(self) -> list[str]:
        """The references the run lists (a run from before the key: the default ones)."""
        return list(self.space.get("reference_baselines", DEFAULT_REFERENCES))

    @property
    def max_epochs(self) -> int:
        return int(self.space["budget"]["max_epochs"])

    @property
    def rungs(self) -> list[int]:
        budget = self.space["budget"]
        return asha_rungs(self.max_epochs, int(budget["grace_period"]), float(budget["reduction_factor"]))

    @property
    def parameters(self) -> list[str]:
        """Sampled config keys, in the space's order (then any extra ``config/`` column)."""
        declared = list(self.space.get("parameters") or {})
        present = [c[len("config/"):] for c in self.trials.columns if c.startswith("config/")]
        return [p for p in declared if p in present] + [p for p in present if p not in declared]

    def ranked(self) -> pd.DataFrame:
        """Trials with an objective value, best first (trials without one are left out)."""
        return self.trials.dropna(subset=[self.objective]).sort_values(
            self.objective, ascending=self.mode == "min", kind="stable")

    def is_log_scale(self, parameter: str) -> bool:
        return bool((self.space.get("parameters") or {}).get(parameter, {}).get("log", False))


def asha_rungs(max_epochs: int, grace_period: int, reduction_factor: float) -> list[int]:
    """The epochs at which ASHA may stop a trial (before ``max_epochs``).

    Ray's ASHA places milestones at ``grace * rf**k`` for ``k < int(log(max/grace) /
    log(rf) + 1)`` and decides at the first reported epoch >= a milestone."""
    count = int(math.log(max_epochs / grace_period) / math.log(reduction_factor) + 1)
    epochs = {math.ceil(grace_period * reduction_factor ** k - 1e-9) for k in range(count)}
    return sorted(e for e in epochs if e < max_epochs)


def load_sweep(run_dir: str | Path) -> SweepRun:
    """Read a finished sweep's trials, resolved space and every trial's epoch history."""
    run_dir = Path(run_dir)
    if run_kind(run_dir) != "sweep":
        raise ConfigError(f"{run_dir}: not a sweep run (no sweep.yaml); for ablations use the ablation report")
    space = load_yaml(run_dir / "sweep.yaml")
    trials = read_table(run_dir / "trials.parquet", RESUME_FIX,
                        columns=("trial_id", "status", "trial_dir"))
    run = SweepRun(run_dir, trials, space, {})
    run.references = listed_references(read_references(run_dir), run.reference_baselines)
    for row in trials.itertuples(index=False):
        trial = f"trial {text(row.trial_id) or '?'} ({text(row.status) or 'no status'})"
        history, source = read_history(trial_folder(row.trial_dir, run_dir), prefer="progress")
        if history is None:
            run.notes.append(f"{trial}: no epoch history ({source})")
        elif run.metric not in history:
            run.notes.append(f"{trial}: {source} has no column {run.metric}")
        elif text(row.trial_id) is None:  # its curve could not be told apart from another's
            run.notes.append(f"{trial}: no trial id recorded, its curve not drawn")
        else:
            run.histories[row.trial_id] = history
    return run


# --------------------------------------------------------------------------- tables


def status_counts(run: SweepRun) -> pd.DataFrame:
    """Trials per status (completed, pruned, diverged, error) with their share."""
    counts = run.trials["status"].value_counts()
    statuses = list(STATUS_ORDER) + [s for s in counts.index if s not in STATUS_ORDER]
    frame = pd.DataFrame({"status": statuses, "trials": [int(counts.get(s, 0)) for s in statuses]})
    frame["share"] = frame["trials"] / max(1, len(run.trials))
    return frame


def top_trials(run: SweepRun, k: int = 10) -> pd.DataFrame:
    """The ``k`` best trials by the objective: status, epochs, recorded metrics, parameters, cost."""
    record = [run.objective] + [f"best/{m}" for m in run.space.get("record", []) if m != run.metric]
    columns = {"trial_id": "trial", "status": "status", "epochs_run": "epochs", "best_epoch": "best epoch"}
    columns.update({c: c[len("best/"):] for c in record if c in run.trials})
    columns.update({f"config/{p}": p for p in run.parameters})
    columns["cpu_seconds"] = "CPU-s"
    frame = run.ranked().head(k)[list(columns)].rename(columns=columns)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame.reset_index(drop=True)


def references_summary(run: SweepRun) -> pd.DataFrame:
    """The reference baselines beside the best trial (``reference_table``); empty without references."""
    if run.references is None or run.references.empty:
        return pd.DataFrame()
    best = best_trial(run.trials, run.metric, len(run.folds) > 1)
    return reference_table(run.references, run.metric, run.mode, run.space.get("record", []), run.folds,
                           None if best is None else float(best[run.objective]))


def fit_missing_references(run: SweepRun, say=print) -> None:
    """An older sweep run without ``references.parquet``: fit the reference baselines it lists
    (the default ones) now, on its folds, validation only, into the run folder (seconds), so
    the run is brought up to date; one line says so. What cannot be fitted is a note."""
    names = run.reference_baselines
    if run.references is not None or not names:
        return
    say(f"[report] {run.run_dir.name}: no {REFERENCES_FILE} (a sweep from before reference baselines): fitting "
        f"{', '.join(names)} on {_folds_text(run.folds)} now (validation only, seconds) into "
        f"{run.run_dir / 'references'}")
    source = str(run.run_dir / "sweep.yaml")
    try:
        references = reference_configs(names, ExperimentConfig.resolve(run.space["base"], source), source)
        run.references = fit_references(references, run.folds, run.run_dir, metric=run.metric, mode=run.mode,
                                        evaluate_test=False, say=lambda line: None)  # a failure: its row says why
    except (PianoevalError, OSError) as err:
        run.notes.append(f"reference baselines not fitted: {err}")
        return
    failed = run.references[run.references["status"] != "completed"]
    run.notes += [f"reference {r.model}/fold{r.fold} failed: {text(r.error) or 'no error recorded'}"
                  for r in failed.itertuples()]


def _folds_text(folds: list[int]) -> str:
    return ("folds " if len(folds) > 1 else "fold ") + ", ".join(map(str, folds))


# --------------------------------------------------------------------------- figures


def _status_legend(ax, statuses, counts, extra=(), **kw) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=STATUS_COLOURS.get(s, "k"), marker="o", ls="", label=f"{s} ({counts[s]})")
               for s in statuses]
    ax.legend(handles=handles + list(extra), title="trial status", fontsize=8, title_fontsize=8, **kw)


def plot_learning_curves(run: SweepRun, metric: str | None = None):
    """The objective (or ``metric``) per epoch, one line per trial, coloured by status.

    Pruned trials end at the ASHA rung that stopped them (a cross), and the rungs are
    dotted lines; the best trial is drawn thicker."""
    metric = metric or run.metric
    title = f"Learning curves: {metric} per trial ({run.name})"
    if not run.histories:
        return message_figure(title, "No trial has a readable epoch history (progress.csv).")
    fig, ax = new_figure(8.0, 4.8)
    ranked = run.ranked()
    best_id = ranked["trial_id"].iloc[0] if len(ranked) else None
    statuses = run.trials.set_index("trial_id")["status"]
    for trial_id, history in run.histories.items():
        if metric not in history:
            continue
        status = statuses[trial_id]
        colour = STATUS_COLOURS.get(status, "k")
        best = trial_id == best_id
        ax.plot(history["epoch"], history[metric], color=colour, lw=2.6 if best else 1.2,
                alpha=1.0 if best else 0.75, marker="." if len(history) < 30 else None, zorder=3 if best else 2)
        end = history.iloc[-1]
        ax.plot(end["epoch"], end[metric], marker="x" if status != "completed" else "o", ms=8, mew=2,
                color=colour, zorder=4)
        if best:
            ax.annotate(f"best: {trial_id}", (end["epoch"], end[metric]), xytext=(-8, 6),
                        textcoords="offset points", fontsize=8, ha="right")  # inside the axes
    for rung in run.rungs:
        ax.axvline(rung, color="0.5", ls=":", lw=1)
    ax.set_xlim(0.8, run.max_epochs + 0.2)
    ax.set_xticks(_epoch_ticks(run.max_epochs))
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric_label(metric))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    extra = [Line2D([], [], color="0.3", marker="x", ls="", mew=2, label="stopped early"),
             Line2D([], [], color="0.5", ls=":", label="ASHA rung")]
    counts = run.trials["status"].value_counts()
    _status_legend(ax, [s for s in STATUS_ORDER if counts.get(s, 0)], counts, extra, loc="best")
    return fig


def _epoch_ticks(max_epochs: int) -> list[int]:
    step = max(1, math.ceil(max_epochs / 12))
    return list(range(1, max_epochs + 1, step))


def rung_survival(run: SweepRun) -> pd.DataFrame:
    """Trials still training at each epoch, split by how they ended (one row per epoch)."""
    epochs = np.arange(1, run.max_epochs + 1)
    frame = pd.DataFrame({"epoch": epochs})
    for status in STATUS_ORDER:
        ran = run.trials.loc[run.trials["status"] == status, "epochs_run"].fillna(0).to_numpy()
        frame[status] = [(ran >= e).sum() for e in epochs]
    frame["alive"] = frame[list(STATUS_ORDER)].sum(axis=1)
    return frame


def plot_rung_survival(run: SweepRun):
    """ASHA rung survival: how many trials train at each epoch, and at each rung how many go on."""
    survival = rung_survival(run)
    fig, ax = new_figure(8.0, 4.2)
    bottom = np.zeros(len(survival))
    for status in STATUS_ORDER:
        if survival[status].any():
            ax.bar(survival["epoch"], survival[status], bottom=bottom, color=STATUS_COLOURS[status],
                   label=f"ends {status}", width=0.8)
            bottom += survival[status].to_numpy()
    for epoch, alive in zip(survival["epoch"], survival["alive"]):
        ax.text(epoch, alive, str(alive), ha="center", va="bottom", fontsize=8)
    alive = dict(zip(survival["epoch"], survival["alive"]))
    for i, rung in enumerate(run.rungs):
        ax.axvline(rung + 0.5, color="0.3", ls=":", lw=1.2, label="ASHA rung" if i == 0 else None)
        ax.annotate(f"rung at epoch {rung}:\n{alive.get(rung + 1, 0)} of {alive.get(rung, 0)} go on",
                    (rung + 0.5, 1.0), xycoords=("data", "axes fraction"), xytext=(4, -4),
                    textcoords="offset points", fontsize=8, va="top")
    ax.set_xticks(_epoch_ticks(run.max_epochs))
    ax.set_xlabel("epoch")
    ax.set_ylabel("trials training this epoch")
    ax.set_ylim(0, max(1, survival["alive"].max()) * 1.25)
    budget = run.space["budget"]
    ax.set_title(f"ASHA rung survival ({run.name}): grace {budget['grace_period']}, "
                 f"reduction factor {budget['reduction_factor']:g}, max {run.max_epochs} epochs")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_objective_vs_parameters(run: SweepRun):
    """The objective at each trial's best epoch against each sampled parameter.

    Log-scale parameters get a log x axis; categorical ones are spread over their values."""
    params = run.parameters
    title = f"{run.objective} vs sampled parameters ({run.name})"
    if not params:
        return message_figure(title, "The sweep samples no parameter.")
    cols = min(3, len(params))
    rows = math.ceil(len(params) / cols)
    fig, axes = new_figure(4.0 * cols, 3.4 * rows, nrows=rows, ncols=cols, squeeze=False)
    rng = np.random.default_rng(0)  # jitter of categorical points, fixed so reports are reproducible
    for ax, param in zip(axes.flat, params):
        frame = run.trials[[f"config/{param}", run.objective, "status"]].dropna()
        values = frame[f"config/{param}"]
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        categorical = not numeric or _declared_categorical(run, param)
        if categorical:
            levels = list(dict.fromkeys(sorted(values.map(str))))
            x = values.map(str).map(levels.index).to_numpy(float) + rng.uniform(-0.12, 0.12, len(values))
            ax.set_xticks(range(len(levels)), levels)
        else:
            x = values.to_numpy(float)
            if run.is_log_scale(param):
                _log_axis(ax)
        ax.scatter(x, frame[run.objective], c=[STATUS_COLOURS.get(s, "k") for s in frame["status"]],
                   s=28, edgecolors="white", linewidths=0.5)
        ax.set_xlabel(param + (" (log scale)" if run.is_log_scale(param) else ""))
        ax.set_ylabel(metric_label(run.objective[len("best/"):]) if ax in axes[:, 0] else "")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(params):]:
        ax.set_axis_off()
    counts = run.trials["status"].value_counts()
    _status_legend(axes.flat[0], [s for s in STATUS_ORDER if counts.get(s, 0)], counts, loc="best")
    fig.suptitle(title + "; pruned trials stopped early")
    return fig


def _log_axis(ax) -> None:
    """A log x axis labelled at 1, 2, 5 x 10^k in plain numbers (no crowded minor labels)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _declared_categorical(run: SweepRun, param: str) -> bool:
    return (run.space.get("parameters") or {}).get(param, {}).get("distribution") == "Categorical"


def plot_objective_vs_cost(run: SweepRun):
    """The objective against each trial's CPU time, with the cost-efficient front."""
    frame = run.ranked().dropna(subset=["cpu_seconds"])
    title = f"{run.objective} vs cost ({run.name})"
    if frame.empty:
        return message_figure(title, "No trial has both an objective value and a recorded cost.")
    divisor, unit = cost_scale(frame["cpu_seconds"].max())
    fig, ax = new_figure(7.0, 4.4)
    cost = frame["cpu_seconds"] / divisor
    ax.scatter(cost, frame[run.objective], c=[STATUS_COLOURS.get(s, "k") for s in frame["status"]], s=36,
               edgecolors="white", linewidths=0.5, zorder=3)
    ordered = frame.assign(cost=cost).sort_values("cost")
    running = ordered[run.objective].cummax() if run.mode == "max" else ordered[run.objective].cummin()
    ax.step(ordered["cost"], running, where="post", color="0.4", lw=1, ls="--", label="best so far at this cost")
    best = frame.iloc[0]
    ax.annotate(f"best: {text(best['trial_id']) or '?'}", (best["cpu_seconds"] / divisor, best[run.objective]),
                xytext=(6, 6), textcoords="offset points", fontsize=8)
    ax.set_xlabel(f"{unit} per trial (wall time × CPUs)")
    ax.set_ylabel(metric_label(run.objective[len("best/"):]))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    counts = frame["status"].value_counts()
    _status_legend(ax, [s for s in STATUS_ORDER if counts.get(s, 0)], counts, loc="best")
    return fig


# --------------------------------------------------------------------------- report


def sweep_overview(run: SweepRun) -> str:
    """A few Markdown lines: objective, sampler, budget, trial counts, cost."""
    budget, counts = run.space["budget"], run.trials["status"].value_counts()
    sampler = run.space.get("sampler", {})
    model = run.space.get("base", {}).get("model", {}).get("name")
    cpu_h, gpu_h = run.trials["cpu_seconds"].sum() / 3600, run.trials["gpu_seconds"].sum() / 3600
    commit = (text(run.trials["git_commit"].iloc[0]) if len(run.trials) else None) or "?"
    return "\n".join([
        f"Run `{run.run_dir}`: {len(run.trials)} trials of `{model}`"
        f" ({', '.join(f'{counts.get(s, 0)} {s}' for s in STATUS_ORDER)}).",
        f"Objective: {run.mode} `{run.metric}`; sampler {sampler.get('name')} (seed {sampler.get('seed')}); "
        f"ASHA over epochs (max {budget['max_epochs']}, grace {budget['grace_period']}, reduction factor "
        f"{budget['reduction_factor']:g}; rungs at epochs {run.rungs or 'none'}).",
        f"Cost: {cpu_h:.3f} CPU-hours" + (f", {gpu_h:.3f} GPU-hours" if gpu_h else "") + f"; git {commit}.",
        *[f"**{line}**" for line in _data_warnings(run.space.get("base", {}).get("data") or {})],
    ])


def _data_warnings(data: dict) -> list[str]:
    """The sweep's piece-leakage warning lines (its folds file re-read; when it is gone, the setting)."""
    if not data.get("allow_piece_leakage"):
        return []
    try:
        return leakage_warnings(data.get("labels", DEFAULT_LABELS), data["split"], data.get("pieces"), True,
                                data.get("fold", 0))
    except PianoevalError as err:
        return [f"WARNING data.allow_piece_leakage is true for {data.get('split')} (not re-checked: {err})"]


def sweep_report(run_dir: str | Path, out_dir: str | Path | None = None, top_k: int = 10,
                 say=print) -> tuple[Path, list[str]]:
    """Write ``report.md`` + ``figures/`` for a sweep; return (report path, warnings). A run
    without ``references.parquet`` gets its reference baselines fitted first (``say``: one line)."""
    run = load_sweep(run_dir)
    fit_missing_references(run, say)
    doc = Document(Path(out_dir) if out_dir is not None else run.run_dir, f"Sweep `{run.name}`: {run.run_dir.name}")
    doc.text(sweep_overview(run))
    doc.text("## Trials by status")
    doc.table(status_counts(run), digits=2)
    doc.text(f"## Top {top_k} trials", f"By `{run.objective}` (the objective at each trial's best epoch).")
    doc.table(top_trials(run, top_k))
    references = references_summary(run)
    if len(references):
        doc.text("## Reference baselines",
                 f"Closed-form predictors fitted on the trials' training data ({_folds_text(run.folds)}); never "
                 f"trials. `best trial ahead by`: the best trial's `{run.metric}` minus the reference's"
                 + ("" if run.mode == "max" else " with the sign flipped")
                 + "; positive: the trial is better (its value is its search score, so optimistic). Run folders: "
                 "`references/<name>/fold<k>/`; every metric: `references.parquet`.")
        doc.table(references)
    failed = run.trials[run.trials["status"].isin(["error", "diverged"])]
    if len(failed):
        doc.text("## Failed trials", *[f"- `{text(r.trial_id) or '?'}` ({r.status}): "
                                        f"{text(r.error) or 'no error recorded'}" for r in failed.itertuples()])
    doc.text("## Figures")
    doc.figure(plot_learning_curves(run), "learning_curves",
               f"{run.metric} per epoch for every trial, coloured by status; crosses mark where pruned or failed "
               "trials stopped, dotted lines the ASHA rungs.")
    doc.figure(plot_rung_survival(run), "rung_survival",
               "Trials still training at each epoch (stacked by how they ended) and how many pass each rung.")
    doc.figure(plot_objective_vs_parameters(run), "objective_vs_parameters",
               f"{run.objective} against each sampled parameter (log x axis for log-scale parameters).")
    doc.figure(plot_objective_vs_cost(run), "objective_vs_cost",
               f"{run.objective} against the CPU time each trial used; the dashed line is the best value "
               "reachable within a given cost.")
    if run.notes:
        doc.text("## Not shown", *[f"- {note}" for note in run.notes])
    doc.text("Source: `trials.parquet`, `sweep.yaml`, each trial's `progress.csv`"
             + (", `references.parquet`" if run.references is not None else "") + "; the best config is "
             "`best.yaml`; made by `python runners/report.py " + str(run.run_dir) + "`.")
    return doc.write(), run.notes
