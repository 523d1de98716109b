"""The ablation report on a real han_incremental run (note_sa vs the baseline, 1 epoch, fold 0)."""

import numpy as np

from pianoeval.ablation import load_run
from pianoeval.data.percepiano import LABEL_NAMES
from pianoeval.report import (epoch_histories, epoch_metric, plot_dimension_deltas, plot_headline,
                              variant_order, write_report)


def test_ablation_report_writes_markdown_and_every_figure(ablation_run_dir, tmp_path, check_report):
    report = write_report(ablation_run_dir, tmp_path / "out", print_fn=lambda line: None)
    figures = check_report(report)
    assert set(figures) == {"headline", "learning_curves", "dimension_deltas", "metric_vs_cost"}
    text = report.read_text()
    assert "| **bilstm_baseline** |" in text and "| note_sa |" in text  # the stats tables, via the library
    assert "Paired Δ vs bilstm_baseline" in text


def test_learning_curves_come_from_each_runs_history(ablation_run_dir):
    run = load_run(ablation_run_dir)
    histories, notes = epoch_histories(run)
    finished = run.trials[run.trials["status"] == "completed"]
    assert len(finished) == 2 and notes == []
    assert sorted(histories["variant"]) == sorted(finished["variant"])
    assert (histories["epoch"] == 1).all() and histories[epoch_metric("test/r2")].notna().all()


def test_heat_map_has_the_19_dimensions_centred_at_zero(ablation_run_dir):
    run = load_run(ablation_run_dir)
    figure = plot_dimension_deltas(run, "test/r2")
    heat = figure.axes[0]
    labels = [t.get_text() for t in heat.get_yticklabels()]
    assert len(labels) == len(LABEL_NAMES) == 19 and labels[0] == "timing: stable → unstable"
    image = heat.get_images()[0]
    low, high = image.get_clim()
    assert low == -high > -np.inf  # symmetric: white is "no change"
    expected = run.per_dimension("test/r2").loc["note_sa"].to_numpy(dtype=float)
    np.testing.assert_allclose(np.asarray(image.get_array()).ravel(), expected)  # the library's numbers, drawn


def test_headline_plot_draws_the_library_summary(ablation_run_dir):
    run = load_run(ablation_run_dir)
    assert variant_order(run) == ["bilstm_baseline", "note_sa"]
    figure = plot_headline(run)
    means = run.summary("test/r2").set_index("variant")["mean"]
    drawn = [line.get_xdata()[0] for line in figure.axes[0].get_lines() if line.get_marker() == "o"]
    np.testing.assert_allclose(drawn, [means["bilstm_baseline"], means["note_sa"]])
