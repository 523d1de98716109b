"""Reference predictors fitted in closed form: what R2 and pairwise accuracy mean on a split.

* ``global_mean``: every item gets the per-dimension mean of the training labels.
* ``music_mean``: every item gets the mean label of the training items that play the same
  music excerpt (same piece and segment number, ``Segment.score_key``: other performers);
  where the training set has no performance of that excerpt, the global mean, and the
  count of such items is reported. On the performer split every test excerpt is in
  training, so its R2 measures how much of a rating is "which music is this"; within one
  excerpt it predicts the same value for every performance, so its same-music pairwise
  accuracy is chance (0.5: ties score half).
* ``ridge_probe``: ridge regression on time-pooled note features (mean and std over each
  segment's notes of the matrix the HAN family reads), inputs standardised on the
  training set, alpha chosen by sklearn's ``RidgeCV`` (efficient leave-one-out) on the
  training set alone. Pooled columns that barely vary in training (std below
  ``min_std``, e.g. a score feature constant within most training segments) are dropped
  first: standardised, a float-noise std of 1e-7 turned one piece-split validation
  segment's value into 1e6 standard deviations and its prediction into nonsense.

Each is a registry entry with ``fit="closed_form"``: ``build`` returns a predictor with
``fit(train) -> notes`` and ``predict(items) -> (predictions, notes)`` over
``LabelledItems``, and ``train_run`` fits it in one step (no epochs, no weights file).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from sklearn.feature_selection import VarianceThreshold
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pianoeval.data.items import LabelledItems
from pianoeval.models.configs.reference import MeanConfig, RidgeProbeConfig


class ReferencePredictor(Protocol):
    def fit(self, train: LabelledItems) -> dict[str, float]:
        """Fit on the training items; returns what the fit chose (e.g. ``alpha``)."""

    def predict(self, items: LabelledItems) -> tuple[np.ndarray, dict[str, float]]:
        """``[N, L]`` predictions on the label scale, and counts worth reporting (e.g. fallbacks)."""


class GlobalMean:
    def __init__(self, config: MeanConfig):
        self.mean: np.ndarray | None = None

    def fit(self, train: LabelledItems) -> dict[str, float]:
        self.mean = train.labels.mean(axis=0)
        return {}

    def predict(self, items: LabelledItems) -> tuple[np.ndarray, dict[str, float]]:
        return np.tile(self.mean, (len(items), 1)), {}


class MusicMean(GlobalMean):
    def fit(self, train: LabelledItems) -> dict[str, float]:
        super().fit(train)
        self.by_group = {int(g): train.labels[train.group == g].mean(axis=0) for g in np.unique(train.group)}
        return {"excerpts": float(len(self.by_group))}

    def predict(self, items: LabelledItems) -> tuple[np.ndarray, dict[str, float]]:
        known = np.array([int(g) in self.by_group for g in items.group], dtype=bool)
        rows = [self.by_group[int(g)] if seen else self.mean for g, seen in zip(items.group, known)]
        predictions = np.array(rows).reshape(len(items), -1)
        # items whose excerpt has no training performance: predicted by the global mean
        return predictions, {"fallback_items": float((~known).sum())}


class RidgeProbe:
    def __init__(self, config: RidgeProbeConfig):
        self.config = config
        self.model = make_pipeline(VarianceThreshold(config.min_std ** 2), StandardScaler(),
                                   RidgeCV(alphas=config.alphas))

    def pooled(self, items: LabelledItems) -> np.ndarray:
        """``[N, len(pool) * D]``: the pooled statistics of each item's notes."""
        if items.notes is None:
            raise ValueError("ridge_probe reads note features; its items carry none (input_kind must be 'notes')")
        stats = {"mean": lambda m: m.mean(axis=0), "std": lambda m: m.std(axis=0)}
        return np.stack([np.concatenate([stats[name](notes) for name in self.config.pool]) for notes in items.notes])

    def fit(self, train: LabelledItems) -> dict[str, float]:
        self.model.fit(self.pooled(train), train.labels)
        alpha = float(self.model[-1].alpha_)
        kept = int(self.model[0].get_support().sum())
        return {"alpha": alpha, "alpha_at_grid_edge": float(alpha in (min(self.config.alphas), max(self.config.alphas))),
                "columns": float(kept), "columns_dropped": float(self.model[0].n_features_in_ - kept)}

    def predict(self, items: LabelledItems) -> tuple[np.ndarray, dict[str, float]]:
        return self.model.predict(self.pooled(items)), {}


def build_global_mean(config: MeanConfig, input_dim: int, num_labels: int) -> GlobalMean:
    return GlobalMean(config)


def build_music_mean(config: MeanConfig, input_dim: int, num_labels: int) -> MusicMean:
    return MusicMean(config)


def build_ridge_probe(config: RidgeProbeConfig, input_dim: int, num_labels: int) -> RidgeProbe:
    return RidgeProbe(config)
