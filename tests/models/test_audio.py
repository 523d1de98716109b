"""A1-A3 train end to end on real rendered PercePiano audio (tiny backbone, 1 epoch)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from pianoeval.audio.source import source_of
from pianoeval.errors import ConfigError, DataError
from pianoeval.experiment import ExperimentConfig
from pianoeval.train import train_run

AUDIO = {"soundfonts": ["timgm6mb"], "eval_soundfont": "timgm6mb", "max_seconds": 3.0, "max_eval_segments": 6,
         "workers": 1, "augment": {"rir_bank_size": 2}}
ASAP = {"asap_max_pieces": 2, "asap_windows_per_performance": 1, "asap_window_seconds": 2.0}


@pytest.fixture(scope="module")
def backbone(tiny_backbone):
    return tiny_backbone


@pytest.fixture(autouse=True)
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("PIANOEVAL_RESULTS", str(tmp_path / "results"))  # A2's stage-1 checkpoints go here


def tiny(name, backbone, audio=None, train=None, tiers=("T1",), **model):
    return ExperimentConfig.resolve({
        "model": {"name": name, "backbone_path": backbone, "z_dim": 16, "head_hidden": 16, "pool_heads": 4,
                  "audio": {**AUDIO, **(audio or {})}, **model},
        "data": {"max_train_segments": 12, "batch_size": 4, "eval_batch_size": 16, "tiers": list(tiers)},
        "train": {"max_epochs": 1, "lr": 1e-3, **(train or {})}})


def _check_run(result, out_dir):
    assert result.status == "completed" and result.epochs_run == 1, result.error
    for key in ("val/r2", "val/pairwise_acc", "test/r2", "val/robust_pearson", "val/robust_pairwise_drop"):
        assert np.isfinite(result.metrics[key]), key
    history = pd.read_csv(out_dir / "history.csv")
    assert {"diag/trainable_share", "val/robust_pearson", "grad_norm/encoder"} <= set(history.columns)
    return history


def test_a1_lora_trains_with_ranking_and_reports_its_trainable_share(backbone, tmp_path, capsys):
    config = tiny("a1_lora", backbone, train={"lambda_rank": 0.5})
    result = train_run(config, out_dir=tmp_path / "a1", verbose=False)
    history = _check_run(result, tmp_path / "a1")
    assert "LoRA r=8 alpha=16 on layers 3-4" in capsys.readouterr().out
    assert 0 < history["diag/trainable_share"].iloc[0] < 0.1
    state = torch.load(tmp_path / "a1" / "model.pt", weights_only=True)
    assert any("lora_A" in k for k in state) and not any(k.startswith("encoder.backbone.conv.") for k in state)


@pytest.mark.asap
def test_a2_runs_stage_1_once_then_starts_stage_2_from_it(backbone, tmp_path, capsys):
    config = tiny("a2_staged", backbone, audio=ASAP, stage1_steps=2, stage1_passages_per_batch=2,
                  train={"lambda_contrastive": 0.1, "lambda_invariance": 0.1}, tiers=["T1", "T3", "T4"])
    result = train_run(config, out_dir=tmp_path / "a2", verbose=False)
    _check_run(result, tmp_path / "a2")
    out = capsys.readouterr().out
    assert "A2 stage 1: no checkpoint for these settings; running it now (2 steps)" in out
    record = json.loads(next((tmp_path / "results" / "pretrained" / "audio" / "a2_stage1").glob("*/config.json")).read_text())
    assert {"held_out_retrieval_before", "held_out_retrieval_after", "history"} <= set(record)
    history = pd.read_csv(tmp_path / "a2" / "history.csv")
    assert history["train/loss_contrastive"].iloc[0] > 0 and "train/loss_invariance" in history
    train_run(config, out_dir=tmp_path / "a2b", verbose=False)
    assert "A2 stage 1: starting stage 2 from" in capsys.readouterr().out


def test_a3_unfreezes_top_down_with_discriminative_learning_rates(backbone, tmp_path, capsys):
    config = tiny("a3_unfreeze", backbone, unfreeze_layers=3, layer_lr_decay=0.5, train={"max_epochs": 2})
    result = train_run(config, out_dir=tmp_path / "a3", verbose=False)
    assert result.status == "completed" and result.epochs_run == 2
    out = capsys.readouterr().out
    assert "epoch 0: layers 4-4 unfrozen" in out and "epoch 1: layers 3-4 unfrozen" in out
    shares = pd.read_csv(tmp_path / "a3" / "history.csv")["diag/trainable_share"].tolist()
    assert shares[1] > shares[0] > 0
    from pianoeval.models.audio import A3Config, AudioModel, UnfreezeEncoder

    model = AudioModel(UnfreezeEncoder(config.model_spec()), 19, config.model_spec())
    lrs = {g["name"]: g["lr"] for g in model.parameter_groups(1e-3)}
    assert lrs == {"layer4": 1e-3, "layer3": 5e-4, "layer2": 2.5e-4, "heads": 1e-3}
    assert isinstance(config.model_spec(), A3Config)


def test_frozen_base_stays_in_eval_mode_while_adapters_train(backbone):
    from pianoeval.models.audio import LoraEncoder

    encoder = LoraEncoder(tiny("a1_lora", backbone).model_spec()).train()
    assert encoder.training and not encoder.backbone.training
    norms = [m for m in encoder.backbone.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert norms and not any(m.training for m in norms)
    assert any(m.training for name, m in encoder.backbone.named_modules() if name.endswith("lora_dropout"))


def test_config_errors_name_the_key_and_the_fix(backbone, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="model.lora_layers"):
        from pianoeval.models.audio import LoraEncoder

        LoraEncoder(tiny("a1_lora", backbone, lora_layers=[2, 3]).model_spec())
    with pytest.raises(ConfigError, match="backbone_path: required for backbone 'muq'"):
        source_of(ExperimentConfig.resolve({"model": {"name": "a1_lora", "backbone": "muq"}}).model_spec())
    with pytest.raises(DataError, match="python runners/pretrain_audio.py --name not_built"):
        source_of(ExperimentConfig.resolve({"model": {"name": "a1_lora", "backbone_name": "not_built"}}).model_spec())
    with pytest.raises(ConfigError, match="soundfonts"):
        ExperimentConfig.resolve({"model": {"name": "a1_lora", "audio": {"soundfonts": ["steinway"]}}})
    from pianoeval.audio.data import AudioDataModule

    with pytest.raises(ConfigError, match="needs augmented views: add T4 to data.tiers"):
        AudioDataModule(tiny("a1_lora", backbone, train={"lambda_invariance": 0.5}))
    with pytest.raises(ConfigError, match=r"data.tiers: \['T2'\] are not available for audio"):
        AudioDataModule(tiny("a1_lora", backbone, tiers=["T1", "T2"]))
