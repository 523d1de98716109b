"""The answer to an ablation: which variant is better, by how much, with what
confidence, at what cost. ``comparison.md`` and the same numbers as DataFrames.

    >>> from pianoeval.ablation import load_run
    >>> run = load_run("results/ablations/han_incremental/20261122-101500")
    >>> run.summary("test/r2")            # mean, 95% bootstrap CI per variant
    >>> run.deltas("test/r2")             # paired deltas vs the baseline, Wilcoxon / t, Holm
    >>> run.per_dimension("test/r2")      # variant x 19 dimensions
    >>> run.cost()                        # CPU- and GPU-hours per variant
    >>> run.references                    # the reference baselines (rows of the summary only)

Reference baselines (``reference_baselines`` of the spec) appear in every summary table
as italic reference rows, beside the variants, and never in the paired deltas.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from pianoeval.ablation.fusion import fusion_answer, fusion_markdown
from pianoeval.analysis import stats
from pianoeval.io import RESUME_FIX, read_table
from pianoeval.sweep.rows import text

USABLE = ("completed",)


def _dims_for(frame: pd.DataFrame, metric: str) -> list[str] | None:
    return stats.dimension_columns(frame.columns, metric) or None


def run_warnings(trials: pd.DataFrame) -> list[str]:
    """The distinct warning lines of the runs (piece leakage allowed by a folds file, ...)."""
    if "warnings" not in trials:
        return []
    lines = [line for text in trials["warnings"].dropna() for line in str(text).splitlines() if line]
    return list(dict.fromkeys(lines))


@dataclass
class AblationRun:
    run_dir: Path
    trials: pd.DataFrame
    baseline: str
    metrics: tuple[str, ...]
    meta: dict

    @property
    def usable(self) -> pd.DataFrame:
        """Rows that count: finished runs (failed and pruned runs are reported, not averaged)."""
        return self.trials[self.trials["status"].isin(USABLE)]

    @property
    def references(self) -> list[str]:
        """The reference baselines among the variants (runs before they existed have none)."""
        if "reference" not in self.trials:
            return []
        return list(dict.fromkeys(self.trials.loc[self.trials["reference"].fillna(False).astype(bool), "variant"]))

    def summary(self, metric: str | None = None) -> pd.DataFrame:
        return stats.variant_summary(self.trials_for(metric), metric or self.metrics[0])

    def deltas(self, metric: str | None = None) -> pd.DataFrame:
        """Paired deltas of the compared variants (the reference baselines left out)."""
        return stats.paired_deltas(self.compared(self.trials_for(metric)), metric or self.metrics[0], self.baseline)

    def per_dimension(self, metric: str | None = None) -> pd.DataFrame:
        metric = metric or self.metrics[0]
        dims = _dims_for(self.trials, metric) or []
        return stats.per_dimension_deltas(self.compared(self.usable), self.baseline, dims, prefix=metric)

    def compared(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` without the reference baselines' rows."""
        return frame[~frame["variant"].isin(self.references)]

    def cost(self) -> pd.DataFrame:
        return stats.cost_summary(self.trials)

    def trials_for(self, metric: str | None) -> pd.DataFrame:
        """All rows, with the metric set to NaN for unusable ones (counted as unfinished runs)."""
        frame = self.trials.copy()
        metric = metric or self.metrics[0]
        if metric in frame:
            frame.loc[~frame["status"].isin(USABLE), metric] = float("nan")
        return frame


def load_run(run_dir: str | Path) -> AblationRun:
    """An ablation run folder; ``trial_dir`` values become absolute paths again."""
    run_dir = Path(run_dir)
    meta = yaml.safe_load((run_dir / "ablation.yaml").read_text())
    trials = read_table(run_dir / "trials.parquet", RESUME_FIX,
                        columns=("variant", "status", "trial_dir"))  # trial_id came later
    trials["trial_dir"] = trials["trial_dir"].map(
        lambda p: p if text(p) is None or Path(p).is_absolute() else str(run_dir / p))
    return AblationRun(run_dir, trials, meta["baseline"], tuple(meta["metrics"]), meta)


def reference_notes(run: AblationRun) -> list[str]:
    """Lines on the reference baselines: where their runs are and how many test items
    ``music_mean`` predicted by the global mean (its excerpt absent from training)."""
    if not run.references:
        return []
    rows = run.trials[run.trials["variant"].isin(run.references)]
    lines = ["## Reference baselines", "",
             f"{', '.join(f'`{r}`' for r in run.references)}: fitted in closed form on each fold's training set "
             f"(run folders under `references/`); a parameter-free predictor gives the same value for every seed."]
    for column in [c for c in rows.columns if c.startswith("fit/") and "fallback" in c]:
        counts = rows.dropna(subset=[column]).groupby("variant")[column].agg(["min", "max"])
        for variant, count in counts.iterrows():
            spread = f"{count['min']:g}" if count["min"] == count["max"] else f"{count['min']:g}-{count['max']:g}"
            lines.append(f"`{variant}` {column.removeprefix('fit/')}: {spread} per fold (items whose excerpt has "
                         "no training performance, predicted by the global mean).")
    return lines + [""]


def comparison_markdown(run: AblationRun, description: str = "") -> str:
    meta, trials = run.meta, run.trials
    references = run.references
    variants = [v for v in dict.fromkeys(trials["variant"]) if v not in references]
    counts = trials["status"].value_counts().to_dict()
    trained = int((~trials["variant"].isin(references)).sum())
    lines = [
        f"# Ablation `{meta['ablation']}`: {run.run_dir.name}",
        "",
        description or "",
        "",
        *[f"**{line}**" for line in run_warnings(trials)],
        f"{len(variants)} variants x {len(meta['folds'])} folds {meta['folds']} x {len(meta['seeds'])} seeds "
        f"{meta['seeds']} (paired) = {trained} runs"
        + (f", and {len(trials) - trained} fits of {len(references)} reference baselines" if references else "")
        + ": " + ", ".join(f"{v} {k}" for k, v in counts.items()) + f". Baseline: `{run.baseline}`.",
        f"Budget: {meta['budget']['max_epochs']} epochs"
        + (f", early stopping patience {meta['budget']['early_stopping_patience']}" if meta['budget'].get('early_stopping_patience') else "")
        + (f", ASHA grace {meta['budget']['asha_grace_period']} on {meta['budget']['asha_metric']}" if meta['budget'].get('asha_grace_period') else "")
        + "; each run keeps its best checkpoint by validation and is evaluated on the fixed test set.",
        "Confidence intervals: 95% bootstrap over folds x seeds; deltas are paired by (fold, seed); "
        "tests: Wilcoxon signed-rank when n >= 6, else paired t-test (both reported); Holm-corrected across variants.",
        "",
    ]
    eval_only = trials[trials["eval_only"]].drop_duplicates("variant")
    if len(eval_only):
        lines += ["Eval-only variants (no training; the source variant's weights evaluated differently): "
                  + ", ".join(f"`{r.variant}` <- `{text(r.source_variant) or '?'}`"
                              for r in eval_only.itertuples()), ""]
    for i, metric in enumerate(run.metrics):
        if metric not in trials.columns:
            lines += [f"## `{metric}`", "", "No run produced this metric.", ""]
            continue
        secondary = [m for m in run.metrics if m != metric and m in trials.columns][:3]
        dims = _dims_for(trials, metric) if i == 0 or metric.endswith("/r2") else None
        lines += [f"## `{metric}`" + (" (headline)" if i == 0 else ""), ""]
        lines.append(stats.comparison_markdown(run.trials_for(metric), metric, run.baseline,
                                               secondary=secondary, dims=dims, dim_prefix=metric,
                                               references=run.references))
        lines.append("")
    fusion = fusion_answer(trials, run.metrics[0])
    if fusion is not None:
        lines += [fusion_markdown(fusion)]
    lines += reference_notes(run)
    failed = trials[~trials["status"].isin(USABLE)]
    if len(failed):
        lines += ["## Runs that did not finish", ""]
        lines += [f"- `{r.variant}` fold {r.fold} seed {r.seed}: {text(r.status) or 'no status'}"
                  + (f" ({text(r.error)})" if text(r.error) else "") for r in failed.itertuples()]
        lines.append("")
    lines += ["Data: `trials.parquet` (one row per run, every val/test metric and per-dimension value); "
              "plots: `python runners/report.py " + str(run.run_dir) + "`.", ""]
    return "\n".join(lines)
