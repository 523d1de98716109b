"""Models on frames end to end on real data: frames exported from a pianoeval encoder, both
frames models trained one epoch, the frames space swept, and docs/frames.md's worked example
(export, the 8 categories, a written piece fold file, runners/ablate.py) run tiny."""

import re
import runpy
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from pianoeval.ablation import load_run
from pianoeval.data.frames import content_hash
from pianoeval.errors import ConfigError
from pianoeval.experiment import ExperimentConfig
from pianoeval.paths import REPO_ROOT
from pianoeval.train import train_run

SMALL = {"z_dim": 16, "head_hidden": 16, "pool_heads": 2}


def tiny(name: str, frames: str, **model) -> ExperimentConfig:
    return ExperimentConfig.resolve({
        "model": {"name": name, **SMALL, **model}, "data": {"frames": frames, "batch_size": 8, "eval_batch_size": 64},
        "train": {"max_epochs": 1, "lr": 1e-3, "lambda_rank": 0.3}})


@pytest.mark.parametrize("name,model", [("frames_probe", {}),
                                        ("frames_transformer", {"layers": 1, "width": 16, "heads": 2})])
def test_both_frames_models_train_on_exported_frames_and_record_the_frames_file(name, model, exported_frames,
                                                                                tmp_path, capsys):
    config = tiny(name, exported_frames, **model)
    result = train_run(config, tmp_path, threads=1)
    assert result.status == "completed" and result.epochs_run == 1, result.error
    for key in ("val/r2", "val/pairwise_acc", "test/r2", "test/pairwise_acc"):
        assert np.isfinite(result.metrics[key]), key
    out = capsys.readouterr().out
    assert "segments without frames skipped: train" in out  # the export covers ~150 of 1,202 segments
    predictions = pd.read_parquet(tmp_path / "predictions.parquet")
    assert 0 < (predictions["stage"] == "val").sum() < 175
    resolved = yaml.safe_load((tmp_path / "resolved.yaml").read_text())
    assert resolved["data"]["frames"] == exported_frames
    assert resolved["provenance"]["inputs"]["data.frames"] == {"path": exported_frames,
                                                               "sha256": content_hash(exported_frames)}
    rerun = ExperimentConfig.resolve({k: v for k, v in resolved.items() if k != "provenance"})
    assert rerun.to_dict() == config.to_dict()  # resolved.yaml alone reruns it


def test_frames_that_cover_too_few_segments_of_the_fold_are_refused(exported_frames, tmp_path):
    import torch

    from pianoeval.data.frames import write_frames
    from pianoeval.models.datamodules import FramesDataModule

    frames = torch.load(exported_frames, weights_only=True)
    one = sorted(frames)[0]
    path = tmp_path / "one.pt"
    write_frames(path, {one: frames[one].numpy()})
    with pytest.raises(ConfigError, match="has frames for [01] (train|validation) segments"):
        FramesDataModule(tiny("frames_probe", str(path)), warn=lambda msg: None).setup()


@pytest.mark.parametrize("part", ["train", "validation", "test"])
def test_frames_missing_for_one_part_of_the_fold_are_refused_before_training(percepiano, part, tmp_path, monkeypatch):
    """Every part needs 2 segments with frames; a test part without any crashed after training."""
    from pianoeval.data.frames import write_frames
    from pianoeval.models.datamodules import FramesDataModule

    monkeypatch.setattr("pianoeval.data.frames.cache_root", lambda: tmp_path / "cache")
    left_out = set(getattr(percepiano.fold("performer", 0), part))
    rng = np.random.default_rng(0)
    path = tmp_path / "frames.pt"
    write_frames(path, {s.segment_id: rng.standard_normal((3, 4)).astype(np.float32)
                        for s in percepiano.segments if s.segment_id not in left_out})
    with pytest.raises(ConfigError, match=f"has frames for 0 {part} segments of performer fold 0"):
        FramesDataModule(tiny("frames_probe", str(path)), warn=lambda msg: None).setup()


CATEGORIES = ["timing", "articulation", "pedal", "timbre", "dynamics", "music_making", "mood", "interpretation"]
# the worked example of docs/frames.md ("Your frames, the 8 categories and a piece fold file"), tiny
EXAMPLE_TINY = ["folds=[0,1]", "seeds=[0]", "budget.max_epochs=1", "model.z_dim=16", "model.head_hidden=16",
                "model.pool_heads=2", "data.eval_batch_size=64", "reference_baselines=[]"]


def _runner(args: list[str], tmp_path) -> str:
    """``python runners/<args>`` as a user runs it, in ``tmp_path``; its stdout."""
    done = subprocess.run([sys.executable, str(REPO_ROOT / "runners" / args[0]), *args[1:]], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def _ablate(args: list[str], tmp_path, monkeypatch) -> int:
    """``python runners/ablate.py <args>`` in this process (its parser and main), on the test
    session's Ray rather than a second one on the same two cores; its exit code."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["runners/ablate.py", *args])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(REPO_ROOT / "runners" / "ablate.py"), run_name="__main__")
    return stop.value.code


def test_the_worked_example_exports_frames_and_compares_the_models_on_8_categories_and_a_piece_fold_file(
        ray_session, tmp_path, monkeypatch):
    # 1. a 4-fold piece split as a folds file, audited; 2. frames of a pianoeval encoder
    assert "the piece split, 4 folds" in _runner(["check_split.py", "--write", "piece", "--out", "piece_4fold.json"],
                                                 tmp_path)
    assert "every fold passes" in _runner(["check_split.py", "piece_4fold.json", "--labels", "percepiano_categories"],
                                          tmp_path)
    out = _runner(["export_frames.py", "--model", "note_sa", "--set", "model.hidden_size=8", "--set",
                   "model.num_heads=2", "--limit", "150", "--no-progress", "--out", "note_sa.pt"], tmp_path)
    assert "16 wide" in out and (tmp_path / "note_sa.pt").is_file()

    # 3. frames_probe vs frames_transformer on them, the 8 categories as labels, the written folds
    spec = ["frames_probe_vs_transformer", "--set", "data.frames=note_sa.pt", "--set",
            "data.labels=percepiano_categories", "--set", "data.split=piece_4fold.json"]
    tiny = [arg for item in EXAMPLE_TINY for arg in ("--set", item)]
    monkeypatch.setenv("PIANOEVAL_RESULTS", str(tmp_path / "results"))
    run = ["--only", "transformer_k1", "--storage", str(tmp_path), "--run-id", "example"]
    # --set reaches every variant: the probe has no width, so model.width is refused before anything runs
    assert _ablate(spec + tiny + ["--set", "model.width=16"] + run, tmp_path, monkeypatch) == 2
    assert _ablate(spec + tiny + run, tmp_path, monkeypatch) == 0

    run_dir = tmp_path / "ablations" / "frames_probe_vs_transformer" / "example"
    result = load_run(run_dir)
    trials = result.trials
    assert set(trials["variant"]) == {"probe", "transformer_k1"} and set(trials["fold"]) == {0, 1}
    assert (trials["status"] == "completed").all()
    assert [c.removeprefix("test/r2/") for c in trials.columns if c.startswith("test/r2/")] == CATEGORIES
    assert trials[[f"test/pairwise_acc/{c}" for c in CATEGORIES]].notna().all().all()
    assert list(result.per_dimension("test/r2").columns) == CATEGORIES
    # comparison.md: every per-dimension table has the 8 categories, each delta with its 95% CI
    comparison = (run_dir / "comparison.md").read_text()
    tables = comparison.split("### Per-dimension Δ ")[1:]
    assert len(tables) == 3  # the headline test/pairwise_acc, test/r2 and val/r2
    for table in tables:
        rows = [line for line in table.split("\n\n")[1].splitlines() if not line.startswith("| :")]
        assert rows[0] == "| dimension | transformer_k1 |"
        assert [row.split(" | ")[0].removeprefix("| ") for row in rows[1:]] == CATEGORIES
        assert all(re.fullmatch(r"\| \w+ \| [+-]\d+\.\d{3} \[[+-]\d+\.\d{3}, [+-]\d+\.\d{3}\] \|", row)
                   for row in rows[1:]), rows
    assert "| **probe** | 2 |" in comparison and "95% CI" in comparison
    assert "timing_stable_to_unstable" not in comparison
    # each run records its three input files with their hashes
    resolved = yaml.safe_load(next(run_dir.glob("trial_*-probe-fold1-*/run/resolved.yaml")).read_text())
    inputs = resolved["provenance"]["inputs"]
    assert inputs["data.split"]["path"] == str(tmp_path / "piece_4fold.json") and resolved["data"]["fold"] == 1
    assert inputs["data.labels"]["path"].endswith("percepiano_categories.yaml")
    assert inputs["data.frames"] == {"path": str(tmp_path / "note_sa.pt"), "sha256": content_hash(tmp_path / "note_sa.pt")}


def test_the_frames_space_needs_data_frames_and_sweeps_on_exported_frames(ray_session, exported_frames, tmp_path):
    from pianoeval.sweep import SweepOptions, load_space, run_sweep

    with pytest.raises(ConfigError, match=r"frames\.yaml: data\.frames: required by model frames_transformer"):
        load_space("frames")
    tiny_budget = {"data.frames": exported_frames, "budget.max_epochs": 1, "budget.num_samples": 2,
                   "budget.grace_period": 1, "model.z_dim": 16, "model.head_hidden": 16, "model.pool_heads": 2,
                   "data.eval_batch_size": 64}
    space = load_space("frames", tiny_budget)
    assert space.base.model_name == "frames_transformer" and space.base.data.frames == exported_frames
    result = run_sweep(space, SweepOptions(storage=str(tmp_path), print_fn=lambda line: None))
    trials = pd.read_parquet(result.run_dir / "trials.parquet")
    assert len(trials) == 2 and set(trials["status"]) <= {"completed", "pruned"}
    assert trials["best/val/pairwise_acc"].notna().all() and trials["config/model.layers"].between(1, 4).all()
