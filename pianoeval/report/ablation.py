"""The report of an ablation run: learning curves per variant, the headline metric per
variant with its 95% CI and paired deltas, a per-dimension delta heat map, and metric vs cost.

    >>> from pianoeval.ablation import load_run
    >>> from pianoeval.report import plot_headline, plot_dimension_deltas
    >>> run = load_run("results/ablations/han_incremental/20261122-101500")
    >>> plot_headline(run)                       # mean test/r2 per variant + paired deltas, 95% CIs
    >>> plot_dimension_deltas(run)               # variant x label dimensions vs the baseline

Every number comes from ``pianoeval.ablation.compare.AblationRun`` (``summary``,
``deltas``, ``per_dimension``, ``cost``) and so from ``pianoeval.analysis.stats``;
this module only draws them. Learning curves read each run's ``run/history.csv``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from pianoeval.ablation.compare import USABLE, AblationRun, load_run, reference_notes, run_warnings
from pianoeval.ablation.fusion import fusion_answer, fusion_markdown
from pianoeval.analysis import stats
from pianoeval.errors import ConfigError
from pianoeval.report.figures import (BASELINE_COLOUR, Document, cost_scale, dimension_label, message_figure,
                                      metric_label, new_figure, plural, variant_colours)
from pianoeval.report.runs import read_history, run_kind, trial_folder
from pianoeval.sweep.rows import text


def variant_order(run: AblationRun) -> list[str]:
    """The baseline first, then the variants in the spec's order."""
    listed = [key.split("/")[0] for key in (run.meta.get("trials") or {})]
    present = list(dict.fromkeys(run.trials["variant"]))
    ordered = [run.baseline] + [v for v in dict.fromkeys(listed + present) if v != run.baseline]
    return [v for v in ordered if v in present]


def epoch_metric(metric: str) -> str:
    """The per-epoch counterpart of a metric: test metrics are only computed once, at the end,
    so their learning curve is the validation metric of the same name."""
    return "val/" + metric[len("test/"):] if metric.startswith("test/") else metric


def epoch_histories(run: AblationRun) -> tuple[pd.DataFrame, list[str]]:
    """Every trained run's per-epoch scalars in one long table (``variant, fold, seed, epoch, ...``)
    and one line for each run whose history could not be read.

    Eval-only variants trained nothing and have no curve. A run without ``run/history.csv``
    (failed, pruned, or not synced back from a worker) falls back to Ray's ``progress.csv``,
    and the note says so."""
    frames, notes = [], []
    for row in run.trials.itertuples(index=False):
        if row.eval_only or row.variant in run.references:  # nothing trained, no curve
            continue
        key = f"{row.variant} fold {row.fold} seed {row.seed} ({text(row.status) or 'no status'})"
        history, source = read_history(trial_folder(row.trial_dir, run.run_dir), prefer="history")
        if history is None:
            notes.append(f"{key}: no epoch history ({source})")
            continue
        if not source.endswith("history.csv"):
            notes.append(f"{key}: no run/history.csv, learning curve from {source}")
        frames.append(history.assign(variant=row.variant, fold=row.fold, seed=row.seed, status=row.status))
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), notes


def per_dimension_metric(run: AblationRun, metric: str | None = None) -> str | None:
    """``metric`` (default: the headline) if it has per-dimension columns, else the first metric that does."""
    candidates = [metric] if metric else list(run.metrics)
    for name in candidates:
        if any(c.startswith(f"{name}/") for c in run.trials.columns):
            return name
    return None


# --------------------------------------------------------------------------- figures


def plot_variant_curves(run: AblationRun, metric: str | None = None, histories: pd.DataFrame | None = None):
    """Per variant: the mean over folds x seeds of ``metric`` per epoch (default: the headline's
    validation counterpart) with a band of +-1 s.d., and the training loss beside it."""
    metric = epoch_metric(metric or run.metrics[0])
    if histories is None:
        histories, _ = epoch_histories(run)
    title = f"Learning curves per variant ({run.meta.get('ablation', run.run_dir.parent.name)})"
    if histories.empty or metric not in histories:
        return message_figure(title, f"No trained run has a per-epoch {metric}.")
    panels = [metric] + (["train/loss"] if "train/loss" in histories else [])
    fig, axes = new_figure(6.0 * len(panels), 4.4, ncols=len(panels), squeeze=False)
    order = variant_order(run)
    colours = variant_colours(order, run.baseline)
    for ax, column in zip(axes[0], panels):
        for variant in order:
            rows = histories[histories["variant"] == variant]
            if rows.empty or column not in rows:
                continue
            by_epoch = rows.groupby("epoch")[column]
            mean, std, count = by_epoch.mean(), by_epoch.std(ddof=1), by_epoch.count()
            runs = rows.groupby(["fold", "seed"]).ngroups
            ax.plot(mean.index, mean.to_numpy(), color=colours[variant], marker="o" if len(mean) < 25 else None,
                    ms=4, lw=2.2 if variant == run.baseline else 1.5, label=f"{variant} ({plural(runs, 'run')})")
            band = std.fillna(0.0)
            if runs > 1:  # fainter bands when many variants overlap
                ax.fill_between(mean.index, mean - band, mean + band, color=colours[variant],
                                alpha=0.15 if len(order) <= 4 else 0.08, lw=0)
            if (count < runs).any():  # early-stopped runs end sooner: the mean is over fewer runs there
                ax.plot(mean.index[count < runs], mean[count < runs], ls="", marker="s", ms=3, color=colours[variant])
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric_label(column))
        ax.set_title(column)
        ax.grid(alpha=0.3)
        ax.set_xlim(0.5, histories["epoch"].max() + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][0].legend(fontsize=8, title="variant (baseline dark)", title_fontsize=8)
    fig.suptitle(title + ": mean over folds × seeds, band ± 1 s.d.")
    return fig


def plot_headline(run: AblationRun, metric: str | None = None):
    """Left: the metric's mean per variant with its 95% bootstrap CI. Right: the paired delta
    vs the baseline with its 95% CI; filled markers are significant after Holm correction."""
    metric = metric or run.metrics[0]
    title = f"{metric} per variant ({run.meta.get('ablation', '')})"
    if metric not in run.trials:
        return message_figure(title, f"No run produced {metric}.")
    order = variant_order(run)
    summary = run.summary(metric).set_index("variant").reindex(order)
    deltas = run.deltas(metric).set_index("variant").reindex(order[1:])
    colours = variant_colours(order, run.baseline)
    fig, (left, right) = new_figure(11.0, 1.3 + 0.55 * len(order), ncols=2, sharey=True)
    y = np.arange(len(order))[::-1]
    labels = []
    for yi, variant in zip(y, order):
        row = summary.loc[variant]
        _interval(left, yi, row["mean"], row["ci_low"], row["ci_high"], colours[variant], True, "no finished run")
        failed = f", {int(row['n_failed'])} unfinished" if row["n_failed"] else ""
        reference = ", reference" if variant in run.references else ""
        labels.append(f"{variant}\n(n={int(row['n'])}{failed}{reference})")
    if np.isfinite(summary.loc[run.baseline, "mean"]):
        left.axvline(summary.loc[run.baseline, "mean"], color=BASELINE_COLOUR, ls=":", lw=1)
    left.set_yticks(y, labels, fontsize=8)
    left.set_xlabel(metric_label(metric))
    left.set_title(f"mean {metric}, 95% bootstrap CI over folds × seeds", fontsize=10)
    right.axvline(0.0, color=BASELINE_COLOUR, ls=":", lw=1)
    tests = []
    for yi, variant in zip(y[1:], order[1:]):
        if variant in run.references:
            right.text(0.5, yi, "reference baseline: not compared", transform=right.get_yaxis_transform(),
                       ha="center", va="center", fontsize=8, color="0.4")
            tests.append("")
            continue
        row = deltas.loc[variant]
        _interval(right, yi, row["mean_delta"], row["ci_low"], row["ci_high"], colours[variant],
                  bool(row["significant"]), "no complete pair")
        p = "–" if not np.isfinite(row["p_holm"]) else f"{row['p_holm']:.3f}"
        tests.append(f"{plural(int(row['n']), 'pair')}\np(Holm) {p}")
    if len(order) == 1:
        right.text(0.5, 0.5, "only the baseline: nothing to compare", transform=right.transAxes, ha="center",
                   fontsize=8, color="0.4")
    right.set_xlabel(f"Δ {metric} (variant − {run.baseline})")
    right.set_title(f"paired Δ vs {run.baseline} (same fold and seed)", fontsize=10)
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
        ax.set_ylim(-0.7, len(order) - 0.3)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    tests_axis = right.twinx()  # pairs and p-values as right-hand tick labels, where layout keeps them clear
    tests_axis.set_ylim(right.get_ylim())
    tests_axis.set_yticks(y[1:], tests, fontsize=7)
    fig.suptitle(title + "; filled Δ = significant (Holm, α = 0.05)")
    return fig


def _interval(ax, y: float, value: float, low: float, high: float, colour: str, filled: bool, missing: str) -> None:
    if not np.isfinite(value):
        ax.text(0.5, y, missing, transform=ax.get_yaxis_transform(), ha="center", va="center",
                fontsize=8, color="0.4")
        return
    if np.isfinite(low) and np.isfinite(high):
        ax.errorbar(value, y, xerr=[[value - low], [high - value]], color=colour, capsize=3, lw=1.5, zorder=2)
    ax.plot(value, y, "o", ms=7, color=colour, markerfacecolor=colour if filled else "white", mew=1.5, zorder=3)


def plot_dimension_deltas(run: AblationRun, metric: str | None = None):
    """Heat map of the mean paired delta per dimension vs the baseline (rows: the label
    set's dimensions, columns: variants), diverging colours centred at 0, values written in."""
    metric = per_dimension_metric(run, metric)
    title = "Per-dimension Δ vs baseline"
    if metric is None:
        return message_figure(title, "No metric of this run has per-dimension columns.")
    table = run.per_dimension(metric).reindex([v for v in variant_order(run)
                                               if v != run.baseline and v not in run.references])
    if table.empty or not np.isfinite(table.to_numpy(dtype=float)).any():
        why = ("the run has only the baseline" if table.empty
               else "no variant has a finished run paired with the baseline")
        return message_figure(f"{title} ({metric})", f"Nothing to compare: {why}.")
    values = table.to_numpy(dtype=float).T  # dimensions down, variants across: dimension names read horizontally
    limit = float(np.nanmax(np.abs(values))) or 1e-6
    fig, ax = new_figure(4.8 + 0.9 * values.shape[1], 1.6 + 0.34 * values.shape[0])
    colours = matplotlib.colormaps["RdBu"].with_extremes(bad="0.85")  # grey: no complete pair
    image = ax.imshow(np.ma.masked_invalid(values), cmap=colours, vmin=-limit, vmax=limit, aspect="auto")
    ax.set_yticks(range(len(table.columns)), [dimension_label(d) for d in table.columns], fontsize=8)
    ax.set_xticks(range(len(table.index)), table.index, rotation=30 if len(table.index) > 3 else 0, ha="right"
                  if len(table.index) > 3 else "center", fontsize=8)
    if values.size <= 400:
        for (i, j), value in np.ndenumerate(values):
            text = "–" if not np.isfinite(value) else f"{value:+.3f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if np.isfinite(value) and abs(value) > 0.6 * limit else "black")
    colourbar = fig.colorbar(image, ax=ax, shrink=0.8)
    colourbar.set_label(f"Δ {metric} (variant − {run.baseline}); blue = better" if not metric.endswith(("loss", "mse"))
                        else f"Δ {metric} (variant − {run.baseline})")
    ax.set_title(f"{title} {run.baseline}\nmean paired Δ {metric} per dimension", fontsize=10)
    return fig


def plot_metric_vs_cost(run: AblationRun, metric: str | None = None):
    """Mean metric per variant (95% CI as vertical bars) against the CPU time all its runs used."""
    metric = metric or run.metrics[0]
    title = f"{metric} vs cost per variant"
    if metric not in run.trials:
        return message_figure(title, f"No run produced {metric}.")
    order = variant_order(run)
    table = run.summary(metric).merge(run.cost(), on="variant").set_index("variant").reindex(order)
    table = table[np.isfinite(table["mean"]) & np.isfinite(table["cpu_hours"])]
    if table.empty:
        return message_figure(title, "No variant has both a finished run and a recorded cost.")
    divisor, unit = cost_scale(table["cpu_hours"].max() * 3600.0)
    cost = table["cpu_hours"] * 3600.0 / divisor
    colours = variant_colours(order, run.baseline)
    eval_only = set(run.trials.loc[run.trials["eval_only"].astype(bool), "variant"])
    fig, ax = new_figure(7.5, 4.6)
    for variant, row in table.iterrows():
        x = cost[variant]
        low, high = row["mean"] - row["ci_low"], row["ci_high"] - row["mean"]
        if np.isfinite(low) and np.isfinite(high):
            ax.errorbar(x, row["mean"], yerr=[[low], [high]], color=colours[variant], capsize=3, lw=1.2)
        ax.plot(x, row["mean"], "o", ms=8, color=colours[variant], zorder=3)
        kind = " (eval-only)" if variant in eval_only else " (reference)" if variant in run.references else ""
        ax.annotate(variant + kind, (x, row["mean"]), xytext=(6, 4),
                    textcoords="offset points", fontsize=8)
    ax.set_xlabel(f"{unit}, all runs of the variant (folds × seeds)")
    ax.set_ylabel(metric_label(metric))
    ax.set_title(f"{title}: mean, 95% CI over folds × seeds", fontsize=10)
    ax.margins(x=0.2, y=0.15)
    ax.grid(alpha=0.3)
    return fig


# --------------------------------------------------------------------------- report


def ablation_overview(run: AblationRun) -> str:
    meta, trials = run.meta, run.trials
    counts = trials["status"].value_counts()
    budget = meta.get("budget", {})
    references = trials["variant"].isin(run.references)
    fits = (f" and {plural(int(references.sum()), 'fit')} of {plural(len(run.references), 'reference baseline')}"
            if references.any() else "")
    lines = [
        f"Run `{run.run_dir}`: {plural(trials.loc[~references, 'variant'].nunique(), 'variant')} × folds "
        f"{meta.get('folds')} × seeds {meta.get('seeds')} = {plural(int((~references).sum()), 'run')}{fits} "
        f"({', '.join(f'{n} {s}' for s, n in counts.items())}). "
        f"Baseline: `{run.baseline}`; headline metric `{run.metrics[0]}`.",
        f"Budget: {plural(budget.get('max_epochs', 0), 'epoch')}"
        + (f", early stopping patience {budget['early_stopping_patience']}"
           if budget.get("early_stopping_patience") else "")
        + (f", ASHA grace {budget['asha_grace_period']}" if budget.get("asha_grace_period") else "")
        + f". Cost: {run.cost()['cpu_hours'].sum():.3f} CPU-hours.",
    ]
    eval_only = trials[trials["eval_only"].astype(bool)].drop_duplicates("variant")
    if len(eval_only):
        lines.append("Eval-only variants (the source variant's weights, evaluated differently): "
                     + ", ".join(f"`{r.variant}` ← `{text(r.source_variant) or '?'}`" for r in eval_only.itertuples())
                     + ".")
    lines += [f"**{line}**" for line in run_warnings(trials)]
    return "\n".join(lines)


def add_ablation_sections(doc: Document, run: AblationRun, prefix: str = "", level: int = 2) -> list[str]:
    """Write an ablation's tables and figures into ``doc``; figure names start with ``prefix``.
    Returns the warning lines (runs whose history could not be read)."""
    heading = "#" * level
    headline = run.metrics[0]
    histories, notes = epoch_histories(run)
    doc.text(ablation_overview(run))
    doc.text(f"{heading} Headline: `{headline}`")
    if headline in run.trials:
        secondary = [m for m in run.metrics[1:] if m in run.trials][:3]
        tables = stats.comparison_markdown(run.trials_for(headline), headline, run.baseline, secondary=secondary,
                                           references=run.references)
        doc.text(tables.replace("### ", "#" * (level + 1) + " "))  # its headings, one level below ours
        notes_on_references = [line for line in reference_notes(run) if line]
        if notes_on_references:  # its heading one level below ours, then the notes
            doc.text(notes_on_references[0].replace("## ", "#" * (level + 1) + " ", 1))
            doc.text(*notes_on_references[1:])
    doc.figure(plot_headline(run, headline), f"{prefix}headline",
               f"Mean {headline} per variant with its 95% bootstrap CI (left) and the paired delta vs "
               f"{run.baseline} with its 95% CI (right).")
    doc.text(f"{heading} Learning curves")
    doc.figure(plot_variant_curves(run, headline, histories), f"{prefix}learning_curves",
               f"{epoch_metric(headline)} and the training loss per epoch, mean over folds × seeds with a ± 1 s.d. "
               "band; small squares mark epochs some runs did not reach (early stopping).")
    dim_metric = per_dimension_metric(run) or headline
    doc.text(f"{heading} Per-dimension deltas")
    doc.figure(plot_dimension_deltas(run, dim_metric), f"{prefix}dimension_deltas",
               f"Mean paired Δ {dim_metric} per label dimension vs {run.baseline} (finished runs paired by "
               "fold and seed); grey = no complete pair.")
    doc.text(f"{heading} Metric vs cost")
    doc.figure(plot_metric_vs_cost(run, headline), f"{prefix}metric_vs_cost",
               f"Mean {headline} per variant (95% CI) against the CPU time of all its runs.")
    unfinished = run.trials[~run.trials["status"].isin(USABLE)]
    if len(unfinished):
        doc.text(f"{heading} Runs that did not finish",
                 *[f"- `{r.variant}` fold {r.fold} seed {r.seed}: {text(r.status) or 'no status'}"
                   + (f" ({text(r.error)})" if text(r.error) else "") for r in unfinished.itertuples()])
    if notes:
        doc.text(f"{heading} History notes", *[f"- {note}" for note in notes])
    return notes


def plot_fusion_answer(answer: dict):
    """Left: each fusion variant's paired delta per dimension against that dimension's better
    single-modality control (95% CI bars; > 0 = fusion better). Right: F3's mean gate per
    dimension (1 = audio only), with its spread over runs."""
    dims = list(answer["per_dim"])
    gates = next(iter(answer["gates"].values()), {}) if answer["gates"] else {}
    fig, axes = new_figure(11.0 if gates else 7.5, 1.8 + 0.3 * len(dims), ncols=2 if gates else 1, sharey=True)
    axes = np.atleast_1d(axes)
    ax = axes[0]
    colours = variant_colours(answer["fused"])
    y = np.arange(len(dims))
    offsets = np.linspace(-0.3, 0.3, len(answer["fused"])) if len(answer["fused"]) > 1 else [0.0]
    for offset, variant in zip(offsets, answer["fused"]):
        mean = np.array([answer["per_dim"][d][1][variant][0] for d in dims])
        low = np.array([answer["per_dim"][d][1][variant][1] for d in dims])
        high = np.array([answer["per_dim"][d][1][variant][2] for d in dims])
        ax.errorbar(mean, y + offset, xerr=[mean - low, high - mean], fmt="o", ms=3, lw=1, capsize=2,
                    color=colours[variant], label=variant)
    ax.axvline(0, color="0.4", lw=0.8)
    ax.set_yticks(y, [f"{dimension_label(d)} ({answer['per_dim'][d][0][0]})" for d in dims], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"Δ {answer['metric']} vs the better control (a = audio, s = symbolic)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Fusion vs the better single modality (95% CI)", fontsize=10)
    if gates:
        values = np.array([gates.get(d, (np.nan, np.nan))[0] for d in dims])
        spread = np.nan_to_num(np.array([gates.get(d, (np.nan, np.nan))[1] for d in dims]))
        axes[1].barh(y, values, xerr=spread, color="tab:orange", alpha=0.8, error_kw={"lw": 0.8})
        axes[1].axvline(0.5, color="0.4", lw=0.8, ls="--")
        axes[1].set_xlim(0, 1)
        axes[1].set_xlabel("F3 gate (1 = audio only, 0 = symbolic only)")
        axes[1].set_title(f"F3 gates, {next(iter(answer['gates']))} (val mean ± s.d.)", fontsize=10)
    return fig


def add_fusion_section(doc: Document, run: AblationRun, prefix: str = "", level: int = 2) -> None:
    """The fusion question (``pianoeval.ablation.fusion``), when the run holds both controls."""
    answer = fusion_answer(run.trials, run.metrics[0])
    if answer is None:
        return
    text = fusion_markdown(answer)
    doc.text(text.replace("### ", "#" * (level + 1) + " ").replace("## ", "#" * level + " ", 1))
    doc.figure(plot_fusion_answer(answer), f"{prefix}fusion_answer",
               "Each fusion variant against the better single-modality control of each dimension (paired by fold "
               "and seed, 95% bootstrap CI) and F3's learned gates.")


def ablation_report(run_dir: str | Path, out_dir: str | Path | None = None) -> tuple[Path, list[str]]:
    """Write ``report.md`` + ``figures/`` for an ablation run; return (report path, warnings)."""
    if run_kind(run_dir) != "ablation":
        raise ConfigError(f"{run_dir}: not an ablation run (no ablation.yaml); report it with write_report")
    run = load_run(run_dir)
    doc = Document(Path(out_dir) if out_dir is not None else run.run_dir,
                   f"Ablation `{run.meta.get('ablation', run.run_dir.parent.name)}`: {run.run_dir.name}")
    notes = add_ablation_sections(doc, run)
    add_fusion_section(doc, run)
    doc.text("All metrics, with per-dimension tables: `comparison.md`; every run: `trials.parquet`; made by "
             f"`python runners/report.py {run.run_dir}`.")
    return doc.write(), notes
