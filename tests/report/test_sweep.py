"""The sweep report on a real smoke sweep: tables, the four figures, ASHA rungs."""

import pandas as pd
import pytest

from pianoeval.report import (asha_rungs, load_sweep, plot_objective_vs_parameters, rung_survival, status_counts,
                              top_trials, write_report)


def test_sweep_report_writes_markdown_and_every_figure(sweep_run_dir, tmp_path, check_report):
    lines = []
    report = write_report(sweep_run_dir, tmp_path / "out", print_fn=lines.append)
    assert report == tmp_path / "out" / "report.md"
    figures = check_report(report)
    assert set(figures) == {"learning_curves", "rung_survival", "objective_vs_parameters", "objective_vs_cost"}
    text = report.read_text()
    trials = pd.read_parquet(sweep_run_dir / "trials.parquet")
    assert f"| 1 | {trials.iloc[0]['trial_id']} |" in text  # the best trial heads the top table
    assert "train.lr" in text and "## Trials by status" in text
    assert lines == []  # every trial's history was readable: no warning


def test_sweep_tables_and_survival_follow_the_trials(sweep_run_dir):
    run = load_sweep(sweep_run_dir)
    assert run.rungs == [1] and len(run.histories) == len(run.trials) == 3
    counts = status_counts(run).set_index("status")["trials"]
    assert counts.sum() == 3 and counts["pruned"] >= 1  # ASHA stopped someone at epoch 1
    survival = rung_survival(run).set_index("epoch")
    assert survival.loc[1, "alive"] == 3
    assert survival.loc[2, "alive"] == (run.trials["epochs_run"] >= 2).sum() == counts["completed"]
    for trial_id, history in run.histories.items():  # a pruned trial's curve ends at its rung
        assert history["epoch"].max() == run.trials.set_index("trial_id").loc[trial_id, "epochs_run"]
    top = top_trials(run, k=2)
    assert list(top["rank"]) == [1, 2] and top.iloc[0]["trial"] == run.trials.iloc[0]["trial_id"]
    assert {"train.lr", "model.dropout", "model.attention_temperature", "val/r2"} <= set(top.columns)


def test_log_scale_parameters_get_a_log_axis(sweep_run_dir):
    figure = plot_objective_vs_parameters(load_sweep(sweep_run_dir))
    scales = {ax.get_xlabel(): ax.get_xscale() for ax in figure.axes if ax.get_xlabel()}
    assert scales == {"train.lr (log scale)": "log", "model.dropout": "linear", "model.attention_temperature": "linear"}


@pytest.mark.parametrize("max_epochs, grace, factor, expected", [
    (3, 1, 2.0, [1, 2]),      # the smoke space: milestones 1, 2
    (2, 1, 2.0, [1]),         # the test sweep: a rung at the last epoch stops nobody
    (50, 5, 3.0, [5, 15, 45]),
    (20, 2, 3.0, [2, 6, 18]),
    (10, 10, 3.0, []),        # grace = budget: no early stop at all
])
def test_asha_rungs_are_where_ray_decides(max_epochs, grace, factor, expected):
    assert asha_rungs(max_epochs, grace, factor) == expected
