"""Reference baselines beside a sweep's trials (pianoeval.sweep.references): fitted once every
trial is done, validation only, into references/<name>/fold<k>/ and references.parquet, shown
in summary.md and in the report, read back on resume, fitted by the report for an older run;
on the real bundled data, tiny."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from pianoeval.errors import ConfigError
from pianoeval.report import write_report
from pianoeval.sweep import SweepOptions, load_space, run_sweep

TINY = {"budget.max_epochs": 1, "budget.num_samples": 2, "data.max_train_segments": 40}


@pytest.fixture(scope="module")
def smoke_run(ray_session, tmp_path_factory):
    storage = str(tmp_path_factory.mktemp("references") / "results")
    lines = []
    result = run_sweep(load_space("smoke", TINY), SweepOptions(storage=storage, run_id="refs", print_fn=lines.append))
    return SimpleNamespace(run_dir=result.run_dir, storage=storage, lines=lines)


def _fitted(run_dir, name: str, fold: int = 0) -> dict:
    return json.loads((run_dir / "references" / name / f"fold{fold}" / "metrics.json").read_text())


def _table_row(text: str, name: str) -> list[str]:
    """The cells of ``name``'s row in the reference baselines' table of a Markdown file."""
    section = text.split("## Reference baselines", 1)[1]
    row = next(line for line in section.splitlines() if line.startswith(f"| {name} |"))
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_each_reference_is_a_run_folder_and_a_row_beside_the_trials_never_among_them(smoke_run):
    run_dir = smoke_run.run_dir
    references = pd.read_parquet(run_dir / "references.parquet")
    assert list(references["model"]) == ["global_mean", "music_mean"] and references["reference"].all()
    assert (references["status"] == "completed").all() and list(references["fold"]) == [0, 0]
    assert not [c for c in references.columns if c.startswith("test/")]  # a sweep looks at validation only
    for row in references.itertuples():
        metrics = _fitted(run_dir, row.model)
        assert getattr(row, "trial_dir") == f"references/{row.model}/fold0"
        assert references.set_index("model").loc[row.model, "val/r2"] == pytest.approx(metrics["val/r2"])
        assert "test/r2" not in metrics
    trials = pd.read_parquet(run_dir / "trials.parquet")
    assert len(trials) == 2 and "reference" not in trials.columns  # best config and importance never see them


def test_the_summary_shows_each_reference_with_its_metrics_json_values(smoke_run):
    summary = (smoke_run.run_dir / "summary.md").read_text()
    assert summary.index("## Top") < summary.index("## Reference baselines")
    header = next(line for line in summary.split("## Reference baselines", 1)[1].splitlines() if line.startswith("| "))
    assert header.startswith("| reference | predicts | status | val/r2 | val/pairwise_acc | val/pred_std_ratio |")
    for name in ("global_mean", "music_mean"):
        metrics = _fitted(smoke_run.run_dir, name)
        cells = _table_row(summary, name)
        assert cells[2] == "completed"
        assert cells[3:6] == [f"{metrics[m]:.4f}" for m in ("val/r2", "val/pairwise_acc", "val/pred_std_ratio")]
    assert "`references.parquet` and `references/`" in summary


def test_resume_of_a_finished_run_reads_the_references_back(smoke_run):
    before = {name: _fitted(smoke_run.run_dir, name) for name in ("global_mean", "music_mean")}
    lines = []
    run_sweep(load_space("smoke", TINY), SweepOptions(storage=smoke_run.storage, run_id="refs", resume=True,
                                                      print_fn=lines.append))
    assert {name: _fitted(smoke_run.run_dir, name) for name in before} == before  # not fitted again
    assert any("2 finished fits read back" in line for line in lines), lines
    assert not any(line.startswith("[sweep] reference global_mean/fold0:") for line in lines)


def test_resumed_with_no_references_the_older_fits_stay_on_disk_and_are_not_shown(smoke_run, tmp_path):
    storage = tmp_path / "results"
    shutil.copytree(smoke_run.storage, storage)
    run_dir = storage / smoke_run.run_dir.relative_to(smoke_run.storage)
    run_sweep(load_space("smoke", {**TINY, "reference_baselines": []}),
              SweepOptions(storage=str(storage), run_id="refs", resume=True, print_fn=lambda line: None))
    assert (run_dir / "references.parquet").is_file() and (run_dir / "references" / "music_mean").is_dir()
    assert "## Reference baselines" not in (run_dir / "summary.md").read_text()
    lines = []
    report = write_report(run_dir, tmp_path / "report", print_fn=lines.append).read_text()
    assert "## Reference baselines" not in report and lines == []  # and nothing is fitted for it


def test_the_report_shows_the_references_and_fits_them_for_an_older_run(smoke_run, tmp_path):
    lines = []
    report = write_report(smoke_run.run_dir, tmp_path / "current", print_fn=lines.append).read_text()
    metrics = _fitted(smoke_run.run_dir, "music_mean")
    assert float(_table_row(report, "music_mean")[3]) == pytest.approx(metrics["val/r2"], rel=1e-3) and lines == []
    older = tmp_path / "older"  # a run from before reference baselines: no references.parquet nor folders
    shutil.copytree(smoke_run.run_dir, older)
    shutil.rmtree(older / "references")
    (older / "references.parquet").unlink()
    recorded = yaml.safe_load((older / "sweep.yaml").read_text())
    del recorded["reference_baselines"]
    (older / "sweep.yaml").write_text(yaml.safe_dump(recorded))
    report = write_report(older, tmp_path / "older_report", print_fn=lines.append).read_text()
    assert len(lines) == 1 and "no references.parquet" in lines[0] and "global_mean, music_mean" in lines[0]
    assert pd.read_parquet(older / "references.parquet")["model"].tolist() == ["global_mean", "music_mean"]
    assert float(_table_row(report, "music_mean")[3]) == pytest.approx(_fitted(older, "music_mean")["val/r2"], rel=1e-3)
    assert _fitted(older, "music_mean")["val/r2"] == pytest.approx(metrics["val/r2"])  # the same fit as the sweep's


def test_an_empty_list_fits_no_reference(ray_session, tmp_path):
    space = load_space(Path(__file__).parent / "spaces" / "references.yaml", {"reference_baselines": []})
    result = run_sweep(space, SweepOptions(storage=str(tmp_path), print_fn=lambda line: None))
    assert not (result.run_dir / "references.parquet").exists() and not (result.run_dir / "references").exists()
    assert "## Reference baselines" not in (result.run_dir / "summary.md").read_text()


def test_a_reference_that_fails_is_one_line_and_an_error_row(tmp_path, monkeypatch):
    import pianoeval.train.run

    from pianoeval.sweep.references import fit_space_references, reference_table

    fit = pianoeval.train.run.train_run

    def global_mean_fails(config, **kwargs):
        if config.model_name == "global_mean":
            raise RuntimeError("disk full")
        return fit(config, **kwargs)

    monkeypatch.setattr(pianoeval.train.run, "train_run", global_mean_fails)
    space = load_space("smoke", {"data.max_train_segments": 40})
    lines = []
    references = fit_space_references(space, tmp_path, evaluate_test=False, say=lines.append)
    assert list(references["status"]) == ["error", "completed"]
    assert [line for line in lines if "global_mean" in line] == [
        "[sweep] reference global_mean/fold0 failed and is left out: RuntimeError: disk full"]
    table = reference_table(references, space.metric, space.mode, space.record, space.folds, best=0.0)
    table = table.set_index("reference")
    assert table.loc["global_mean", "status"] == "error: RuntimeError: disk full"
    assert table.loc["music_mean", "val/r2"] == pytest.approx(_fitted(tmp_path, "music_mean")["val/r2"])


def test_a_resume_must_keep_the_evaluate_test_the_run_was_started_with(smoke_run, tmp_path):
    assert yaml.safe_load((smoke_run.run_dir / "sweep.yaml").read_text())["evaluate_test"] is False
    with pytest.raises(ConfigError, match=r"sweep\.yaml: evaluate_test: false: .*resume it without the flag"):
        run_sweep(load_space("smoke", TINY), SweepOptions(storage=smoke_run.storage, run_id="refs", resume=True,
                                                          evaluate_test=True, print_fn=lambda line: None))
    storage = tmp_path / "results"  # a run started with --evaluate-test, resumed without it
    shutil.copytree(smoke_run.storage, storage)
    record = storage / smoke_run.run_dir.relative_to(smoke_run.storage) / "sweep.yaml"
    record.write_text(record.read_text().replace("evaluate_test: false", "evaluate_test: true"))
    before = sorted(p.name for p in record.parent.iterdir())
    with pytest.raises(ConfigError, match=r"sweep\.yaml: evaluate_test: true: .*resume it with --evaluate-test"):
        run_sweep(load_space("smoke", TINY), SweepOptions(storage=str(storage), run_id="refs", resume=True,
                                                          print_fn=lambda line: None))
    assert sorted(p.name for p in record.parent.iterdir()) == before  # refused before anything ran
