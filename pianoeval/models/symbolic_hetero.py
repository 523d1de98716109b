"""S2H: a heterogeneous GNN on the note graph with four edge types (onset, during,
follow, silence), pre-trained by per-edge-type link prediction.

    node features -> Linear -> num_layers x (HeteroConv{one GATConv per edge type},
      combined by ``aggr``; residual, LayerNorm, GELU) -> node frames per item

All nodes are notes, so the four relations are ``("note", <type>, "note")``; a
relation without edges in a batch simply contributes nothing. Self-loops are not
added (a heterogeneous relation has no self edges); the residual carries each note's
own state.

Pre-training (``HeteroLinkObjective``): for every edge type, ``mask_prob`` (15%) of its
undirected edges are removed from the input and scored against as many random
same-graph node pairs by that type's own bilinear scorer; the loss is the mean of
the four binary cross-entropies (an edge type with no held-out edge is left out).
"""

from __future__ import annotations

import torch
from torch import nn

from pianoeval.models.configs.symbolic import HeteroConfig
from pianoeval.models.symbolic_common import build_with_heads
from pianoeval.models.symbolic_gnn import (LinkScorer, NodeInput, dense_frames, hold_out_edges,
                                           link_loss, random_pairs)
from pianoeval.symbolic.graphs import HETERO_EDGES

ENCODER = "s2h"
EDGE_NAMES = HETERO_EDGES
ARCH_FIELDS = {"hidden_size": "h", "num_layers": "l", "num_heads": "a", "aggr": "agg"}
NODE = "note"


def relation(name: str) -> tuple[str, str, str]:
    return (NODE, name, NODE)


class HeteroGraphEncoder(nn.Module):
    """HeteroConv over the S2H edge types (encoder protocol: ``encode(batch)``)."""

    edge_names = EDGE_NAMES

    def __init__(self, config: HeteroConfig, in_dim: int):
        from torch_geometric.nn import GATConv, HeteroConv  # imported here: the registry stays light to import

        super().__init__()
        width = config.hidden_size
        self.output_dim = width
        self.input = NodeInput(in_dim, width)
        self.convs = nn.ModuleList(
            HeteroConv({relation(name): GATConv(width, width // config.num_heads, heads=config.num_heads,
                                                dropout=config.dropout, add_self_loops=False)
                        for name in self.edge_names}, aggr=config.aggr)
            for _ in range(config.num_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(config.num_layers))
        self.act = nn.GELU()

    def nodes(self, x: torch.Tensor, edges: dict[str, torch.Tensor]) -> torch.Tensor:
        """Node embeddings [N, hidden_size] from per-type edge indices ``{type: [2, E]}``."""
        h = self.input(x)
        edge_index = {relation(name): edges[name] for name in self.edge_names}
        for conv, norm in zip(self.convs, self.norms):
            update = conv({NODE: h}, edge_index).get(NODE)
            h = norm(h + self.act(update)) if update is not None else norm(h)
        return h

    def encode(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        edges = {name: batch.edges_of(name) for name in self.edge_names}
        return dense_frames(self.nodes(batch.x, edges), batch)


class HeteroLinkObjective(nn.Module):
    """Per-edge-type link prediction around a HeteroGraphEncoder."""

    def __init__(self, encoder: HeteroGraphEncoder, mask_prob: float = 0.15):
        super().__init__()
        self.encoder = encoder
        self.mask_prob = mask_prob
        self.scorers = nn.ModuleDict({name: LinkScorer(encoder.output_dim) for name in encoder.edge_names})

    def forward(self, batch, generator: torch.Generator):
        kept, held = {}, {}
        for name in self.encoder.edge_names:
            edges = batch.edges_of(name)
            keep, held[name] = hold_out_edges(edges, self.mask_prob, generator)
            kept[name] = edges[:, keep]
        h = self.encoder.nodes(batch.x, kept)
        losses, metrics = [], {}
        for name, positives in held.items():
            if positives.shape[1] == 0:
                continue
            negatives = random_pairs(batch, positives.shape[1], generator)
            loss, accuracy = link_loss(self.scorers[name], h, positives, negatives)
            losses.append(loss)
            metrics[f"link_acc/{name}"] = accuracy
        total = torch.stack(losses).mean() if losses else h.sum() * 0.0
        frames, mask = dense_frames(h, batch)
        return {"link": total}, metrics, frames, mask


def build_hetero(config: HeteroConfig, input_dim: int, num_labels: int) -> nn.Module:
    """Registry builder; ``input_dim`` is the node feature width."""
    return build_with_heads(ENCODER, HeteroGraphEncoder(config, input_dim), config, ARCH_FIELDS, input_dim, num_labels)


def make_objective(config: HeteroConfig, input_dim: int, mask_prob: float) -> HeteroLinkObjective:
    return HeteroLinkObjective(HeteroGraphEncoder(config, input_dim), mask_prob)


#: The GPU default (the seed's 6 x 512, 8 heads): model overrides on the CPU-size variant.
GPU_SIZE = dict(hidden_size=512, num_layers=6, num_heads=8)
