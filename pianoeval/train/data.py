"""The data a run trains on: the model's data module, reached through the registry.

The trainer asks the registry entry of the model for its data module (``ModelEntry.datamodule``:
the HAN family reads ``notes``, the label-only reference predictors ``labels``, each track
names its own), never the model's name, and never imports a track. ``labelled_items`` gives
predictors fitted in closed form the items of a stage as arrays.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch

from pianoeval.data import LabelledItems, NoteDataset
from pianoeval.errors import ConfigError
from pianoeval.experiment import ExperimentConfig
from pianoeval.models.registry import get_model


def build_datamodule(config: ExperimentConfig) -> L.LightningDataModule:
    """The data module of the run's model (its registry entry names it), for ``config``."""
    return get_model(config.model_name).datamodule_class()(config)


def labelled_items(datamodule: L.LightningDataModule, stage: str) -> LabelledItems:
    """The ``train``, ``val`` or ``test`` items of a set-up data module as arrays, for predictors
    fitted in closed form: a label data module's own items, or a note data module's items with
    each one's normalised note-feature matrix (a training subset stays that subset)."""
    dataset = {"train": datamodule.train_set, "val": datamodule.val_set, "test": datamodule.test_set}[stage]
    if isinstance(dataset, LabelledItems):
        return dataset
    indices = None
    if isinstance(dataset, torch.utils.data.Subset):
        dataset, indices = dataset.dataset, dataset.indices
    if not isinstance(dataset, NoteDataset):
        raise ConfigError(f"model {datamodule.config.model_name}: a closed-form predictor reads labels or note "
                          f"features, not {type(dataset).__name__} items")
    bounds = zip(dataset.offsets[:-1], dataset.offsets[1:])
    items = LabelledItems(segment_ids=tuple(dataset.segment_ids), labels=dataset.labels.numpy().astype(np.float64),
                          label_std=dataset.label_std.numpy().astype(np.float64), group=dataset.group.numpy(),
                          notes=tuple(dataset.features[lo:hi].numpy() for lo, hi in bounds))
    return items if indices is None else items.subset(indices)
