"""Reports of sweep and ablation runs: ``report.md`` with PNG figures, and the same tables and
figures for notebooks (``results/notebooks/``). See docs/reports.md.

    >>> from pianoeval.report import write_report
    >>> write_report("results/sweeps/smoke/20261122-042832")   # -> .../report.md + figures/*.png

Sweeps: ``load_sweep`` -> ``SweepRun``; ``plot_learning_curves``, ``plot_rung_survival``,
``plot_objective_vs_parameters``, ``plot_objective_vs_cost``; ``top_trials``, ``status_counts``.
Ablations (an ``AblationRun`` from ``pianoeval.ablation.load_run``): ``plot_headline``,
``plot_variant_curves``, ``plot_dimension_deltas``, ``plot_metric_vs_cost``. Staged elimination:
``stage_decisions``, ``stage_run``, ``stage_runs``, ``plot_stage_decisions``. Every ``plot_*`` returns a
matplotlib Figure.
"""

from pianoeval.report.ablation import (ablation_overview, ablation_report, epoch_histories, epoch_metric,
                                       plot_dimension_deltas, plot_headline, plot_metric_vs_cost, plot_variant_curves,
                                       variant_order)
from pianoeval.report.runs import find_run, latest_run, read_history, run_kind, write_report
from pianoeval.report.staged import (decision_metric, plot_stage_decisions, stage_decisions, stage_run, stage_runs,
                                     staged_report)
from pianoeval.report.sweep import (SweepRun, asha_rungs, load_sweep, plot_learning_curves, plot_objective_vs_cost,
                                    plot_objective_vs_parameters, plot_rung_survival, rung_survival, status_counts,
                                    sweep_overview, sweep_report, top_trials)

__all__ = [
    "SweepRun", "ablation_overview", "ablation_report", "asha_rungs", "decision_metric", "epoch_histories",
    "epoch_metric", "find_run", "latest_run", "load_sweep", "plot_dimension_deltas", "plot_headline",
    "plot_learning_curves", "plot_metric_vs_cost", "plot_objective_vs_cost", "plot_objective_vs_parameters",
    "plot_rung_survival", "plot_stage_decisions", "plot_variant_curves", "read_history", "run_kind",
    "rung_survival", "stage_decisions", "stage_run", "stage_runs", "staged_report", "status_counts",
    "sweep_overview", "sweep_report", "top_trials", "variant_order", "write_report",
]
