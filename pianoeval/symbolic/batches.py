"""Symbolic batches and the dataset that yields their items.

``SymbolicDataset`` reads items of one representation from a ``RaggedStore`` and
attaches each item's tier fields: labels (PercePiano ratings, or zeros where there are
none), ``group`` (music id; -1 none), ``labelled`` and ``tier``. The collate functions
build the batch types the encoders read:

* ``TokenBatch`` (S1): REMI ids ``tokens`` [B, T] (PAD = 0) and ``lengths`` [B];
* ``GraphBatch`` (S2, S2H): every item's graph in one disjoint union -- node features
  ``x`` [N, F], ``node_item`` [N] (the item of each node, ascending), ``num_nodes`` [B],
  ``edge_index`` [2, E] and ``edge_type`` [E] (index into ``edge_names``);
* ``CurveBatch`` (S3): ``curves`` [B, T, C] zero-padded and ``lengths`` [B].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from pianoeval.data.batch import TIER_LABELLED, BatchBase
from pianoeval.symbolic.cache import RaggedStore
from pianoeval.symbolic.graphs import node_features


@dataclass
class TokenBatch(BatchBase):
    tokens: torch.Tensor = field(kw_only=True)  # [B, T] int64, PAD = 0
    lengths: torch.Tensor = field(kw_only=True)  # [B] int64

    @property
    def mask(self) -> torch.Tensor:
        return torch.arange(self.tokens.shape[1], device=self.tokens.device)[None, :] < self.lengths[:, None]


@dataclass
class GraphBatch(BatchBase):
    x: torch.Tensor = field(kw_only=True)  # [N, F] float32 node features
    node_item: torch.Tensor = field(kw_only=True)  # [N] int64, ascending
    num_nodes: torch.Tensor = field(kw_only=True)  # [B] int64
    edge_index: torch.Tensor = field(kw_only=True)  # [2, E] int64, global node indices
    edge_type: torch.Tensor = field(kw_only=True)  # [E] int64 into edge_names
    edge_names: tuple[str, ...] = field(default=(), kw_only=True)

    def edges_of(self, name: str) -> torch.Tensor:
        """[2, E_name] edges of one type."""
        return self.edge_index[:, self.edge_type == self.edge_names.index(name)]


@dataclass
class CurveBatch(BatchBase):
    curves: torch.Tensor = field(kw_only=True)  # [B, T, C] float32, zero-padded
    lengths: torch.Tensor = field(kw_only=True)  # [B] int64 frames


@dataclass(frozen=True)
class ItemMeta:
    """What a dataset knows about one item besides its representation."""

    item_id: str
    labels: tuple[float, ...]
    label_std: tuple[float, ...]
    group: int
    labelled: bool
    tier: int = TIER_LABELLED


class SymbolicDataset(torch.utils.data.Dataset):
    """Items of one representation (``store``) with their tier fields (``metas``)."""

    def __init__(self, store: RaggedStore, metas: list[ItemMeta]):
        missing = [m.item_id for m in metas if m.item_id not in store]
        if missing:
            raise KeyError(f"{len(missing)} items have no {store.kind} (e.g. {missing[0]}): they were skipped when "
                           "the cache was built; leave them out")
        self.store = store
        self.metas = list(metas)
        self.group = np.array([m.group for m in metas], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.metas)

    def __getitem__(self, i: int) -> dict:
        meta = self.metas[i]
        return {"meta": meta, **self.store.get(meta.item_id)}


def _common(items: list[dict]) -> dict:
    metas = [it["meta"] for it in items]
    labelled = torch.tensor([m.labelled for m in metas])
    return {
        "labels": torch.tensor([m.labels for m in metas], dtype=torch.float32),
        "label_std": torch.tensor([m.label_std for m in metas], dtype=torch.float32),
        "group": torch.tensor([m.group for m in metas], dtype=torch.int64),
        "segment_ids": [m.item_id for m in metas],
        "label_mask": None if bool(labelled.all()) else labelled,
        "tier": torch.tensor([m.tier for m in metas], dtype=torch.int64),
    }


def collate_tokens(items: list[dict]) -> TokenBatch:
    seqs = [torch.from_numpy(it["tokens"].astype(np.int64)) for it in items]
    return TokenBatch(**_common(items), tokens=torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True),
                      lengths=torch.tensor([len(s) for s in seqs]))


def collate_curves(items: list[dict]) -> CurveBatch:
    seqs = [torch.from_numpy(it["curves"].astype(np.float32)) for it in items]
    return CurveBatch(**_common(items), curves=torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True),
                      lengths=torch.tensor([len(s) for s in seqs]))


class GraphCollate:
    """Collate graphs keeping the edge sets ``edge_names`` (a picklable callable)."""

    def __init__(self, edge_names: tuple[str, ...]):
        self.edge_names = tuple(edge_names)

    def __call__(self, items: list[dict]) -> GraphBatch:
        xs, items_of, edges, types = [], [], [], []
        start = 0
        for b, it in enumerate(items):
            n = len(it["nodes"])
            xs.append(node_features(it["nodes"]))
            items_of.append(np.full(n, b))
            for k, name in enumerate(self.edge_names):
                pairs = it[f"edges_{name}"].astype(np.int64) + start
                edges.append(pairs)
                types.append(np.full(len(pairs), k))
            start += n
        edge_index = np.concatenate(edges).T if edges else np.zeros((2, 0), dtype=np.int64)
        return GraphBatch(**_common(items), x=torch.from_numpy(np.concatenate(xs)),
                          node_item=torch.from_numpy(np.concatenate(items_of).astype(np.int64)),
                          num_nodes=torch.tensor([len(it["nodes"]) for it in items]),
                          edge_index=torch.from_numpy(np.ascontiguousarray(edge_index)),
                          edge_type=torch.from_numpy(np.concatenate(types).astype(np.int64)),
                          edge_names=self.edge_names)


COLLATE = {"tokens": lambda edge_names: collate_tokens, "curves": lambda edge_names: collate_curves,
           "graphs": GraphCollate}


def collate_for(kind: str, edge_names: tuple[str, ...] = ()):
    """The collate function of representation ``kind``."""
    return COLLATE[kind](edge_names)
