"""Reports of sweep and ablation runs: ``report.md`` with PNG figures, and the same tables and
figures for notebooks (``results/notebooks/``). See docs/reports.md.

    >>> from pianoeval.report import write_report
    >>> write_report("results/sweeps/smoke/20261122-042832")   # -> .../report.md + figures/*.png

``write_report`` (defined here, above the three kinds of report) picks the report of a folder.
Sweeps: ``load_sweep`` -> ``SweepRun``; ``plot_learning_curves``, ``plot_rung_survival``,
``plot_objective_vs_parameters``, ``plot_objective_vs_cost``; ``top_trials``, ``status_counts``.
Ablations (an ``AblationRun`` from ``pianoeval.ablation.load_run``): ``plot_headline``,
``plot_variant_curves``, ``plot_dimension_deltas``, ``plot_metric_vs_cost``. Staged elimination:
``stage_decisions``, ``stage_run``, ``stage_runs``, ``plot_stage_decisions``. Every ``plot_*`` returns a
matplotlib Figure.
"""

from pathlib import Path

from pianoeval.report.ablation import (ablation_overview, ablation_report, epoch_histories, epoch_metric,
                                       plot_dimension_deltas, plot_headline, plot_metric_vs_cost, plot_variant_curves,
                                       variant_order)
from pianoeval.report.runs import find_run, latest_run, read_history, run_kind
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


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, top_k: int = 10,
                 print_fn=print) -> Path:
    """Write ``report.md`` and ``figures/*.png`` for any run directory; return the report's path.

    ``out_dir`` defaults to ``run_dir``. Trials whose history cannot be read are left out
    of the learning curves, each with one warning line (and a note in the report)."""
    run_dir = Path(run_dir)
    kind = run_kind(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir
    if kind == "sweep":
        path, notes = sweep_report(run_dir, out_dir, top_k=top_k, say=print_fn)
    elif kind == "ablation":
        path, notes = ablation_report(run_dir, out_dir)
    else:
        path, notes = staged_report(run_dir, out_dir)
    for note in notes:
        print_fn(f"[report] warning: {note}")
    return path
