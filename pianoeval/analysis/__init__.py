"""Statistics and tables for comparing sweep and ablation results (see ``stats``)."""

from pianoeval.analysis.stats import (
    bootstrap_mean_ci,
    comparison_markdown,
    cost_summary,
    holm_correction,
    markdown_table,
    paired_deltas,
    per_dimension_deltas,
    per_dimension_intervals,
    variant_summary,
)

__all__ = [
    "bootstrap_mean_ci",
    "comparison_markdown",
    "cost_summary",
    "holm_correction",
    "markdown_table",
    "paired_deltas",
    "per_dimension_deltas",
    "per_dimension_intervals",
    "variant_summary",
]
