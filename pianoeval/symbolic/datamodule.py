"""Lightning data modules of the symbolic track, one per input kind.

``DATA_MODULES`` (each registered symbolic model names its own, ``pianoeval.models.configs.symbolic``):

    midi_tokens   -> REMI tokens      (S1)    TokenBatch
    note_graph    -> graphs, S2 edges (S2)    GraphBatch
    hetero_graph  -> graphs, S2H edges (S2H)  GraphBatch
    midi_curves   -> curves           (S3)    CurveBatch

Training batches mix tiers: labelled PercePiano segments of the fold (T1) and, when
the model's ``cross_performer_items`` is > 0, that many ASAP windows (T3:
``label_mask`` False, labels 0, music groups from ``ASAP_GROUP_OFFSET`` up so they never
meet PercePiano's). T3 windows are drawn (seeded) as ``data.group_size`` performers of
randomly chosen cross-performer groups, so each comes with a contrastive partner;
with ``data.batch_sampler: grouped`` partners share a batch. The shared loss picks
each item's terms from ``label_mask`` and ``group``. Validation and test hold T1 only.
"""

from __future__ import annotations

import hashlib
import math

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from pianoeval.data.batch import TIER_CROSS_PERFORMER, TIER_LABELLED
from pianoeval.data.samplers import GroupedBatchSampler
from pianoeval.experiment import ExperimentConfig
from pianoeval.symbolic.batches import ItemMeta, SymbolicDataset, collate_for
from pianoeval.symbolic.cache import RaggedStore, build_store
from pianoeval.symbolic.corpus import ASAP, ASAP_GROUP_OFFSET, PERCEPIANO, music_groups
from pianoeval.symbolic.graphs import HETERO_EDGES, HOMOGENEOUS_EDGES
from pianoeval.symbolic.sources import corpus_items, corpus_store, input_dim_of, percepiano_data, source_roots


def cross_performer_set(kind: str, count: int, per_group: int, seed: int, num_labels: int) -> SymbolicDataset:
    """``count`` ASAP windows as T3 items: ``per_group`` performers of random music groups
    (unlabelled: ``num_labels`` zeros, the run's label set's width).

    Only the chosen windows are pre-processed (and cached under their own key)."""
    items = list(corpus_items(ASAP))
    group_of = music_groups(items, offset=ASAP_GROUP_OFFSET)
    members: dict[int, list] = {}
    for item in items:
        if item.music_key in group_of:
            members.setdefault(group_of[item.music_key], []).append(item)
    rng = np.random.default_rng(seed)
    chosen: list = []
    for group in rng.permutation(sorted(members)):
        group_items = members[int(group)]
        chosen += [group_items[k] for k in rng.permutation(len(group_items))[:per_group]]
        if len(chosen) >= count:
            break
    chosen = chosen[:count]
    label = "asap-t3-" + hashlib.sha256("|".join(i.item_id for i in chosen).encode()).hexdigest()[:8]
    store = build_store(kind, chosen, source_roots((ASAP,)), label)
    zeros = (0.0,) * num_labels
    metas = [ItemMeta(i.item_id, zeros, zeros, group_of[i.music_key], labelled=False, tier=TIER_CROSS_PERFORMER)
             for i in chosen if i.item_id in store]
    return SymbolicDataset(store, metas)


class SymbolicDataModule(L.LightningDataModule):
    """PercePiano (T1, + optional ASAP T3) as one symbolic representation."""

    kind: str = ""
    edge_names: tuple[str, ...] = ()

    def __init__(self, config: ExperimentConfig):
        super().__init__()
        self.config = config
        self.train_set = self.val_set = self.test_set = None

    def _metas(self, ids: list[str], store: RaggedStore) -> list[ItemMeta]:
        data = percepiano_data(self.config.data.labels)
        return [ItemMeta(sid, data.by_id[sid].labels, data.by_id[sid].label_std,
                         data.group_of[data.by_id[sid].score_key], labelled=True, tier=TIER_LABELLED)
                for sid in ids if sid in store]

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        cfg, spec = self.config.data, self.config.model_spec()
        store = corpus_store(self.kind, PERCEPIANO)
        parts = percepiano_data(cfg.labels).fold(cfg.split, cfg.fold, cfg.pieces, cfg.allow_piece_leakage)
        train_ids = list(parts.train)
        if cfg.max_train_segments is not None and cfg.max_train_segments < len(train_ids):
            keep = np.random.default_rng(self.config.seed).permutation(len(train_ids))[: cfg.max_train_segments]
            train_ids = [train_ids[i] for i in sorted(keep)]
        train = self._metas(train_ids, store)
        self.val_set = SymbolicDataset(store, self._metas(list(parts.validation), store))
        self.test_set = SymbolicDataset(store, self._metas(list(parts.test), store))
        if spec.cross_performer_items > 0:
            extra = cross_performer_set(self.kind, spec.cross_performer_items, cfg.group_size, self.config.seed,
                                        len(percepiano_data(cfg.labels).label_names))
            self.train_set = MixedDataset([SymbolicDataset(store, train), extra])
        else:
            self.train_set = SymbolicDataset(store, train)

    @property
    def input_dim(self) -> int:
        return input_dim_of(self.kind)

    def _loader(self, dataset, batch_size: int, train: bool) -> DataLoader:
        collate = collate_for(self.kind, self.edge_names)
        cfg = self.config.data
        if train and cfg.batch_sampler == "grouped":
            sampler = GroupedBatchSampler(dataset.group, batch_size, cfg.group_size, self.config.seed)
            return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
        generator = torch.Generator().manual_seed(self.config.seed) if train else None
        return DataLoader(dataset, batch_size=batch_size, shuffle=train, generator=generator, collate_fn=collate)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.config.data.batch_size, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.config.data.eval_batch_size, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.config.data.eval_batch_size, train=False)

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_set) / self.config.data.batch_size)


class MixedDataset(torch.utils.data.ConcatDataset):
    """Datasets joined into one (e.g. T1 and T3 items); ``group`` concatenated for the grouped sampler."""

    def __init__(self, parts: list[SymbolicDataset]):
        super().__init__(parts)
        self.group = np.concatenate([p.group for p in parts])


class TokenDataModule(SymbolicDataModule):
    kind = "tokens"


class NoteGraphDataModule(SymbolicDataModule):
    kind = "graphs"
    edge_names = HOMOGENEOUS_EDGES


class HeteroGraphDataModule(SymbolicDataModule):
    kind = "graphs"
    edge_names = HETERO_EDGES


class CurveDataModule(SymbolicDataModule):
    kind = "curves"


DATA_MODULES = {"midi_tokens": TokenDataModule, "note_graph": NoteGraphDataModule,
                "hetero_graph": HeteroGraphDataModule, "midi_curves": CurveDataModule}
