"""Self-supervised pre-training of the pianoeval backbone: runs, saves, reloads, records."""

import json

import pytest

from pianoeval.audio.backbones import BackboneSpec
from pianoeval.audio.checkpoint import load_backbone
from pianoeval.audio.pretrain import SSLConfig, pretrain_backbone


@pytest.mark.asap
def test_pretraining_saves_a_reusable_backbone_with_its_record(tmp_path):
    spec = BackboneSpec(hidden_size=32, num_heads=2, intermediate_size=64, conv_channels=8)
    config = SSLConfig(window_seconds=2.0, windows_per_performance=1, max_pieces=4, held_out_fraction=0.25,
                       soundfonts=("timgm6mb",), steps=4, passages_per_batch=2, warmup_steps=1)
    lines = []
    record = pretrain_backbone(tmp_path / "bb", spec, config, workers=1, progress=False, log=lines.append)
    saved = json.loads((tmp_path / "bb" / "config.json").read_text())
    assert saved["pretraining"]["history"][-1]["step"] == 4 and record["train_windows"] > 0
    assert 0 <= saved["pretraining"]["held_out_retrieval_after"] <= 1
    model = load_backbone(tmp_path / "bb")
    assert model.spec.db_std > 1 and model.spec.db_mean < 0  # log-mel statistics measured on the windows
    assert any(line.startswith("[pretrain] step 4/4") for line in lines)


def test_missing_pretrained_backbone_says_how_to_make_one(tmp_path, monkeypatch):
    from pianoeval.audio.source import backbone_source
    from pianoeval.errors import DataError

    monkeypatch.setenv("PIANOEVAL_RESULTS", str(tmp_path))
    with pytest.raises(DataError, match="make one with `python runners/pretrain_audio.py --name mine`"):
        backbone_source("pianoeval", "mine", None, "pretrained")


@pytest.mark.asap
def test_aligned_pretraining_learns_the_midi_targets_and_records_their_quality(tmp_path):
    spec = BackboneSpec(hidden_size=32, num_heads=2, intermediate_size=64, conv_channels=8)
    config = SSLConfig(window_seconds=3.0, windows_per_performance=1, max_pieces=5, held_out_fraction=0.2,
                       soundfonts=("timgm6mb",), steps=30, warmup_steps=2, items_per_batch=4,
                       contrastive_weight=0.0, aligned_weight=1.0, percepiano_split="performer",
                       percepiano_max_segments=6, lr=3e-3)
    lines = []
    record = pretrain_backbone(tmp_path / "bb", spec, config, workers=1, progress=False, log=lines.append,
                               command="python runners/pretrain_audio.py --objective aligned")
    aligned = record["aligned"]
    assert record["objective"] == "aligned 1" and record["percepiano_train_segments"] == 6
    assert aligned["train_items"] > record["percepiano_train_segments"] and aligned["held_out_items"] > 0
    quality = aligned["held_out_quality"]
    assert set(quality) >= {"r2/onsets", "r2/pedal", "r2_mean", "onset_average_precision", "onset_f1"}
    history = record["history"]
    assert history[-1]["curves"] < history[0]["curves"]  # the targets are learnable from the audio
    saved = json.loads((tmp_path / "bb" / "config.json").read_text())
    assert saved["pretraining"]["command"].endswith("--objective aligned")
    assert any("held-out alignment targets" in line for line in lines)
