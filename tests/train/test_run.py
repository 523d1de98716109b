"""Training on the real bundled data: every variant, determinism, divergence, outputs."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from pianoeval.experiment import ExperimentConfig, load_experiment
from pianoeval.models.registry import get_model, list_models
from pianoeval.train import train_run

TINY = {"hidden_size": 16, "num_heads": 4}


def tiny(name: str, **train) -> ExperimentConfig:
    return ExperimentConfig.resolve({
        "model": {"name": name, **TINY},
        "data": {"max_train_segments": 48, "eval_batch_size": 64},
        "train": {"max_epochs": 1, "lr": 1e-3, **train},
    })


# trained note models; audio / symbolic and the closed-form reference predictors have their own tests
NOTE_MODELS = [n for n in list_models() if get_model(n).input_kind == "notes" and get_model(n).fit == "gradient"]


@pytest.mark.parametrize("name", NOTE_MODELS)
def test_every_variant_trains_end_to_end_on_real_data(name, tmp_path):
    result = train_run(tiny(name), out_dir=tmp_path, verbose=False)
    assert result.status == "completed" and result.epochs_run == 1
    for key in ("val/r2", "val/pairwise_acc", "test/r2", "test/pairwise_acc", "val/loss"):
        assert np.isfinite(result.metrics[key]), key
    predictions = pd.read_parquet(tmp_path / "predictions.parquet")
    preds = predictions.filter(like="pred/").to_numpy()
    assert preds.shape == (175 + 193, 19)  # performer fold 0: validation 175, test 193
    assert ((preds > 0) & (preds < 1)).all()
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    history = pd.read_csv(tmp_path / "history.csv")
    assert {"train/loss", "val/loss", "val/r2", "diag/logits_std", "grad_norm/total"} <= set(history.columns)


def test_hierarchical_diagnostics_are_logged(tmp_path):
    result = train_run(tiny("han_total_cat"), out_dir=tmp_path, verbose=False)
    history = pd.read_csv(tmp_path / "history.csv")
    for key in ("diag/attn_entropy/beat", "diag/attn_entropy/measure", "diag/attn_entropy/readout",
                "diag/contribution/beat", "diag/contribution/measure", "val/pred_std_ratio", "val/collapsed_dims",
                "grad_norm/beat_lstm"):
        assert key in history.columns, key
    entropy = history["diag/attn_entropy/beat"].iloc[0]
    assert 0 <= entropy <= 1
    shares = [history[f"diag/contribution/{k}"].iloc[0] for k in ("note", "voice", "beat", "measure")]
    assert abs(sum(shares) - 1) < 1e-4
    assert result.status == "completed"


def test_same_seed_same_metrics(tmp_path):
    first = train_run(tiny("note_voice"), out_dir=tmp_path / "a", verbose=False)
    second = train_run(tiny("note_voice"), out_dir=tmp_path / "b", verbose=False)
    assert first.metrics == second.metrics


def test_resolved_yaml_alone_reruns_the_run(tmp_path):
    config = tiny("note_beat")
    train_run(config, out_dir=tmp_path, verbose=False)
    saved = yaml.safe_load((tmp_path / "resolved.yaml").read_text())
    assert {"git_commit", "versions", "device", "torch_threads"} <= set(saved["provenance"])
    assert load_experiment(tmp_path / "resolved.yaml").to_dict() | {"provenance": None} == config.to_dict() | {"provenance": None}


def test_non_finite_loss_stops_the_trial_with_a_clear_status(tmp_path, monkeypatch):
    import pianoeval.train.module as module

    monkeypatch.setattr(module, "regression_loss", lambda logits, labels: (logits * float("nan")).mean())
    result = train_run(tiny("note_sa"), out_dir=tmp_path, verbose=False)
    assert result.status == "diverged" and "training loss became nan at epoch 0, step 0" in result.error
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["status"] == "diverged" and summary["epochs_run"] == 0


def test_ranking_loss_with_grouped_batches(tmp_path):
    config = tiny("note_sa", lambda_rank=0.5).with_overrides({"data.batch_sampler": "grouped", "data.max_train_segments": 64})
    result = train_run(config, out_dir=tmp_path, verbose=False)
    history = pd.read_csv(tmp_path / "history.csv")
    assert result.status == "completed" and history["train/loss_ranking"].iloc[0] > 0


def test_resume_continues_the_history_and_a_stopped_run_can_be_evaluated(tmp_path):
    from pianoeval.train.run import evaluate_stopped_run

    train_run(tiny("note_sa"), out_dir=tmp_path, verbose=False)
    resumed = train_run(tiny("note_sa", max_epochs=2), out_dir=tmp_path, verbose=False,
                        resume_from=tmp_path / "checkpoints" / "last.ckpt")
    history = pd.read_csv(tmp_path / "history.csv")
    assert history["epoch"].tolist() == [1, 2]  # the first run's epoch kept, one more trained
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] + 1 == 2  # the last epoch, improved or not
    assert resumed.status == "completed"

    (tmp_path / "metrics.json").unlink()
    stopped = evaluate_stopped_run(tiny("note_sa", max_epochs=2), tmp_path)
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["status"] == "stopped" and summary["epochs_run"] == 2
    assert summary["best_epoch"] == stopped.best_epoch in (1, 2)
    assert summary["test/r2"] == pytest.approx(resumed.metrics["test/r2"])


def test_ctrl_c_or_sigterm_stops_a_run_cleanly_and_it_resumes(tmp_path, capsys, monkeypatch):
    """Lightning turns a KeyboardInterrupt (Ctrl-C; run_cli makes SIGTERM one) into exit(1) without a
    word; train_run raises it again, and runners/train.py prints the resume command, exit 130."""
    import runpy
    import sys

    import lightning as L

    from pianoeval.paths import REPO_ROOT

    class CtrlC(L.Callback):
        def on_train_epoch_start(self, trainer, module):
            if trainer.current_epoch == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(tiny("note_sa", max_epochs=2), out_dir=tmp_path / "run", verbose=False, callbacks=[CtrlC()])
    assert not (tmp_path / "run" / "metrics.json").exists()
    resumed = train_run(tiny("note_sa", max_epochs=2), out_dir=tmp_path / "run", verbose=False,
                        resume_from=tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert resumed.status == "completed" and pd.read_csv(tmp_path / "run" / "history.csv")["epoch"].tolist() == [1, 2]

    def stopped(config, out_dir, **kw):
        (out_dir / "resolved.yaml").parent.mkdir(parents=True, exist_ok=True)
        (out_dir / "resolved.yaml").write_text("model: {name: note_sa}\n")
        raise KeyboardInterrupt

    monkeypatch.setattr("pianoeval.train.run.train_run", stopped)
    out = tmp_path / "my run"
    monkeypatch.setattr(sys, "argv", ["runners/train.py", "--model", "note_sa", "--out", str(out), "--threads", "1"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(REPO_ROOT / "runners" / "train.py"), run_name="__main__")
    [line] = capsys.readouterr().err.splitlines()
    assert stop.value.code == 130
    assert "resume with: python " in line and "runners/train.py --config " in line, line
    assert line.endswith(f" --config '{out}/resolved.yaml' --out '{out}' --resume --threads 1"), line
