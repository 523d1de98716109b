"""The staged-elimination report on a real (one-stage) run of tests/report/ablations/staged_tiny.yaml."""

import json

import pytest

from pianoeval.errors import ConfigError
from pianoeval.report import plot_stage_decisions, stage_decisions, stage_run, write_report


def test_staged_report_has_the_decisions_and_each_stages_figures(staged_run_dir, tmp_path, check_report):
    report = write_report(staged_run_dir, tmp_path / "out", print_fn=lambda line: None)
    figures = check_report(report)
    per_stage = {"headline", "learning_curves", "dimension_deltas", "metric_vs_cost"}
    assert set(figures) == {"stage_decisions"} | {f"round1_{f}" for f in per_stage}
    text = report.read_text()
    state = json.loads((staged_run_dir / "stages.json").read_text())["stages"]["round1"]
    (dropped, why), = state["dropped"].items()  # one winner per track: the other candidate goes
    assert f"| round1 | {dropped} | symbolic | dropped | {why} |" in text
    assert f"| round1 | {state['winners']['symbolic']} | symbolic | winner | winner of track symbolic |" in text


def test_stage_decisions_follow_stages_json(staged_run_dir):
    decisions = stage_decisions(staged_run_dir).set_index("candidate")
    state = json.loads((staged_run_dir / "stages.json").read_text())["stages"]["round1"]
    assert sorted(decisions.index) == sorted(state["candidates"]) and set(decisions["stage"]) == {"round1"}
    assert decisions.loc[state["winners"]["symbolic"], "decision"] == "winner"
    assert stage_run(staged_run_dir).run_dir == staged_run_dir / "round1"  # the last finished stage
    assert stage_run(staged_run_dir, "round1").baseline == "bilstm_baseline"
    with pytest.raises(ConfigError, match="stage 'round2' has no results"):
        stage_run(staged_run_dir, "round2")
    # shown on the metric the rule decided on (val/pairwise_acc), not on the headline test/r2
    assert plot_stage_decisions(staged_run_dir).axes[0].get_xlabel().startswith("val/pairwise_acc")
