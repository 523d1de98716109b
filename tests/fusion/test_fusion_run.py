"""Fusion end to end on real PercePiano: frozen encoders' frames cached once, every variant
trains one epoch (tiny encoders, a dozen training segments)."""

import numpy as np
import pandas as pd
import pytest
import torch

from pianoeval.data import LABEL_NAMES
from pianoeval.errors import ConfigError, DataError
from pianoeval.experiment import ExperimentConfig
from pianoeval.fusion.data import FusionDataModule
from pianoeval.train import train_run

AUDIO = {"soundfonts": ["timgm6mb"], "eval_soundfont": "timgm6mb", "max_seconds": 3.0, "max_eval_segments": 8,
         "workers": 1, "augment": {"rir_bank_size": 2}}
SYMBOLIC = {"name": "s2_gnn", "hidden_size": 16, "num_heads": 2, "num_layers": 1, "z_dim": 16, "head_hidden": 16}


@pytest.fixture(scope="module")
def backbone(tiny_backbone):
    return tiny_backbone


@pytest.fixture(autouse=True)
def results(tmp_path_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("PIANOEVAL_RESULTS", str(tmp_path / "results"))
    # fusion frames in a folder of this module's own (renders and graphs stay in the shared cache)
    frames = tmp_path_factory.getbasetemp() / "fusion-frames"
    monkeypatch.setattr("pianoeval.fusion.frames.cache_root", lambda: frames)


def tiny(name, backbone, tiers=("T1",), train=None, **model):
    return ExperimentConfig.resolve({
        "model": {"name": name, "z_dim": 16, "head_hidden": 16, "pool_heads": 2, "fusion_dim": 8, "fusion_heads": 2,
                  "audio_encoder": {"name": "a1_lora", "backbone_path": backbone, "audio": AUDIO},
                  "symbolic_encoder": SYMBOLIC, **model},
        "data": {"max_train_segments": 12, "batch_size": 4, "eval_batch_size": 16, "tiers": list(tiers)},
        "train": {"max_epochs": 1, "lr": 1e-3, "lambda_rank": 0.5, **(train or {})}})


@pytest.mark.parametrize("name", ["fusion_audio_only", "fusion_symbolic_only", "fusion_f1_xattn", "fusion_f2_concat",
                                  "fusion_f3_gated", "fusion_score"])
def test_every_fusion_variant_trains_on_real_frames_and_logs_its_diagnostics(name, backbone, tmp_path):
    result = train_run(tiny(name, backbone), tmp_path / "run", threads=1, progress=False)
    assert result.status == "completed" and result.epochs_run == 1, result.error
    for key in ("val/r2", "val/pairwise_acc", "test/r2", "val/robust_pearson"):
        assert np.isfinite(result.metrics[key]), key
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    expected = {"fusion_f3_gated": [f"diag/gate_mean/{LABEL_NAMES[0]}", f"diag/gate_std/{LABEL_NAMES[-1]}", "diag/alignment_cos"],
                "fusion_f1_xattn": ["diag/xattn_entropy/audio_to_symbolic", "diag/xattn_entropy/symbolic_to_audio"],
                "fusion_f2_concat": ["diag/contribution/audio", "diag/alignment_cos"],
                "fusion_score": ["diag/score_alignment_cos"]}.get(name, [])
    assert set(expected) <= set(history.columns), sorted(history.columns)


def test_frames_are_computed_once_and_read_back_from_the_cache(backbone, capsys):
    first = FusionDataModule(tiny("fusion_f2_concat", backbone), progress=False)
    first.setup()
    capsys.readouterr()
    again = FusionDataModule(tiny("fusion_f3_gated", backbone), progress=False)  # other variant, same encoders
    again.setup()
    out = capsys.readouterr().out
    assert "cached in" not in out  # nothing recomputed
    sid = again.train_set.entries[0].item_id
    np.testing.assert_array_equal(first.symbolic.get(sid), again.symbolic.get(sid))
    assert len(first.train_set) == 12 and first.input_dim == (32, 16)
    other = FusionDataModule(tiny("fusion_f3_gated", backbone, symbolic_encoder={**SYMBOLIC, "hidden_size": 8}),
                             progress=False)
    other.setup()
    assert other.input_dim == (32, 8) and "symbolic frames" in capsys.readouterr().out  # new encoder: new frames


def test_t4_batches_carry_augmented_audio_with_the_same_midi(backbone):
    module = FusionDataModule(tiny("fusion_f3_gated", backbone, tiers=("T1", "T4"), train={"lambda_invariance": 1.0}),
                              progress=False)
    module.setup()
    batch = next(iter(module.train_dataloader()))
    assert batch.augmented is not None
    assert torch.equal(batch.augmented.symbolic, batch.symbolic)
    assert not torch.equal(batch.augmented.audio, batch.audio)


def test_a_trained_symbolic_run_is_loaded_as_the_frozen_encoder(backbone, tmp_path):
    encoder_run = ExperimentConfig.resolve({"model": SYMBOLIC, "data": {"max_train_segments": 12},
                                            "train": {"max_epochs": 1}})
    train_run(encoder_run, tmp_path / "s2", threads=1, progress=False)
    with_weights = FusionDataModule(tiny("fusion_f2_concat", backbone, symbolic_checkpoint=str(tmp_path / "s2")),
                                    progress=False)
    with_weights.setup()
    fresh = FusionDataModule(tiny("fusion_f2_concat", backbone), progress=False)
    fresh.setup()
    sid = fresh.train_set.entries[0].item_id
    assert not np.array_equal(with_weights.symbolic.get(sid), fresh.symbolic.get(sid))
    with pytest.raises(DataError, match="symbolic_checkpoint: .*does not exist"):
        FusionDataModule(tiny("fusion_f2_concat", backbone, symbolic_checkpoint=str(tmp_path / "nope")),
                         progress=False).setup()
    with pytest.raises(ConfigError, match="does not fit the encoder config"):
        FusionDataModule(tiny("fusion_f2_concat", backbone, symbolic_checkpoint=str(tmp_path / "s2"),
                              symbolic_encoder={**SYMBOLIC, "hidden_size": 8}), progress=False).setup()


def test_a_han_family_model_is_a_symbolic_encoder_but_cannot_read_a_score(backbone, tmp_path):
    han = {"name": "han", "hidden_size": 8}
    result = train_run(tiny("fusion_f3_gated", backbone, symbolic_encoder=han), tmp_path / "run", threads=1)
    assert result.status == "completed", result.error
    with pytest.raises(ConfigError, match="score-conditioned fusion needs an encoder of MIDI"):
        FusionDataModule(tiny("fusion_score", backbone, symbolic_encoder=han), progress=False).setup()


def test_tiers_without_paired_frames_are_refused():
    with pytest.raises(ConfigError, match=r"\['T3'\] not available for fusion"):
        FusionDataModule(ExperimentConfig.resolve({"model": {"name": "fusion_f3_gated"}, "data": {"tiers": ["T1", "T3"]}}))
