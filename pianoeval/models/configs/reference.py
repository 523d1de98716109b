"""Configs of the reference predictors fitted in closed form and their three registered variants
(the predictors: ``pianoeval.models.reference``)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pydantic

from pianoeval.config import StrictModel
from pianoeval.models.configs.han import NOTES
from pianoeval.models.entry import ModelEntry

#: the data module of the ``labels`` input kind (labels and music groups, no inputs)
LABELS = "pianoeval.models.datamodules:LabelDataModule"


class MeanConfig(StrictModel):
    """``global_mean`` and ``music_mean`` have no settings."""


class RidgeProbeConfig(StrictModel):
    """Attributes:
        pool: statistics over each segment's notes, per feature column, concatenated.
        alphas: the ridge penalties ``RidgeCV`` chooses from (leave-one-out on the training set).
        min_std: pooled columns whose training std is below this are dropped (the note
            features are z-scored on the training set, so an informative column has a std of
            order 0.1-1).
    """

    pool: list[Literal["mean", "std"]] = pydantic.Field(["mean", "std"], min_length=1)
    alphas: list[pydantic.PositiveFloat] = pydantic.Field([float(a) for a in np.logspace(-2, 5, 15)], min_length=1)
    min_std: float = pydantic.Field(0.01, ge=0)


VARIANTS: tuple[ModelEntry, ...] = (
    ModelEntry("global_mean", MeanConfig, "pianoeval.models.reference:build_global_mean", input_kind="labels",
               datamodule=LABELS, fit="closed_form",
               description="reference: the training set's per-dimension mean label"),
    ModelEntry("music_mean", MeanConfig, "pianoeval.models.reference:build_music_mean", input_kind="labels",
               datamodule=LABELS, fit="closed_form",
               description="reference: the mean label of the same music excerpt in training (else the global mean)"),
    ModelEntry("ridge_probe", RidgeProbeConfig, "pianoeval.models.reference:build_ridge_probe", input_kind="notes",
               datamodule=NOTES, fit="closed_form", data_defaults={"feature_set": "full"},
               description="reference: ridge on note features pooled over time (mean, std), alpha by leave-one-out"),
)
