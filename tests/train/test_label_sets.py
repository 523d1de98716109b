"""A tiny real training run on the 8-category taxonomy and a piece folds file written by
check_split.py: 8-dimension metrics and predictions, inputs recorded in resolved.yaml."""

import json

import numpy as np
import pandas as pd
import yaml

from pianoeval.data.folds import builtin_fold_file
from pianoeval.experiment import ExperimentConfig
from pianoeval.train import train_run
from pianoeval.train.run import final_table

CATEGORIES = ["timing", "articulation", "pedal", "timbre", "dynamics", "music_making", "mood", "interpretation"]


def test_a_run_on_the_categories_and_a_written_piece_fold_has_8_dimensions(percepiano, tmp_path):
    folds = tmp_path / "written_piece.json"
    folds.write_text(json.dumps(builtin_fold_file(percepiano.segments, "piece")))
    config = ExperimentConfig.resolve({
        "model": {"name": "han", "hidden_size": 16, "num_heads": 4},
        "data": {"labels": "percepiano_categories", "split": str(folds), "fold": 1, "max_train_segments": 48,
                 "eval_batch_size": 64},
        "train": {"max_epochs": 1, "lr": 1e-3}})
    result = train_run(config, out_dir=tmp_path / "run", verbose=False)
    assert result.status == "completed"
    assert [k.removeprefix("val/r2/") for k in result.metrics if k.startswith("val/r2/")] == CATEGORIES
    assert all(np.isfinite(result.metrics[f"test/pairwise_acc/{d}"]) for d in CATEGORIES)
    assert not any(k.startswith("val/std_score") for k in result.metrics)  # composites have no rater std
    fold = percepiano.fold("piece", 1)
    predictions = pd.read_parquet(tmp_path / "run" / "predictions.parquet")
    assert predictions.filter(like="pred/").shape == (len(fold.validation) + len(fold.test), 8)
    assert set(predictions.loc[predictions["stage"] == "val", "segment_id"]) == set(fold.validation)
    resolved = yaml.safe_load((tmp_path / "run" / "resolved.yaml").read_text())
    inputs = resolved["provenance"]["inputs"]
    assert inputs["data.split"]["path"] == str(folds) and inputs["data.split"]["sha256"].startswith("sha256:")
    assert inputs["data.labels"]["path"].endswith("percepiano_categories.yaml")
    assert "timing " in final_table(result.metrics) and "pedal_clean_to_blurred" not in final_table(result.metrics)


def test_allowed_piece_leakage_is_a_warning_line_in_the_run_summary(percepiano, tmp_path):
    folds = tmp_path / "written_performer.json"
    folds.write_text(json.dumps(builtin_fold_file(percepiano.segments, "performer")))
    config = ExperimentConfig.resolve({
        "model": {"name": "bilstm_baseline", "hidden_size": 16},
        "data": {"split": str(folds), "allow_piece_leakage": True, "max_train_segments": 32, "eval_batch_size": 64},
        "train": {"max_epochs": 1, "lr": 1e-3}})
    result = train_run(config, out_dir=tmp_path / "run", verbose=False)
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["warnings"] == result.warnings and len(result.warnings) == 1  # fold 0's line
    assert "fold 0: piece leakage: 99 of 99 validation/test pieces" in result.warnings[0]
    assert final_table(result.metrics, result.warnings).splitlines()[-1].startswith("WARNING")
    assert len([k for k in result.metrics if k.startswith("val/r2/")]) == 19
