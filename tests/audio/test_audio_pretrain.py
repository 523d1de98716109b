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
