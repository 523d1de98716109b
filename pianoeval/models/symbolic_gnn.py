"""S2: a GATConv encoder on the homogeneous note graph, pre-trained by link prediction
plus masked velocity / timing prediction.

    node features [N, 27] -> Linear -> num_layers x (GATConv with edge attributes,
      residual, LayerNorm, GELU) -> node frames, padded per item [B, N_max, hidden_size]

Edge attributes (computed from the node features, so a masked node leaks nothing):
one-hot edge set (temporal / harmonic / voice), the pitch interval / 12 and the onset
difference in seconds. Graphs are processed full-batch (a batch is one disjoint union).

Pre-training (``GraphObjective``): ``mask_prob`` (15%) of the undirected edges are
removed from the input graph and predicted against as many random same-graph node
pairs (bilinear score, binary cross-entropy); ``mask_prob`` of the nodes have their
velocity and timing features (onset, duration, IOI) replaced by a learned mask vector
and the encoder regresses velocity, log duration and log IOI (MSE).
"""

from __future__ import annotations

import torch
from torch import nn

from pianoeval.models.configs.symbolic import GraphConfig
from pianoeval.models.symbolic_common import build_with_heads
from pianoeval.symbolic.graphs import HOMOGENEOUS_EDGES, TIMING_FEATURES, VELOCITY_FEATURE

ENCODER = "s2"
EDGE_NAMES = HOMOGENEOUS_EDGES
ARCH_FIELDS = {"hidden_size": "h", "num_layers": "l", "num_heads": "a"}
MASKED_COLUMNS = (VELOCITY_FEATURE, *TIMING_FEATURES)
TARGET_COLUMNS = (VELOCITY_FEATURE, TIMING_FEATURES[1], TIMING_FEATURES[2])  # velocity, log duration, log IOI
PITCH_COLUMN, ONSET_COLUMN = 0, TIMING_FEATURES[0]


def hide_masked(x: torch.Tensor, masked: torch.Tensor | None) -> torch.Tensor:
    """Node features with the velocity and timing columns of masked nodes set to 0."""
    if masked is None:
        return x
    hidden = torch.zeros(x.shape[1], dtype=torch.bool, device=x.device)
    hidden[list(MASKED_COLUMNS)] = True
    return x.masked_fill(masked.unsqueeze(-1) & hidden, 0.0)


class NodeInput(nn.Module):
    """Node features -> hidden width, with a learned vector added to masked nodes."""

    def __init__(self, in_dim: int, width: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, width)
        self.mask_vector = nn.Parameter(torch.zeros(width))

    def forward(self, x: torch.Tensor, masked: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` already passed through ``hide_masked``."""
        h = self.linear(x)
        return h + masked.unsqueeze(-1) * self.mask_vector if masked is not None else h


def dense_frames(h: torch.Tensor, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Node rows [N, C] -> per-item frames [B, N_max, C] and their mask, via ``node_item``."""
    starts = torch.cumsum(batch.num_nodes, 0) - batch.num_nodes
    position = torch.arange(len(h), device=h.device) - starts[batch.node_item]
    frames = h.new_zeros(len(batch.num_nodes), int(batch.num_nodes.max()), h.shape[1])
    frames = frames.index_put((batch.node_item, position), h)
    mask = torch.zeros(frames.shape[:2], dtype=torch.bool, device=h.device)
    mask[batch.node_item, position] = True
    return frames, mask


class NoteGraphEncoder(nn.Module):
    """Homogeneous GAT over the S2 edge sets (encoder protocol: ``encode(batch)``)."""

    edge_names = EDGE_NAMES

    def __init__(self, config: GraphConfig, in_dim: int):
        from torch_geometric.nn import GATConv  # imported here: the registry stays light to import

        super().__init__()
        width = config.hidden_size
        self.output_dim = width
        self.input = NodeInput(in_dim, width)
        edge_dim = len(self.edge_names) + 2
        self.convs = nn.ModuleList(GATConv(width, width // config.num_heads, heads=config.num_heads,
                                           edge_dim=edge_dim, dropout=config.dropout) for _ in range(config.num_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(config.num_layers))
        self.act = nn.GELU()

    def edge_attr(self, x: torch.Tensor, edge_index: torch.Tensor, edge_type: torch.Tensor) -> torch.Tensor:
        src, dst = edge_index
        kind = nn.functional.one_hot(edge_type, len(self.edge_names)).float()
        interval = (x[dst, PITCH_COLUMN] - x[src, PITCH_COLUMN]) * 127.0 / 12.0
        gap = (x[dst, ONSET_COLUMN] - x[src, ONSET_COLUMN]) * 60.0  # onset column is seconds / 60
        return torch.cat([kind, interval.unsqueeze(-1), gap.clamp(-4, 4).unsqueeze(-1)], dim=-1)

    def nodes(self, x, edge_index, edge_type, masked=None) -> torch.Tensor:
        """Node embeddings [N, hidden_size]."""
        x = hide_masked(x, masked)
        attr = self.edge_attr(x, edge_index, edge_type)
        h = self.input(x, masked)
        for conv, norm in zip(self.convs, self.norms):
            h = norm(h + self.act(conv(h, edge_index, attr)))
        return h

    def encode(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        return dense_frames(self.nodes(batch.x, batch.edge_index, batch.edge_type), batch)


def random_pairs(batch, count: int, generator: torch.Generator) -> torch.Tensor:
    """[2, count] random (i, j) node pairs inside the same graph (negatives)."""
    starts = torch.cumsum(batch.num_nodes, 0) - batch.num_nodes
    src = torch.randint(0, len(batch.x), (count,), generator=generator).to(batch.x.device)
    item = batch.node_item[src]
    offset = (torch.rand(count, generator=generator).to(batch.x.device) * batch.num_nodes[item]).long()
    return torch.stack([src, starts[item] + offset])


def hold_out_edges(edge_index: torch.Tensor, share: float, generator: torch.Generator):
    """Hold out ``share`` of the undirected edges (both directions stored).

    Returns ``(keep [E] bool, held-out pairs [2, H])``: ``keep`` drops both directions of
    every held-out edge, which is listed once (i < j)."""
    src, dst = edge_index
    size = int(edge_index.max()) + 1 if edge_index.numel() else 1
    held = (src < dst) & (torch.rand(len(src), generator=generator).to(src.device) < share)
    key = torch.minimum(src, dst) * size + torch.maximum(src, dst)
    keep = ~torch.isin(key, key[held])
    return keep, torch.stack([src[held], dst[held]])


class LinkScorer(nn.Module):
    """Bilinear edge score ``h_i^T W h_j``."""

    def __init__(self, width: int):
        super().__init__()
        self.weight = nn.Linear(width, width, bias=False)

    def forward(self, h: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        return (self.weight(h[pairs[0]]) * h[pairs[1]]).sum(-1)


def link_loss(scorer: LinkScorer, h: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor):
    """Binary cross-entropy of held-out edges against random pairs; and the accuracy."""
    logits = torch.cat([scorer(h, positives), scorer(h, negatives)])
    target = torch.cat([torch.ones(positives.shape[1]), torch.zeros(negatives.shape[1])]).to(h.device)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, target)
    return loss, ((logits > 0).float() == target).float().mean().detach()


class GraphObjective(nn.Module):
    """Link prediction + masked velocity / timing regression around a NoteGraphEncoder."""

    def __init__(self, encoder: NoteGraphEncoder, mask_prob: float = 0.15):
        super().__init__()
        self.encoder = encoder
        self.mask_prob = mask_prob
        self.scorer = LinkScorer(encoder.output_dim)
        self.attributes = nn.Sequential(nn.Linear(encoder.output_dim, encoder.output_dim), nn.GELU(),
                                        nn.Linear(encoder.output_dim, len(TARGET_COLUMNS)))

    def forward(self, batch, generator: torch.Generator):
        keep, positives = hold_out_edges(batch.edge_index, self.mask_prob, generator)
        masked = torch.rand(len(batch.x), generator=generator).to(batch.x.device) < self.mask_prob
        h = self.encoder.nodes(batch.x, batch.edge_index[:, keep], batch.edge_type[keep], masked)
        negatives = random_pairs(batch, max(positives.shape[1], 1), generator)
        link, link_acc = link_loss(self.scorer, h, positives, negatives)
        target = batch.x[masked][:, list(TARGET_COLUMNS)]
        attribute = nn.functional.mse_loss(self.attributes(h[masked]), target) if bool(masked.any()) else h.sum() * 0
        frames, mask = dense_frames(h, batch)
        return {"link": link, "masked_attributes": attribute}, {"link_acc": link_acc}, frames, mask


def build_gnn(config: GraphConfig, input_dim: int, num_labels: int) -> nn.Module:
    """Registry builder; ``input_dim`` is the node feature width."""
    return build_with_heads(ENCODER, NoteGraphEncoder(config, input_dim), config, ARCH_FIELDS, input_dim, num_labels)


def make_objective(config: GraphConfig, input_dim: int, mask_prob: float) -> GraphObjective:
    return GraphObjective(NoteGraphEncoder(config, input_dim), mask_prob)


#: The GPU default (the seed's 6 x 512, 8 heads): model overrides on the CPU-size variant.
GPU_SIZE = dict(hidden_size=512, num_layers=6, num_heads=8)
