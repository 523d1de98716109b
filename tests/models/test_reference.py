"""The closed-form reference predictors: their arithmetic on a hand-made table, and their
figures on the real performer split (music_mean: test R2 0.355 on fold 0, pairwise at chance)."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from pianoeval.data import LabelledItems
from pianoeval.experiment import ExperimentConfig, load_experiment
from pianoeval.models.reference import GlobalMean, MeanConfig, MusicMean, RidgeProbe, RidgeProbeConfig
from pianoeval.train import train_run


def _items(labels, groups) -> LabelledItems:
    labels = np.asarray(labels, dtype=np.float64)
    return LabelledItems(tuple(f"s{i}" for i in range(len(labels))), labels, np.zeros_like(labels),
                         np.asarray(groups, dtype=np.int64))


def test_global_and_music_means_on_a_hand_made_table():
    train = _items([[0.1, 0.5], [0.3, 0.7], [0.8, 0.2], [0.6, 0.6]], groups=[0, 0, 1, 2])
    test = _items([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]], groups=[0, 2, 5])  # excerpt 5 is not in training
    global_mean = GlobalMean(MeanConfig())
    global_mean.fit(train)
    predictions, counts = global_mean.predict(test)
    np.testing.assert_allclose(predictions, [[0.45, 0.5]] * 3)
    assert counts == {}

    music_mean = MusicMean(MeanConfig())
    assert music_mean.fit(train) == {"excerpts": 3.0}
    predictions, counts = music_mean.predict(test)
    np.testing.assert_allclose(predictions, [[0.2, 0.6], [0.6, 0.6], [0.45, 0.5]])
    assert counts == {"fallback_items": 1.0}


def test_ridge_probe_fits_pooled_notes_and_drops_columns_that_do_not_vary():
    rng = np.random.default_rng(0)
    loudness = rng.uniform(-1, 1, size=60)  # one segment-level quantity the label follows
    # per segment: 5-12 notes x 3 columns: loudness + noise, pure noise, and a constant
    notes = tuple(np.column_stack([v + 0.1 * rng.standard_normal(n), rng.standard_normal(n), np.ones(n)])
                  for v, n in zip(loudness, rng.integers(5, 13, size=60)))
    labels = np.column_stack([0.5 + 0.2 * loudness, np.full(60, 0.4)])
    items = LabelledItems(tuple(f"s{i}" for i in range(60)), labels, np.zeros_like(labels),
                          np.arange(60), notes)
    probe = RidgeProbe(RidgeProbeConfig(alphas=[0.01, 1.0, 100.0]))
    fit = probe.fit(items.subset(range(40)))
    assert fit["columns"] + fit["columns_dropped"] == 6 and fit["columns_dropped"] == 2  # constant mean and std
    predictions, _ = probe.predict(items.subset(range(40, 60)))
    assert np.corrcoef(predictions[:, 0], labels[40:, 0])[0, 1] > 0.95


def test_music_mean_on_performer_fold_0_reproduces_the_reference_figure(tmp_path):
    config = ExperimentConfig.resolve({"model": {"name": "music_mean"}, "data": {"split": "performer", "fold": 0}})
    result = train_run(config, out_dir=tmp_path, verbose=False)
    assert result.status == "completed" and result.epochs_run == 1
    assert result.metrics["test/r2"] == pytest.approx(0.3552, abs=0.005)
    assert 0.45 <= result.metrics["test/pairwise_acc"] <= 0.55
    assert result.fit["test/fallback_items"] == 0  # every test excerpt is played in training on this split
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["test/r2"] == result.metrics["test/r2"] and summary["fit"]["train_items"] == 834
    predictions = pd.read_parquet(tmp_path / "predictions.parquet")
    assert len(predictions) == 175 + 193 and predictions.filter(like="pred/").shape[1] == 19
    assert len(pd.read_csv(tmp_path / "history.csv")) == 1
    saved = yaml.safe_load((tmp_path / "resolved.yaml").read_text())
    assert {"git_commit", "versions"} <= set(saved["provenance"])
    rerun = load_experiment(tmp_path / "resolved.yaml").to_dict() | {"provenance": None}
    assert rerun == config.to_dict() | {"provenance": None}
