"""A folds file without a test list (its "test" is optional): every data module trains and
validates on it, the run says it has no test scores, and what needs test scores refuses it up
front. One tiny real run per registered data module, on the real bundled data."""

import json

import numpy as np
import pandas as pd
import pytest

from pianoeval.ablation import load_ablation
from pianoeval.ablation.staged import load_staged
from pianoeval.data.audit import write_split
from pianoeval.errors import ConfigError
from pianoeval.experiment import ExperimentConfig
from pianoeval.models.registry import get_model, list_models
from pianoeval.paths import REPO_ROOT
from pianoeval.train import train_run

HEADS = {"z_dim": 16, "head_hidden": 16, "pool_heads": 2}
AUDIO = {"soundfonts": ["timgm6mb"], "eval_soundfont": "timgm6mb", "max_seconds": 3.0, "max_eval_segments": 8,
         "workers": 1}
SYMBOLIC = {"hidden_size": 16, "num_heads": 2, "num_layers": 1, **HEADS}


def models(backbone: str, frames: str) -> dict[str, dict]:
    """One model of each data module, tiny: its model block and data block."""
    return {
        "music_mean": {},
        "ridge_probe": {},
        "note_sa": {"model": {"hidden_size": 16, "num_heads": 4}},
        "frames_probe": {"model": HEADS, "data": {"frames": frames}},
        "s1_remi": {"model": SYMBOLIC},
        "s2_gnn": {"model": SYMBOLIC},
        "s2h_hetero": {"model": SYMBOLIC},
        "s3_continuous": {"model": SYMBOLIC},
        "a1_lora": {"model": {**HEADS, "backbone_path": backbone, "audio": AUDIO}},
        "fusion_f2_concat": {"model": {**HEADS, "fusion_dim": 8, "fusion_heads": 2,
                                       "audio_encoder": {"name": "a1_lora", "backbone_path": backbone, "audio": AUDIO},
                                       "symbolic_encoder": {"name": "s2_gnn", **SYMBOLIC}}},
    }


@pytest.fixture(scope="module")
def no_test_folds(tmp_path_factory) -> str:
    """pianoeval's performer split written as a folds file, its shared test list removed."""
    folder = tmp_path_factory.mktemp("folds")
    write_split("performer", folder / "performer.json", print_fn=lambda line: None)
    folds = json.loads((folder / "performer.json").read_text())
    folds.pop("test")
    path = folder / "no_test.json"
    path.write_text(json.dumps(folds))
    return str(path)


def test_every_data_module_has_a_case_here():
    covered = {get_model(name).datamodule for name in models("", "")}
    registered = {get_model(name).datamodule for name in list_models()}
    assert registered <= covered, sorted(registered - covered)


@pytest.mark.parametrize("name", list(models("", "")))
def test_a_fold_without_test_trains_and_is_judged_on_validation_only(name, no_test_folds, tiny_backbone,
                                                                     exported_frames, tmp_path, monkeypatch):
    monkeypatch.setattr("pianoeval.fusion.frames.cache_root", lambda: tmp_path / "fusion-frames")
    case = models(tiny_backbone, exported_frames)[name]
    config = ExperimentConfig.resolve({
        "model": {"name": name, **case.get("model", {})},
        "data": {"split": no_test_folds, "fold": 0, "allow_piece_leakage": True, "max_train_segments": 12,
                 "batch_size": 4, "eval_batch_size": 32, **case.get("data", {})},
        "train": {"max_epochs": 1, "lr": 1e-3}})
    result = train_run(config, tmp_path / "run", threads=1, verbose=False)
    assert result.status == "completed", result.error
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert np.isfinite(metrics["val/r2"]) and not [k for k in metrics if k.startswith("test/")]
    assert f"{no_test_folds}: fold 0 has no test list" in " ".join(metrics["warnings"])
    assert set(pd.read_parquet(tmp_path / "run" / "predictions.parquet")["stage"]) == {"val"}


def test_what_needs_test_scores_refuses_a_fold_without_test_in_one_line(no_test_folds):
    with pytest.raises(ConfigError, match=r"han_incremental\.yaml: metrics: test/r2 needs a test set, but .*"
                                          r"no_test\.json fold 0 has no test list; compare on validation"):
        load_ablation("han_incremental", {"data.split": no_test_folds, "data.allow_piece_leakage": True})
    spec = load_ablation("han_incremental", {"data.split": no_test_folds, "data.allow_piece_leakage": True,
                                             "metrics": ["val/r2", "val/pairwise_acc"]})
    assert spec.metrics == ("val/r2", "val/pairwise_acc")
    with pytest.raises(ConfigError, match=r"staged_elimination\.yaml: stages\.round1: metrics: test/"):
        load_staged(REPO_ROOT / "ablations" / "staged_elimination.yaml",
                    {"data.split": no_test_folds, "data.allow_piece_leakage": True})
