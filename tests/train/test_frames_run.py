"""Models on frames end to end on real data: frames exported from a pianoeval encoder, both
frames models trained one epoch, and the probe-vs-transformer ablation run tiny."""

import argparse

import numpy as np
import pandas as pd
import pytest
import yaml

from pianoeval.ablation import load_run
from pianoeval.ablation.cli import main as ablate
from pianoeval.data.frames import content_hash
from pianoeval.errors import ConfigError
from pianoeval.experiment import ExperimentConfig
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


def test_the_probe_vs_transformer_ablation_runs_on_exported_frames(ray_session, exported_frames, tmp_path):
    sets = ["budget.max_epochs=1", "folds=[0]", "seeds=[0]", "model.z_dim=16", "model.head_hidden=16",
            "model.pool_heads=2", f"data.frames={exported_frames}", "data.eval_batch_size=64", "reference_baselines=[]"]
    args = argparse.Namespace(name="frames_probe_vs_transformer", dry_run=False, no_estimate=True, resume=False,
                              run_id="test", address=None, storage=str(tmp_path), num_cpus=None, max_concurrent=None,
                              only=["transformer_k1"], set=sets + ["model.width=16", "model.heads=2"], until=None,
                              max_failures=2, connect_timeout=30.0, logger=None)
    with pytest.raises(ConfigError, match="width"):  # the probe has no width: --set applies to every variant
        ablate(args)
    args.set = sets
    assert ablate(args) == 0
    run_dir = tmp_path / "ablations" / "frames_probe_vs_transformer" / "test"
    run = load_run(run_dir)
    rows = run.trials.set_index("variant")
    assert set(rows.index) == {"probe", "transformer_k1"} and (rows["status"] == "completed").all()
    assert rows["test/pairwise_acc"].notna().all()
    assert "transformer_k1" in (run_dir / "comparison.md").read_text()
    assert list(run.deltas("test/pairwise_acc")["variant"]) == ["transformer_k1"]


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
