"""The one trial-row schema: ``trial_row`` from a Tune result (its final evaluation, a pruned
or failed trial, a cross-validated one) and from a run summary, ``rows_frame``'s columns and
dtypes, and the documented column table. Tune results are stand-ins with the attributes
``trial_row`` reads; tests/report/test_trial_rows.py checks the rows of real runs."""

import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from pianoeval.errors import TrialDiverged
from pianoeval.paths import REPO_ROOT
from pianoeval.sweep.crossval import FOLD, FOLD_DONE, FOLD_EPOCHS, FOLDS_DONE, FOLDS_TOTAL
from pianoeval.sweep.rows import (COLUMN_NAMES, COLUMNS, RunContext, failure_summary, present, rows_frame, text,
                                  trial_row)

RUN = Path("/runs/han/20261122-101500")
CONTEXT = RunContext(cpu=2, gpu=0.5, git_commit="abc1234", run_dir=RUN, metric="val/r2", mode="max", max_epochs=3)


def _result(last: dict, history: list[dict] | None = None, error: BaseException | None = None,
            name: str = "trial_ab12_00001-han-fold0-seed0"):
    return SimpleNamespace(metrics=last, metrics_dataframe=pd.DataFrame(history) if history else None, error=error,
                           path=str(RUN / name))


def test_a_final_evaluation_and_the_same_runs_summary_give_the_same_row():
    report = {"final_eval": 1, "epochs_run": 3, "best_epoch": 2, "time_total_s": 12.0, "node_id": "n1", "val/r2": 0.3}
    row = trial_row(_result(report), CONTEXT, fold=0, seed=7)
    assert row["trial_id"] == "ab12_00001" and row["trial_dir"] == "trial_ab12_00001-han-fold0-seed0"
    assert (row["status"], row["error"], row["epochs_run"], row["best_epoch"]) == ("completed", None, 3, 2)
    assert (row["wall_seconds"], row["cpu_seconds"], row["gpu_seconds"]) == (12.0, 24.0, 6.0)
    summary = {"status": "completed", "error": None, "epochs_run": 3, "best_epoch": 2, "wall_seconds": 12.0,
               "node_id": "n1", "val/r2": 0.3}  # what the run's metrics.json holds
    same = trial_row(summary, CONTEXT, fold=0, seed=7, trial_id="ab12_00001",
                     trial_dir=RUN / "trial_ab12_00001-han-fold0-seed0")
    assert same == row and list(row) == list(COLUMN_NAMES)


def test_a_run_without_a_best_epoch_records_none_not_minus_one():
    report = {"final_eval": 1, "epochs_run": 0, "best_epoch": -1, "time_total_s": 1.0}
    assert trial_row(_result(report), CONTEXT, fold=0, seed=0)["best_epoch"] is None


def test_epoch_results_give_pruned_or_completed_and_the_objectives_best_epoch():
    history = [{"training_iteration": 1, "val/r2": 0.2}, {"training_iteration": 2, "val/r2": 0.1}]
    pruned = trial_row(_result({"training_iteration": 2, "early_stopped": 0}, history), CONTEXT, fold=0, seed=0)
    assert (pruned["status"], pruned["epochs_run"], pruned["best_epoch"]) == ("pruned", 2, 1)
    stopped = trial_row(_result({"training_iteration": 2, "early_stopped": 1}, history), CONTEXT, fold=0, seed=0)
    assert stopped["status"] == "completed"  # early stopping is a finished run


def test_the_status_of_a_failure_comes_from_its_exception_type():
    history = [{"training_iteration": 1, "val/r2": 0.2}]
    diverged = trial_row(_result({"training_iteration": 1}, history, TrialDiverged("loss is nan")), CONTEXT,
                         fold=0, seed=0)
    assert (diverged["status"], diverged["error"], diverged["epochs_run"]) == ("diverged", "TrialDiverged: loss is nan", 1)

    class RayTaskError(TrialDiverged):  # how Ray re-raises a trial's exception
        pass

    assert trial_row(_result({}, error=RayTaskError("x")), CONTEXT, fold=0, seed=0)["status"] == "diverged"
    failed = trial_row(failure_summary(ValueError("first line\nlast line")), CONTEXT, fold=1, seed=0)
    assert (failed["status"], failed["error"], failed["trial_dir"]) == ("error", "ValueError: last line", None)
    assert failed["epochs_run"] == 0 and failed["trial_id"] is None


def test_a_cross_validated_trial_counts_fold_epochs_and_finishes_with_its_last_fold():
    epoch = {FOLD: 3, "epoch": 1}
    fold_done = {FOLD_DONE: 1, FOLD: 3, FOLDS_DONE: 1, FOLDS_TOTAL: 2, FOLD_EPOCHS: 4}
    pruned = trial_row(_result(epoch, [fold_done, {FOLD_DONE: 0, **epoch}], name="trial_cd_00000"), CONTEXT,
                       fold=None, seed=0)
    # 4 epochs in its finished fold + 1 in the fold it was stopped in
    assert (pruned["status"], pruned["epochs_run"], pruned["best_epoch"]) == ("pruned", 5, None)
    first = trial_row(_result({**epoch, "epoch": 3}, [{FOLD_DONE: 0, **epoch}, {FOLD_DONE: 0, **epoch, "epoch": 3}],
                              name="trial_cd_00001"), CONTEXT, fold=None, seed=0)
    assert (first["status"], first["epochs_run"]) == ("pruned", 3)  # stopped by ASHA in its first fold
    pruned_at_fold_end = trial_row(_result(fold_done, [fold_done], name="trial_cd_00002"), CONTEXT, fold=None, seed=0)
    assert pruned_at_fold_end["epochs_run"] == 4  # fold pruning: nothing trained after the fold-done report
    done = {**fold_done, FOLDS_DONE: 2, FOLD_EPOCHS: 7}
    completed = trial_row(_result(done, [fold_done, done], name="trial_cd_00000"), CONTEXT, fold=None, seed=0)
    assert (completed["status"], completed["epochs_run"], completed["trial_id"]) == ("completed", 7, "cd_00000")


def test_rows_frame_puts_the_common_columns_first_with_their_dtypes():
    rows = [{**trial_row({"status": "completed", "epochs_run": 2}, CONTEXT, fold=0, seed=1), "variant": "han"},
            {"variant": "note_sa", **trial_row(failure_summary(RuntimeError("x")), CONTEXT, fold=None, seed=1)}]
    for frame in (rows_frame(rows), rows_frame([])):
        assert list(frame.columns[:len(COLUMNS)]) == list(COLUMN_NAMES)
        assert {c.name: str(frame[c.name].dtype) for c in COLUMNS} == {c.name: c.dtype for c in COLUMNS}
    frame = rows_frame(rows)
    assert frame["fold"].isna().tolist() == [False, True] and frame["variant"].tolist() == ["han", "note_sa"]


def test_a_missing_text_value_read_back_is_none_not_nan(tmp_path):
    # pandas' str columns read a missing value back as NaN, and bool(nan) is True
    rows = [trial_row({"status": "completed"}, CONTEXT, fold=0, seed=1),
            trial_row({"status": "error", "error": "OSError: disk"}, CONTEXT, fold=0, seed=1, trial_dir="trial_a")]
    rows_frame(rows).to_parquet(tmp_path / "trials.parquet")
    first, second = pd.read_parquet(tmp_path / "trials.parquet").to_dict("records")
    assert first["error"] != first["error"] and bool(first["error"])  # NaN, and truthy
    assert [text(first[c]) for c in ("error", "trial_dir", "node_id", "trial_id")] == [None] * 4
    assert not present(first["error"]) and not present(None) and not present("") and not present(pd.NA)
    assert text(second["error"]) == "OSError: disk" and present(second["trial_dir"])


def test_the_documented_column_table_is_the_schema():
    text = (REPO_ROOT / "docs" / "search_spaces.md").read_text()
    table = text.split("### Columns every `trials.parquet` has")[1].split("\n## ")[0]
    documented = re.findall(r"^\| `([a-z_]+)` \| ([A-Za-z0-9]+) \|", table, flags=re.M)
    assert documented == [(c.name, c.dtype) for c in COLUMNS]
