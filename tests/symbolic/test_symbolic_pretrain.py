"""Every symbolic encoder pre-trains for real on ASAP windows, then fine-tunes from its
checkpoint through ``train_run`` on the real PercePiano fold."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from pianoeval.errors import ConfigError
from pianoeval.experiment import ExperimentConfig
from pianoeval.symbolic.pretrain import PretrainConfig, corpus_datasets, pretrain
from pianoeval.symbolic.sources import percepiano_data
from pianoeval.train import train_run

PIECES = ("Bach/Fugue/bwv_848", "Bach/Prelude/bwv_848", "Bach/Fugue/bwv_863")  # 9 + 9 + 3 performances
TINY = {"hidden_size": 16, "num_heads": 4, "num_layers": 1}
MODELS = {"s1": "s1_remi", "s2": "s2_gnn", "s2h": "s2h_hetero", "s3": "s3_continuous"}


@pytest.mark.asap
@pytest.mark.parametrize("encoder", ["s1", "s2", "s2h", "s3"])
def test_pretrain_a_few_steps_then_fine_tune_one_epoch(encoder, tmp_path, monkeypatch):
    monkeypatch.setenv("PIANOEVAL_RESULTS", str(tmp_path))
    config = PretrainConfig(encoder=encoder, model=TINY, pieces=PIECES, steps=4, batch_size=4, eval_every=2,
                            validation_items=8, lambda_contrastive=0.1 if encoder == "s3" else 0.0,
                            cross_distractors=4 if encoder == "s3" else 0,
                            lambda_reconstruct=0.5 if encoder == "s3" else 0.0,
                            lambda_performance=0.5 if encoder == "s1" else 0.0)
    result = pretrain(config, progress=False, log=lambda m: None)
    assert result.weights.parent.parent == tmp_path / "pretrained" / "symbolic" / encoder
    meta = json.loads((result.weights.parent / "config.json").read_text())
    assert meta["steps"] == 4 and meta["corpus_items"] > 0 and np.isfinite(meta["final_val_loss"])
    history = pd.read_csv(result.weights.parent / "history.csv")
    assert list(history["step"]) == [2, 4] and "val_loss" in history
    if encoder == "s3":
        assert "cross_performer" in history  # the cross-performer InfoNCE ran on grouped batches
        assert {"reconstruct", "val_reconstruct"} <= set(history) and history["reconstruct"].notna().all()
    if encoder == "s1":
        assert {"same_performance", "performance_acc", "val_same_performance"} <= set(history)  # two views per window
    saved = torch.load(result.weights, weights_only=True)

    run = ExperimentConfig.resolve({"model": {"name": MODELS[encoder], **TINY, "pretrained": True},
                                    "data": {"max_train_segments": 16, "eval_batch_size": 64},
                                    "train": {"max_epochs": 1, "lr": 1e-3}})
    from pianoeval.train.module import PerformanceModule

    module = PerformanceModule(run, meta["input_dim"])
    assert all(torch.equal(saved[k], v) for k, v in module.model.encoder.state_dict().items())
    outcome = train_run(run, out_dir=tmp_path / "run", verbose=False)
    assert outcome.status == "completed" and outcome.epochs_run == 1
    assert np.isfinite(outcome.metrics["val/pairwise_acc"]) and np.isfinite(outcome.metrics["test/r2"])


def test_percepiano_pretraining_can_keep_to_one_folds_training_segments():
    config = PretrainConfig(encoder="s3", sources=("percepiano",), percepiano_fold=("performer", 0),
                            validation_items=0)
    lines = []
    train, _ = corpus_datasets("curves", config, log=lines.append)
    fold = percepiano_data().fold("performer", 0)
    seen = {m.item_id for m in train.metas}
    assert seen <= set(fold.train) and len(seen) > 0.9 * len(fold.train)
    assert not seen & (set(fold.validation) | set(fold.test))
    assert "validation and test performances stay unseen" in lines[0]
    everything, _ = corpus_datasets("curves", config.model_copy(update={"percepiano_fold": None}), log=lines.append)
    assert {m.item_id for m in everything.metas} & set(fold.test)  # without it, test performances are in
    assert "validation and test folds' included" in lines[2]
    with pytest.raises(ConfigError, match=r"percepiano_fold 9: 9 is out of range \(allowed: 0-3\)"):
        corpus_datasets("curves", config.model_copy(update={"percepiano_fold": ("performer", 9)}), log=lines.append)
