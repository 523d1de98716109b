"""Symbolic data modules: T1 PercePiano folds, mixed with T3 ASAP cross-performer windows."""

import numpy as np
import pytest
import torch

from pianoeval.data.batch import TIER_CROSS_PERFORMER, TIER_LABELLED
from pianoeval.experiment import ExperimentConfig
from pianoeval.symbolic.batches import CurveBatch, GraphBatch, TokenBatch
from pianoeval.symbolic.corpus import ASAP_GROUP_OFFSET
from pianoeval.train.data import build_datamodule


def _module(name, **model):
    config = ExperimentConfig.resolve({"model": {"name": name, **model},
                                       "data": {"max_train_segments": 24, "batch_sampler": "grouped", "batch_size": 8}})
    module = build_datamodule(config)
    module.setup()
    return module


@pytest.mark.parametrize("name, batch_type, width", [("s1_remi", TokenBatch, 398), ("s2_gnn", GraphBatch, 27),
                                                      ("s2h_hetero", GraphBatch, 27), ("s3_continuous", CurveBatch, 9)])
def test_each_input_kind_yields_its_batch_type_on_the_real_fold(name, batch_type, width):
    module = _module(name)
    assert module.input_dim == width
    assert len(module.val_set) == 175 and len(module.test_set) == 193  # performer fold 0, every segment
    batch = next(iter(module.val_dataloader()))
    assert isinstance(batch, batch_type) and batch.label_mask is None
    assert batch.labels.shape == (32, 19) and (batch.tier == TIER_LABELLED).all()
    if batch_type is GraphBatch:
        assert batch.edge_names == module.edge_names and batch.edge_index.max() < len(batch.x)
        assert torch.equal(torch.bincount(batch.node_item), batch.num_nodes)


@pytest.mark.asap
def test_cross_performer_windows_join_training_batches_unlabelled():
    module = _module("s3_continuous", cross_performer_items=16)
    groups = module.train_set.group
    asap = groups >= ASAP_GROUP_OFFSET
    assert asap.sum() == 16 and (~asap).sum() == 24
    assert np.all(np.unique(groups[asap], return_counts=True)[1] >= 2)  # each window has a partner
    seen = 0
    for batch in module.train_dataloader():
        t3 = batch.tier == TIER_CROSS_PERFORMER
        if t3.any():
            assert batch.label_mask is not None and torch.equal(batch.label_mask, ~t3)
            assert (batch.group[t3] >= ASAP_GROUP_OFFSET).all() and (batch.group[~t3] < ASAP_GROUP_OFFSET).all()
            seen += int(t3.sum())
    assert seen == 16
