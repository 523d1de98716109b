"""Sweep rows and ablation rows are one schema: the real smoke sweep and the tiny staged
ablation of conftest.py share the common columns, with the same dtypes and meaning; and
tables written before the schema (without its new columns, older dtypes) still report."""

import re
import shutil

import pandas as pd
import pytest

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


# Text columns a reader tests: a missing value reads back from parquet as NaN, and bool(nan) is True
TEXT_COLUMNS = ["trial_id", "status", "error", "node_id", "git_commit", "trial_dir", "source_variant", "warnings",
                "track"]


def _text_missing(run_dir, keep: tuple[str, ...]) -> pd.DataFrame:
    """Blank every text column of a run's trials.parquet but ``keep`` (NaN, as parquet gives it
    back); with the status kept, its first run becomes a failure without an error text."""
    path = run_dir / "trials.parquet"
    frame = pd.read_parquet(path)
    if "status" in keep:
        frame.loc[0, "status"] = "error"
    for column in (c for c in TEXT_COLUMNS if c in frame and c not in keep):
        frame[column] = pd.Series(float("nan"), index=frame.index).astype("str")
    frame.to_parquet(path, index=False)
    return pd.read_parquet(path)


def _no_nan(*texts: str) -> None:
    for text in texts:
        assert not re.search(r"\bnan\b", text, re.IGNORECASE), text


@pytest.mark.parametrize("keep", [("status",), ()], ids=["a-failure-without-error-text", "all-text-missing"])
def test_missing_text_values_are_never_read_as_values(sweep_run_dir, staged_run_dir, tmp_path, keep):
    """NaN in every text column (status kept, so finished runs take the paths that read a
    trial folder and a failed one is listed without its error; then status too): each reader
    of trial rows treats it as missing, never as the text 'nan' (an error, a commit, a trial
    folder 'nan')."""
    from pianoeval.ablation.compare import comparison_markdown, load_run
    from pianoeval.ablation.confirm import confirmable, confirmation_spec
    from pianoeval.ablation.staged import RuleSpec, decide, epoch_table
    from pianoeval.sweep import load_space
    from pianoeval.sweep.results import best_config, summary_markdown

    sweep, staged = tmp_path / "sweep" / sweep_run_dir.name, tmp_path / "staged" / staged_run_dir.name
    for source, copy in ((sweep_run_dir, sweep), (staged_run_dir, staged)):
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("checkpoint_*"))
    stage = staged / "round1"
    frames = {"sweep": _text_missing(sweep, keep), "stage": _text_missing(stage, keep)}
    assert all(frame[c].isna().all() for frame in frames.values() for c in TEXT_COLUMNS
               if c in frame and c not in keep)
    assert all(trial_folder(d, stage) is None for d in frames["stage"]["trial_dir"])  # no folder 'nan'
    # the comparison table and the staged decision over the stage's rows (as run_staged sets track)
    comparison = comparison_markdown(load_run(stage))
    table = frames["stage"].assign(track="symbolic")
    curves = epoch_table(table, stage, "val/pairwise_acc")
    assert curves.empty  # no trial folder recorded: no history read (nor one under a folder 'nan')
    decision = decide(RuleSpec(name="within_track_gap"), table, curves)
    winner = decide(RuleSpec(name="track_winner", veto_metric=None), table)
    notes = [*decision.notes, *decision.dropped.values(), *winner.notes, *winner.dropped.values()]
    # the sweep's summary, its best config's provenance and the confirmation's variant names
    space = load_space("smoke", {"budget.num_samples": 3, "budget.max_epochs": 2, "data.max_train_segments": 40})
    summary = summary_markdown(space, frames["sweep"], sweep)
    best = best_config(space, frames["sweep"])
    if best is not None:
        assert best["provenance"]["trial_id"] is None and best["provenance"]["git_commit"] is None
    done = confirmable(space, frames["sweep"])
    if len(done):
        assert list(confirmation_spec(space, done.head(2)).variants) == ["top1", "top2"][:len(done.head(2))]
    # the report writers: sweep, ablation (the stage folder) and staged
    lines, reports = [], []
    for run_dir in (sweep, stage, staged):
        reports.append(write_report(run_dir, tmp_path / "out" / run_dir.name, print_fn=lines.append).read_text())
    _no_nan(comparison, summary, *notes, *lines, *reports)
    if keep:  # the failed runs are listed, without an error text
        assert "no error recorded" in summary and "no error recorded" in reports[0]
        assert all(re.search(r"fold 0 seed 0: error$", text, re.M) for text in (comparison, reports[1]))
    else:  # no status: every run is unfinished, none with an error printed
        assert all(re.search(r"fold 0 seed 0: no status$", text, re.M) for text in (comparison, reports[1]))
