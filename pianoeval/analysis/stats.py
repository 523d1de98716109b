"""Paired statistics behind the ablation and staged-elimination comparison tables.

Input everywhere is a long DataFrame of trial results, one row per run, with
columns ``variant``, ``fold``, ``seed``, the metric column(s) (``r2``,
``pairwise_acc``, ... and optionally per-dimension ``r2/<dim>``) and optionally
the cost columns ``cpu_seconds`` and ``gpu_seconds``. A (variant, fold, seed)
triple may appear only once. A NaN metric marks a run that did not finish (it failed,
or a scheduler stopped it early): it is counted as unfinished, never averaged in.

Runs of two variants are compared *paired*: the same fold and seed see the same
training data and initial randomness, so the per-pair delta removes most of the
fold-to-fold spread that dwarfs ablation effects.

Every function returns a DataFrame (``comparison_markdown`` a string). Bootstrap
intervals are 95% percentile intervals over runs, deterministic for a given
``seed``; each variant draws from its own stream derived from ``seed`` and the
variant name, so adding a variant never changes another variant's interval.
"""

from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.stats

KEY_COLUMNS = ("variant", "fold", "seed")
COST_COLUMNS = {"cpu_seconds": "cpu_hours", "gpu_seconds": "gpu_hours"}
ALPHA = 0.05
# Below 6 pairs the exact two-sided Wilcoxon p-value cannot go under
# 2 / 2**5 = 0.0625, so it could never reach alpha = 0.05; the paired t-test
# (the reference's own test over 4 folds) is primary there.
MIN_PAIRS_FOR_WILCOXON = 6


def _check_frame(df: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in (*KEY_COLUMNS, *columns) if c not in df.columns]
    if missing:
        raise ValueError(f"results table lacks columns {missing} (has {list(df.columns)})")
    duplicated = df.duplicated(list(KEY_COLUMNS), keep=False)
    if duplicated.any():
        dupes = df.loc[duplicated, list(KEY_COLUMNS)].drop_duplicates().to_dict("records")
        raise ValueError(f"runs listed more than once (cannot pair them): {dupes[:5]}")


def _rng(seed: int, variant: str) -> np.random.Generator:
    # crc32 rather than hash(): Python salts str hashes per process.
    return np.random.default_rng([seed, zlib.crc32(str(variant).encode())])


def bootstrap_mean_ci(values, n_boot: int, rng: np.random.Generator, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaN, NaN when empty)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    resampled = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(resampled, [tail, 100.0 - tail])
    return float(low), float(high)


def holm_correction(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values, in the input order.

    With the m finite p-values sorted ascending, ``p_adj(i) = max_{j <= i}
    min(1, (m - j + 1) * p(j))``. NaN entries (tests that could not run) are not
    part of the family and stay NaN.
    """
    p_values = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full_like(p_values, np.nan)
    finite = np.flatnonzero(np.isfinite(p_values))
    m = finite.size
    if m == 0:
        return adjusted
    order = finite[np.argsort(p_values[finite], kind="stable")]
    stepped = np.minimum(1.0, (m - np.arange(m)) * p_values[order])
    adjusted[order] = np.maximum.accumulate(stepped)
    return adjusted


def variant_summary(df: pd.DataFrame, metric: str, n_boot: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """Per variant: runs, unfinished runs, mean, std (ddof 1) and 95% bootstrap CI of the mean.

    Columns: ``variant, n, n_failed, mean, std, ci_low, ci_high`` (one row per
    variant, in order of first appearance). ``n`` counts runs with a finite
    metric; the statistics use only those.
    """
    _check_frame(df, [metric])
    rows = []
    for variant, runs in df.groupby("variant", sort=False):
        values = runs[metric].to_numpy(dtype=np.float64)
        finite = values[np.isfinite(values)]
        low, high = bootstrap_mean_ci(finite, n_boot, _rng(seed, variant))
        rows.append({
            "variant": variant, "n": finite.size, "n_failed": values.size - finite.size,
            "mean": finite.mean() if finite.size else np.nan,
            "std": finite.std(ddof=1) if finite.size > 1 else np.nan,
            "ci_low": low, "ci_high": high,
        })
    return pd.DataFrame(rows, columns=["variant", "n", "n_failed", "mean", "std", "ci_low", "ci_high"])


def _paired(df: pd.DataFrame, column: str, baseline: str, variant: str) -> tuple[np.ndarray, np.ndarray]:
    """(variant values, baseline values) over the (fold, seed) pairs where both runs are finite."""
    def runs(name: str) -> pd.Series:
        rows = df[df["variant"] == name]
        return rows.set_index(["fold", "seed"])[column].astype(np.float64)

    both = pd.concat({"variant": runs(variant), "baseline": runs(baseline)}, axis=1, join="inner").dropna()
    return both["variant"].to_numpy(), both["baseline"].to_numpy()


def _paired_p_values(values: np.ndarray, baseline_values: np.ndarray) -> tuple[float, float]:
    """(Wilcoxon signed-rank p, paired t-test p), two-sided; 1.0 each when every delta is 0."""
    deltas = values - baseline_values
    if deltas.size == 0:
        return float("nan"), float("nan")
    if np.all(deltas == 0):
        # scipy gives NaN (t-test: 0 / 0) or a warning here; no difference is no evidence, p = 1.
        return 1.0, 1.0
    p_wilcoxon = float(scipy.stats.wilcoxon(values, baseline_values).pvalue)
    # One pair has no variance estimate: the t-test is undefined (NaN), not significant.
    p_ttest = float(scipy.stats.ttest_rel(values, baseline_values).pvalue) if deltas.size > 1 else float("nan")
    return p_wilcoxon, p_ttest


def paired_deltas(
    df: pd.DataFrame, metric: str, baseline: str, n_boot: int = 10_000, seed: int = 0, alpha: float = ALPHA
) -> pd.DataFrame:
    """Each non-baseline variant against ``baseline``, paired by (fold, seed).

    Only pairs where both runs exist and are finite count (``n``). Columns:
    ``variant, n, mean_delta, ci_low, ci_high`` (delta = variant - baseline,
    95% bootstrap CI of its mean), ``p_wilcoxon`` (``scipy.stats.wilcoxon``),
    ``p_ttest`` (paired t-test, as ``scipy.stats.ttest_rel``), ``primary_test``
    (``"wilcoxon"`` when n >= 6, else ``"ttest"``; see MIN_PAIRS_FOR_WILCOXON),
    ``p`` (the primary test's p), ``p_holm`` (Holm-adjusted across the variants
    of this table) and ``significant`` (``p_holm < alpha``). When every delta is
    0 both p-values are 1.0. Tests are two-sided, so the metric's direction
    does not matter here; the sign of ``mean_delta`` says which way it went.
    """
    _check_frame(df, [metric])
    if not (df["variant"] == baseline).any():
        raise ValueError(f"baseline {baseline!r} not among the variants {list(df['variant'].unique())}")
    rows = []
    for variant in df["variant"].unique():
        if variant == baseline:
            continue
        values, baseline_values = _paired(df, metric, baseline, variant)
        deltas = values - baseline_values
        low, high = bootstrap_mean_ci(deltas, n_boot, _rng(seed, variant))
        p_wilcoxon, p_ttest = _paired_p_values(values, baseline_values)
        primary = "wilcoxon" if deltas.size >= MIN_PAIRS_FOR_WILCOXON else "ttest"
        rows.append({
            "variant": variant, "n": deltas.size,
            "mean_delta": deltas.mean() if deltas.size else np.nan, "ci_low": low, "ci_high": high,
            "p_wilcoxon": p_wilcoxon, "p_ttest": p_ttest, "primary_test": primary,
            "p": p_wilcoxon if primary == "wilcoxon" else p_ttest,
        })
    columns = ["variant", "n", "mean_delta", "ci_low", "ci_high", "p_wilcoxon", "p_ttest", "primary_test",
               "p", "p_holm", "significant"]
    table = pd.DataFrame(rows, columns=[c for c in columns if c not in ("p_holm", "significant")])
    table["p_holm"] = holm_correction(table["p"].to_numpy(dtype=np.float64))
    table["significant"] = (table["p_holm"] < alpha).astype(bool)  # NaN compares False
    return table[columns]


def dimension_columns(columns: Sequence[str], prefix: str) -> list[str]:
    """The dimension names of the per-dimension columns ``<prefix>/<dim>``, in column order
    (the run's label set: 19 PercePiano dimensions, 8 categories, a file's own)."""
    start = len(prefix) + 1
    return [c[start:] for c in columns if c.startswith(f"{prefix}/") and c[start:] and "/" not in c[start:]]


def per_dimension_deltas(df: pd.DataFrame, baseline: str, dims: Sequence[str], prefix: str = "r2") -> pd.DataFrame:
    """Variant × dimension table of mean paired deltas of ``<prefix>/<dim>`` vs ``baseline``.

    Index: the non-baseline variants; columns: ``dims``. Each cell pairs runs by
    (fold, seed) on that dimension's column alone; NaN when no pair is complete.
    """
    columns = [f"{prefix}/{dim}" for dim in dims]
    _check_frame(df, columns)
    variants = [v for v in df["variant"].unique() if v != baseline]
    table = pd.DataFrame(index=pd.Index(variants, name="variant"), columns=list(dims), dtype=np.float64)
    for variant in variants:
        for dim, column in zip(dims, columns):
            values, baseline_values = _paired(df, column, baseline, variant)
            deltas = values - baseline_values
            table.loc[variant, dim] = deltas.mean() if deltas.size else np.nan
    return table


def per_dimension_intervals(df: pd.DataFrame, baseline: str, dims: Sequence[str], prefix: str = "r2",
                            n_boot: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """Per-dimension paired deltas vs ``baseline`` with their 95% bootstrap CIs.

    Columns: ``variant, dimension, n, mean_delta, ci_low, ci_high``, one row per
    non-baseline variant and dimension (variants in order of appearance, then ``dims``).
    Pairs as in ``per_dimension_deltas``; each cell draws from its own stream (``seed``,
    variant and dimension), so adding a dimension or a variant changes no other interval.
    """
    columns = [f"{prefix}/{dim}" for dim in dims]
    _check_frame(df, columns)
    rows = []
    for variant in [v for v in df["variant"].unique() if v != baseline]:
        for dim, column in zip(dims, columns):
            values, baseline_values = _paired(df, column, baseline, variant)
            deltas = values - baseline_values
            low, high = bootstrap_mean_ci(deltas, n_boot, _rng(seed, f"{variant}/{dim}"))
            rows.append({"variant": variant, "dimension": dim, "n": deltas.size,
                         "mean_delta": deltas.mean() if deltas.size else np.nan, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=["variant", "dimension", "n", "mean_delta", "ci_low", "ci_high"])


def cost_summary(df: pd.DataFrame) -> pd.DataFrame:
    """CPU-hours and GPU-hours per variant, summed over its runs.

    Columns: ``variant, runs, cpu_hours, gpu_hours``. A cost column absent from
    ``df``, or a run without a recorded cost, makes that total NaN: an unknown
    cost is shown as unknown, not as a smaller number.
    """
    _check_frame(df, [])
    grouped = df.groupby("variant", sort=False)
    table = pd.DataFrame({"runs": grouped.size()})
    for seconds, hours in COST_COLUMNS.items():
        if seconds in df.columns:
            table[hours] = grouped[seconds].sum(skipna=False) / 3600.0
        else:
            table[hours] = np.nan
    return table.reset_index()


# --------------------------------------------------------------------------- Markdown


def _number(value: float, digits: int = 3, signed: bool = False) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _p_value(value: float) -> str:
    if not np.isfinite(value):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _interval(low: float, high: float, digits: int = 3, signed: bool = False) -> str:
    return f"[{_number(low, digits, signed)}, {_number(high, digits, signed)}]"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table; the first column left-aligned, the rest right-aligned."""
    align = [":--"] + ["--:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def comparison_markdown(
    df: pd.DataFrame,
    metric: str,
    baseline: str,
    secondary: Sequence[str] = (),
    dims: Sequence[str] | None = None,
    dim_prefix: str = "r2",
    n_boot: int = 10_000,
    seed: int = 0,
    alpha: float = ALPHA,
    references: Sequence[str] = (),
) -> str:
    """The comparison report: summary, paired deltas vs ``baseline`` and, with ``dims``, per-dimension
    deltas with their CIs (one row per dimension, one column per variant).

    Summary table: variant, runs, ``metric`` mean ± std, its 95% CI, the means
    of the ``secondary`` metrics, CPU-hours and GPU-hours. Delta table: pairs,
    mean delta, its 95% CI, the primary test and its p, the Holm p and whether
    it is significant at ``alpha``. Metrics have 3 decimals, deltas a sign,
    hours 2 decimals, p-values 3 decimals (``<0.001`` below that).
    ``references`` are variants shown as italic reference rows of the summary
    only: they are neither compared with the baseline nor part of the Holm family.
    """
    summary = variant_summary(df, metric, n_boot=n_boot, seed=seed)
    costs = cost_summary(df).set_index("variant")
    secondary_means = {name: df.groupby("variant", sort=False)[name].mean() for name in secondary}
    rows = []
    for record in summary.itertuples(index=False):
        failed = f" ({record.n_failed} unfinished)" if record.n_failed else ""
        name = f"*{record.variant} (reference)*" if record.variant in references else str(record.variant)
        rows.append([
            f"**{record.variant}**" if record.variant == baseline else name,
            f"{record.n}{failed}",
            f"{_number(record.mean)} ± {_number(record.std)}",
            _interval(record.ci_low, record.ci_high),
            *[_number(secondary_means[name].get(record.variant, np.nan)) for name in secondary],
            _number(costs.loc[record.variant, "cpu_hours"], 2),
            _number(costs.loc[record.variant, "gpu_hours"], 2),
        ])
    header = ["variant", "runs", f"{metric} mean ± std", "95% CI", *secondary, "CPU-h", "GPU-h"]
    sections = [f"### {metric} by variant (baseline **{baseline}**)", markdown_table(header, rows)]
    present = [r for r in references if r in set(summary["variant"])]
    if present:
        sections.append("*Reference* rows: predictors fitted in closed form on each fold's training set "
                        f"({', '.join(present)}), no training; what {metric} is worth without a model of "
                        "the performance. They are not compared with the baseline below.")
    df = df[~df["variant"].isin(references)]

    deltas = paired_deltas(df, metric, baseline, n_boot=n_boot, seed=seed, alpha=alpha)
    delta_rows = [[
        str(r.variant), str(r.n), _number(r.mean_delta, signed=True), _interval(r.ci_low, r.ci_high, signed=True),
        r.primary_test, _p_value(r.p), _p_value(r.p_holm), "yes" if r.significant else "no",
    ] for r in deltas.itertuples(index=False)]
    delta_header = ["variant", "pairs", f"Δ {metric}", "95% CI", "test", "p", "p (Holm)", f"sig. (α={alpha:g})"]
    sections += [f"### Paired Δ vs {baseline} (same fold and seed)", markdown_table(delta_header, delta_rows)]

    if dims:
        # dimensions down, variants across: 19 rows read better than 19 columns, and each
        # cell has room for its interval
        cells = per_dimension_intervals(df, baseline, dims, prefix=dim_prefix, n_boot=n_boot, seed=seed)
        variants = list(dict.fromkeys(cells["variant"]))
        cell = {(r.dimension, r.variant): f"{_number(r.mean_delta, signed=True)} "
                                          f"{_interval(r.ci_low, r.ci_high, signed=True)}"
                for r in cells.itertuples(index=False)}
        dim_rows = [[dim, *[cell[(dim, variant)] for variant in variants]] for dim in dims]
        sections += [f"### Per-dimension Δ {dim_prefix} vs {baseline} (mean over pairs [95% CI])",
                     markdown_table(["dimension", *variants], dim_rows)]
    return "\n\n".join(sections) + "\n"
