"""runners/export_frames.py on real data: a trained run's weights, random init said so, and the
one-line errors (exit 2) for models without frames and bad options."""

import re
import runpy
import sys

import numpy as np
import pytest
import torch

from pianoeval.experiment import ExperimentConfig
from pianoeval.fusion.export import export_frames, select_segments
from pianoeval.paths import REPO_ROOT
from pianoeval.train import train_run

RUNNER = str(REPO_ROOT / "runners" / "export_frames.py")
TINY = {"model.hidden_size": 8, "model.num_heads": 2}


def run_runner(monkeypatch, *argv) -> int:
    monkeypatch.setattr(sys, "argv", [RUNNER, *argv])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(RUNNER, run_name="__main__")
    return exited.value.code


@pytest.mark.parametrize("argv,message", [
    (["--model", "no_such_model"], "unknown model 'no_such_model'"),
    (["--model", "frames_probe"], "frames_probe reads frames input and makes no frames of its own; export one of"),
    (["--model", "fusion_f3_gated"], "makes no frames of its own"),
    (["--model", "note_sa", "--layer", "1"], "--layer: backbone hidden states exist for the audio models only"),
    (["--model", "note_sa", "--checkpoint", "results/runs/no-such-run"], "--checkpoint: .*no-such-run does not exist"),
    (["--model", "note_sa", "--keys", "not_a_segment"], "--keys: 'not_a_segment' is not a PercePiano segment key"),
])
def test_bad_requests_are_one_line_errors_with_exit_2(argv, message, monkeypatch, tmp_path, capsys):
    assert run_runner(monkeypatch, *argv, "--out", str(tmp_path / "f.pt")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and re.search(message, err), err
    assert not (tmp_path / "f.pt").exists()


def test_a_trained_runs_weights_give_other_frames_than_random_init(monkeypatch, tmp_path, capsys):
    run = tmp_path / "run"
    config = ExperimentConfig.resolve({"model": {"name": "note_sa", "hidden_size": 8, "num_heads": 2},
                                       "data": {"max_train_segments": 16}, "train": {"max_epochs": 1, "lr": 1e-2}})
    train_run(config, run, threads=1, verbose=False)
    keys = "Beethoven_WoO80_var10_8bars_11_8,Beethoven_WoO80_var10_8bars_14_8"
    assert run_runner(monkeypatch, "--model", "note_sa", "--checkpoint", str(run), "--keys", keys,
                      "--out", str(tmp_path / "trained.pt"), "--no-progress") == 0
    assert "no --checkpoint" not in capsys.readouterr().out
    export_frames("note_sa", tmp_path / "random.pt", overrides=TINY, keys=keys.split(","), progress=False)
    assert "no --checkpoint: random-init weights" in capsys.readouterr().out
    trained = torch.load(tmp_path / "trained.pt", weights_only=True)
    random = torch.load(tmp_path / "random.pt", weights_only=True)
    assert sorted(trained) == sorted(random) == sorted(keys.split(","))
    for key in trained:
        assert trained[key].dtype == torch.float16 and trained[key].shape == random[key].shape
        assert trained[key].shape[1] == 16  # note_sa's readout: one frame per note, 2 x hidden_size wide
        assert not torch.equal(trained[key], random[key])
    # a relative --checkpoint is read from the working directory, like every other path (not the repository's)
    monkeypatch.chdir(tmp_path)
    assert run_runner(monkeypatch, "--model", "note_sa", "--checkpoint", "run", "--keys", keys,
                      "--out", "relative.pt", "--no-progress") == 0
    relative = torch.load(tmp_path / "relative.pt", weights_only=True)
    assert all(torch.equal(relative[key], trained[key]) for key in trained)
    with pytest.raises(Exception, match="holds a 'note_sa' model, not 'han'"):
        export_frames("han", tmp_path / "x.pt", checkpoint=str(run), progress=False)


def test_a_limit_keeps_whole_music_groups(percepiano):
    chosen = select_segments(percepiano.segments, 40, None)
    assert 40 <= len(chosen) < 80
    groups = {percepiano.by_id[s].score_key for s in chosen}
    members = [s.segment_id for s in percepiano.segments if s.score_key in groups]
    assert sorted(members) == chosen
    assert np.unique([percepiano.by_id[s].piece for s in chosen]).size > 1


KEYS = ["Beethoven_WoO80_var10_8bars_11_8", "Schubert_D935_no.3_4bars_2_1"]


def test_audio_backbone_hidden_state_k_and_the_audio_encoders_own_frames(tiny_backbone, tmp_path):
    audio = {"soundfonts": ["timgm6mb"], "eval_soundfont": "timgm6mb", "max_seconds": 3.0, "workers": 1}
    sets = {"model.backbone_path": tiny_backbone, "model.audio": audio}
    hidden = export_frames("a1_lora", tmp_path / "h1.pt", overrides=sets, keys=KEYS, layer=1, progress=False)
    encoder = export_frames("a1_lora", tmp_path / "enc.pt", overrides=sets, keys=KEYS, progress=False)
    assert hidden.segments == encoder.segments == 2 and hidden.width == encoder.width == 32  # the tiny backbone
    h1, top = (torch.load(tmp_path / name, weights_only=True) for name in ("h1.pt", "enc.pt"))
    assert sorted(h1) == KEYS and h1[KEYS[0]].shape == top[KEYS[0]].shape
    assert not torch.equal(h1[KEYS[0]], top[KEYS[0]])  # layer 1 vs the top of the adapted layers
    with pytest.raises(Exception, match="--layer: 9 is outside the backbone's hidden states 0-4"):
        export_frames("a1_lora", tmp_path / "x.pt", overrides=sets, keys=KEYS, layer=9, progress=False)


def test_the_s3_curves_encoder_exports_its_frames(tmp_path):
    small = {"model.hidden_size": 16, "model.num_heads": 2, "model.num_layers": 1}
    summary = export_frames("s3_continuous", tmp_path / "s3.pt", overrides=small, keys=KEYS, progress=False)
    frames = torch.load(tmp_path / "s3.pt", weights_only=True)
    assert sorted(frames) == KEYS and summary.width == frames[KEYS[0]].shape[1]
    assert all(torch.isfinite(v.float()).all() for v in frames.values())
