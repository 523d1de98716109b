"""Sweep rows and ablation rows are one schema: the real smoke sweep and the tiny staged
ablation of conftest.py share the common columns, with the same dtypes and meaning; and
tables written before the schema (without its new columns, older dtypes) still report."""

import shutil

import pandas as pd

from pianoeval.report import write_report
from pianoeval.report.runs import trial_folder
from pianoeval.sweep.rows import COLUMN_NAMES, COLUMNS

NEW_COLUMNS = {"sweep": ["fold"], "ablation": ["trial_id", "node_id"]}  # what the schema added to each kind


def test_sweep_and_ablation_rows_share_the_common_columns(sweep_run_dir, ablation_run_dir):
    sweep = pd.read_parquet(sweep_run_dir / "trials.parquet")
    ablation = pd.read_parquet(ablation_run_dir / "trials.parquet")
    dtypes = {c.name: c.dtype for c in COLUMNS}
    for frame, run_dir in ((sweep, sweep_run_dir), (ablation, ablation_run_dir)):
        assert list(frame.columns[:len(COLUMNS)]) == list(COLUMN_NAMES)
        assert {c: str(frame[c].dtype) for c in COLUMN_NAMES} == dtypes
        assert (frame["fold"] == 0).all() and frame["git_commit"].notna().all()
        assert (frame["cpu_seconds"] == frame["wall_seconds"] * 1.0).all() and (frame["gpu_seconds"] == 0).all()
        assert all(trial_folder(d, run_dir) is not None for d in frame["trial_dir"])  # relative, and found
    # the same meaning: Tune's trial id and node, epochs trained and the best one, for every trained run
    trained = ablation[~ablation["reference"]]
    for frame in (sweep, trained):
        assert frame["trial_id"].str.fullmatch(r"[0-9a-f]+(_\d{5})?").all() and frame["node_id"].notna().all()
        assert (frame["epochs_run"] >= frame["best_epoch"]).all() and (frame["best_epoch"] >= 1).all()
        assert (frame["wall_seconds"] > 0).all()
    assert set(sweep["seed"]) == {7} and set(ablation["seed"]) == {0}  # smoke.yaml's seed; staged_tiny's seeds
    references = ablation[ablation["reference"]]  # fitted in-process: no Tune trial, one closed-form step
    assert references["trial_id"].isna().all() and (references["epochs_run"] == 1).all()


def _old_format(run_dir, kind: str) -> None:
    """Rewrite a run's trials.parquet as the tables before the schema were: without its new
    columns, whole numbers as int64 (float64 with a missing value), text as object."""
    path = run_dir / "trials.parquet"
    frame = pd.read_parquet(path).drop(columns=NEW_COLUMNS[kind])
    for column in COLUMNS:
        if column.name not in frame:
            continue
        if column.dtype == "Int64":
            has_missing = frame[column.name].isna().any()
            frame[column.name] = frame[column.name].astype("float64" if has_missing else "int64")
        elif column.dtype == "str":
            frame[column.name] = frame[column.name].astype(object).where(frame[column.name].notna(), None)
    frame.to_parquet(path, index=False)


def test_old_format_rows_still_report(sweep_run_dir, ablation_run_dir, tmp_path):
    for kind, run_dir in (("sweep", sweep_run_dir), ("ablation", ablation_run_dir)):
        old = tmp_path / kind / run_dir.name
        shutil.copytree(run_dir, old, ignore=shutil.ignore_patterns("checkpoint_*"))
        _old_format(old, kind)
        assert not set(NEW_COLUMNS[kind]) & set(pd.read_parquet(old / "trials.parquet").columns)
        lines = []
        report = write_report(old, tmp_path / f"{kind}-report", print_fn=lines.append)
        text = report.read_text()
        assert lines == [] and "figures/" in text, kind  # every history read, the figures drawn
