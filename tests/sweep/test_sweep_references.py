"""Reference baselines beside a sweep's trials (pianoeval.sweep.references): fitted once every
trial is done, validation only, into references/<name>/fold<k>/ and references.parquet, shown
in summary.md, read back on resume; on the real bundled data, tiny."""

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

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


def test_an_empty_list_fits_no_reference(ray_session, tmp_path):
    space = load_space(Path(__file__).parent / "spaces" / "references.yaml", {"reference_baselines": []})
    result = run_sweep(space, SweepOptions(storage=str(tmp_path), print_fn=lambda line: None))
    assert not (result.run_dir / "references.parquet").exists() and not (result.run_dir / "references").exists()
    assert "## Reference baselines" not in (result.run_dir / "summary.md").read_text()
