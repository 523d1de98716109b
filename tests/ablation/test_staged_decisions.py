"""Staged elimination's decisions, wired: a stage's rule reads the runs' per-epoch histories
(the training itself stubbed: trial folders with run/history.csv, as Tune leaves them)."""

import json
import textwrap

import pandas as pd

from pianoeval.ablation import runner
from pianoeval.ablation.staged import load_staged, run_staged

SPEC = """
candidates:
  best: {track: symbolic, config: {model: {name: bilstm_baseline}}}
  early: {track: symbolic, config: {model: {name: note_sa}}}
  hopeless: {track: symbolic, config: {model: {name: han}}}
stages:
  round1:
    folds: [0]
    budget: {max_epochs: 5, asha_grace_period: 1, asha_metric: val/pairwise_acc}
    rule: {name: within_track_gap, metric: val/pairwise_acc, max_gap: 0.10}
seeds: [0]
"""
# variant -> (status, per-epoch val/pairwise_acc); the trials table reports the last value
HISTORIES = {"best": ("completed", [0.62, 0.66, 0.70, 0.74, 0.80]), "early": ("pruned", [0.60]),
             "hopeless": ("pruned", [0.45])}


def fake_trial_set(spec, stage_dir, options):
    rows = []
    for variant, (status, values) in HISTORIES.items():
        folder = stage_dir / f"trial_{variant}-fold0-seed0"
        (folder / "run").mkdir(parents=True)
        pd.DataFrame({"epoch": range(1, len(values) + 1), "val/pairwise_acc": values}).to_csv(
            folder / "run" / "history.csv", index=False)
        rows.append({"variant": variant, "fold": 0, "seed": 0, "status": status, "eval_only": False,
                     "epochs_run": len(values), "trial_dir": folder.name, "val/pairwise_acc": values[-1]})
    return pd.DataFrame(rows)


def test_round1_compares_a_stopped_candidate_at_its_epoch_and_records_why(tmp_path, monkeypatch):
    from pianoeval.ablation import compare

    path = tmp_path / "screen.yaml"
    path.write_text(textwrap.dedent(SPEC))
    monkeypatch.setattr(runner, "run_trial_set", fake_trial_set)
    monkeypatch.setattr(compare, "load_run", lambda stage_dir: None)
    monkeypatch.setattr(compare, "comparison_markdown", lambda run, description: "")
    lines = []
    state = run_staged(load_staged(path), tmp_path / "run", runner.AblationOptions(print_fn=lines.append),
                       print_fn=lines.append)
    round1 = state["stages"]["round1"]
    # early: 0.20 behind best's final value, but 0.02 behind it at epoch 1, where ASHA stopped it
    assert round1["kept"] == ["best", "early"] and list(round1["dropped"]) == ["hopeless"]
    assert "[staged] round1: dropped hopeless: 0.1700 behind best at epoch 1 on val/pairwise_acc " \
           "(0.4500 vs 0.6200), more than 0.1" in lines
    assert "[staged] round1: kept early: 0.0200 behind best at epoch 1 on val/pairwise_acc " \
           "(0.6000 vs 0.6200), within 0.1" in lines
    assert json.loads((tmp_path / "run" / "stages.json").read_text())["stages"]["round1"]["notes"] == round1["notes"]
    assert "- kept early: 0.0200 behind best at epoch 1" in (tmp_path / "run" / "elimination.md").read_text()
