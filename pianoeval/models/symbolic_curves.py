"""S3: continuous MIDI curves -> multi-scale 1D-CNN -> Transformer, with wav2vec-style
contrastive pre-training.

    curves [B, T, 9] (25 frames/s) -> 1x1 conv to hidden_size
      -> conv_layers x multi-scale block (parallel depthwise Conv1d, kernels 3 / 7 / 15,
         concatenated, pointwise 1x1 projection, residual, LayerNorm, GELU)
      -> strided Conv1d (``downsample``) -> latent frames z [B, T', hidden_size]
      -> ChunkedTransformer -> context frames c (mask: real frames) -> shared heads

Pre-training (``ContrastiveFrames``, as wav2vec 2.0 without the quantiser): a
``mask_prob / MASK_SPAN`` share of the real latent frames (mask_prob 0.65, wav2vec 2.0's
value) start a span of ``MASK_SPAN`` (5) frames; masked frames (about half) are
replaced by a learned mask vector before the Transformer. At every masked frame the
projected context must pick its own projected latent among ``DISTRACTORS`` (10)
latents of other masked frames of the same item, plus ``cross_distractors`` latents of
masked frames of other items of the batch: cross-entropy over cosine similarities /
``TEMPERATURE`` (0.1). Distractors from the same item alone (wav2vec 2.0's choice) reward
only what varies within a window; whatever is constant over it (its loudness, tempo,
pedalling, which are what listeners rate) cannot tell them apart and is not learned.
Distractors from other windows make those window-level features worth encoding (measured
in docs/results.md: fine-tuned, they recover R2 but not same-piece ranking).

With ``reconstruct`` the context at every masked frame also regresses the input curves
that the frame covers (its ``downsample`` x 9 values), a masked-reconstruction term beside
the contrastive one: the contrastive answer can ignore what a window's frames share (its
level of loudness, tempo, pedal), a reconstruction cannot. Each channel's squared error is
divided by that channel's variance over the batch's real frames, so the nine channels count
alike whatever their units (the term is 1 - R2 of the masked frames).

Targets are the continuous latents (no quantiser), so a diversity term replaces wav2vec
2.0's codebook-diversity loss: every dimension of the projected targets keeps a standard
deviation >= 1 over the real frames of each item (VICReg's variance hinge, taken within
items). Without it the targets collapse within a few dozen steps to vectors that are
constant in time (all similarities equal: the loss sits at log 11, chance). Targets are
also centred before the cosine: a large offset shared by every frame would otherwise
shrink all cosine differences to nothing (the same stall, seen in practice). With
within-item distractors only they are centred on their item's mean; with cross-item
distractors on the batch's mean, so that what sets an item apart from the others is kept.
"""

from __future__ import annotations

import torch
from torch import nn

from pianoeval.models.configs.symbolic import CurveConfig
from pianoeval.models.symbolic_common import ChunkedTransformer, build_with_heads

ENCODER = "s3"
EDGE_NAMES: tuple[str, ...] = ()  # not a graph
ARCH_FIELDS = {"hidden_size": "h", "num_layers": "l", "num_heads": "a", "conv_layers": "cv", "downsample": "ds",
               "chunk_len": "c"}
KERNELS = (3, 7, 15)
MASK_SPAN = 5
DISTRACTORS = 10
TEMPERATURE = 0.1


class MultiScaleBlock(nn.Module):
    def __init__(self, width: int, dropout: float):
        super().__init__()
        # depthwise branches (one filter per channel and scale), mixed by one pointwise conv
        self.branches = nn.ModuleList(nn.Conv1d(width, width, k, padding=k // 2, groups=width) for k in KERNELS)
        self.project = nn.Conv1d(len(KERNELS) * width, width, 1)
        self.norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, C, T] (zero on padding) -> [B, C, T]."""
        mixed = self.project(torch.cat([branch(x) for branch in self.branches], dim=1))
        out = self.norm((x + self.dropout(self.act(mixed))).transpose(1, 2)).transpose(1, 2)
        return out * mask.unsqueeze(1)


def padded_frame_mask(curves: torch.Tensor, lengths: torch.Tensor, downsample: int) -> torch.Tensor:
    """[B, T + pad] bool: which input frames are real, the frame axis padded to a multiple
    of ``downsample`` (one latent frame per ``downsample`` input frames)."""
    steps = curves.shape[1]
    return torch.arange(steps + (-steps) % downsample, device=curves.device)[None, :] < lengths[:, None]


class CurveEncoder(nn.Module):
    """Curves -> context frames (encoder protocol: ``encode(batch)``)."""

    def __init__(self, config: CurveConfig, channels: int):
        super().__init__()
        width = config.hidden_size
        self.output_dim = width
        self.downsample = config.downsample
        self.input = nn.Conv1d(channels, width, 1)
        self.blocks = nn.ModuleList(MultiScaleBlock(width, config.dropout) for _ in range(config.conv_layers))
        self.reduce = nn.Conv1d(width, width, config.downsample, stride=config.downsample)
        self.latent_norm = nn.LayerNorm(width)
        self.mask_vector = nn.Parameter(torch.zeros(width))
        self.transformer = ChunkedTransformer(width, config.num_layers, config.num_heads, 4, config.dropout,
                                              config.chunk_len, position_std=1.0)

    def latents(self, curves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z [B, T', C] and its mask [B, T'] (a latent frame is real if any input frame is)."""
        mask = padded_frame_mask(curves, lengths, self.downsample)
        x = nn.functional.pad(curves, (0, 0, 0, mask.shape[1] - curves.shape[1])).transpose(1, 2) * mask.unsqueeze(1)
        x = self.input(x) * mask.unsqueeze(1)
        for block in self.blocks:
            x = block(x, mask)
        z = self.latent_norm(self.reduce(x).transpose(1, 2))
        latent_mask = mask.reshape(len(mask), -1, self.downsample).any(-1)
        return z * latent_mask.unsqueeze(-1), latent_mask

    def context(self, z: torch.Tensor, mask: torch.Tensor, masked: torch.Tensor | None = None) -> torch.Tensor:
        if masked is not None:
            z = torch.where(masked.unsqueeze(-1), self.mask_vector.expand_as(z), z)
        return self.transformer(z, mask)

    def encode(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        z, mask = self.latents(batch.curves, batch.lengths)
        return self.context(z, mask), mask


def within_item_diversity(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean hinge ``relu(1 - std)`` of each dimension's std over each item's real frames.

    Taken within items, not over the batch: latents that vary only from item to item
    (constant in time) would satisfy a batch-wide std and still leave every distractor
    equal to its target."""
    weight = mask.unsqueeze(-1).float()
    count = weight.sum(1).clamp_min(2.0)
    mean = (values * weight).sum(1) / count
    variance = (((values - mean.unsqueeze(1)) * weight) ** 2).sum(1) / (count - 1)
    return nn.functional.relu(1.0 - torch.sqrt(variance + 1e-4)).mean()


def span_mask(mask: torch.Tensor, mask_prob: float, generator: torch.Generator) -> torch.Tensor:
    """[B, T] bool: spans of MASK_SPAN frames from ``mask_prob / MASK_SPAN`` of the real frames."""
    starts = (torch.rand(mask.shape, generator=generator) < mask_prob / MASK_SPAN).to(mask.device) & mask
    spans = nn.functional.max_pool1d(starts.float().unsqueeze(1), MASK_SPAN, stride=1, padding=0)
    spans = nn.functional.pad(spans, (MASK_SPAN - 1, 0)).squeeze(1) > 0  # frame t masked if a span starts in t-4..t
    return spans & mask


def masked_reconstruction(predicted: torch.Tensor, curves: torch.Tensor, lengths: torch.Tensor,
                          masked: torch.Tensor) -> torch.Tensor:
    """Variance-normalised squared error of ``predicted`` [B, T', downsample * C] against the
    input curves [B, T, C] at the masked latent frames (module docstring); input frames past
    an item's length (padding) are left out."""
    batch, steps, channels = curves.shape
    downsample = predicted.shape[-1] // channels
    real = padded_frame_mask(curves, lengths, downsample)
    target = nn.functional.pad(curves, (0, 0, 0, real.shape[1] - steps)).reshape(batch, -1, downsample, channels)
    real = real.reshape(batch, -1, downsample)
    variance = target[real].var(0, unbiased=False).clamp_min(1e-4)  # [C] over the batch's real frames
    picked = masked.unsqueeze(-1) & real  # [B, T', downsample]
    if not picked.any():
        return predicted.sum() * 0.0
    error = (predicted.reshape(target.shape) - target) ** 2 / variance
    return error[picked].mean()


class ContrastiveFrames(nn.Module):
    """wav2vec-style masked-frame contrastive objective around a CurveEncoder, optionally
    with masked-curve reconstruction (module docstring)."""

    def __init__(self, encoder: CurveEncoder, mask_prob: float = 0.65, cross_distractors: int = 0,
                 reconstruct: bool = False):
        super().__init__()
        self.encoder = encoder
        self.mask_prob = mask_prob
        self.cross_distractors = cross_distractors
        width = encoder.output_dim
        self.predict = nn.Linear(width, width)
        self.target = nn.Linear(width, width)
        covered = encoder.downsample * encoder.input.in_channels  # input values under one latent frame
        self.reconstruct = nn.Linear(width, covered) if reconstruct else None

    def forward(self, batch, generator: torch.Generator):
        z, mask = self.encoder.latents(batch.curves, batch.lengths)
        masked = span_mask(mask, self.mask_prob, generator)
        context = self.encoder.context(z, mask, masked)
        extra = {}
        if self.reconstruct is not None:
            extra["reconstruct"] = masked_reconstruction(self.reconstruct(context), batch.curves, batch.lengths, masked)
        prediction = nn.functional.normalize(self.predict(context), dim=-1)
        projected = self.target(z)
        diversity = within_item_diversity(projected, mask)
        # centred on the item's mean when only the item's own frames are distractors (what all
        # its frames share cannot tell them apart), on the batch's mean otherwise (docstring)
        weight = mask.unsqueeze(-1).float()
        if self.cross_distractors:
            centre = (projected * weight).sum((0, 1), keepdim=True) / weight.sum().clamp_min(1.0)
        else:
            centre = (projected * weight).sum(1, keepdim=True) / weight.sum(1, keepdim=True).clamp_min(1.0)
        target = nn.functional.normalize(projected - centre, dim=-1)
        if self.cross_distractors:
            flat_target = target.reshape(-1, target.shape[-1])
            flat_masked = masked.reshape(-1).nonzero()[:, 0]  # masked frames of the batch, as flat indices
            item_of = torch.div(flat_masked, masked.shape[1], rounding_mode="floor")
        logits = []
        for b in range(len(z)):
            where = masked[b].nonzero()[:, 0]
            m = len(where)
            if m < 2:
                continue
            # DISTRACTORS other masked frames of the same item, never the frame itself
            draw = torch.randint(0, m - 1, (m, DISTRACTORS), generator=generator).to(z.device)
            draw = draw + (draw >= torch.arange(m, device=z.device).unsqueeze(1)).long()
            candidates = target[b, torch.cat([where.unsqueeze(1), where[draw]], dim=1)]  # [m, 1 + K, C], true first
            others = flat_masked[item_of != b] if self.cross_distractors else ()
            if len(others):
                pick = torch.randint(0, len(others), (m, self.cross_distractors), generator=generator).to(z.device)
                candidates = torch.cat([candidates, flat_target[others[pick]]], dim=1)
            logits.append((prediction[b, where].unsqueeze(1) * candidates).sum(-1) / TEMPERATURE)
        if not logits:
            zero = context.sum() * 0.0
            return ({"contrastive_frames": zero, "diversity": diversity, **extra}, {"frame_acc": zero.detach()},
                    context, mask)
        width = max(len(row[0]) for row in logits)  # items with no other item to draw from have fewer
        logits = torch.cat([nn.functional.pad(row, (0, width - row.shape[1]), value=float("-inf")) for row in logits])
        label = torch.zeros(len(logits), dtype=torch.long, device=z.device)
        loss = nn.functional.cross_entropy(logits, label)
        accuracy = (logits.argmax(-1) == 0).float().mean().detach()
        return {"contrastive_frames": loss, "diversity": diversity, **extra}, {"frame_acc": accuracy}, context, mask


def build_curves(config: CurveConfig, input_dim: int, num_labels: int) -> nn.Module:
    """Registry builder; ``input_dim`` is the number of curve channels."""
    return build_with_heads(ENCODER, CurveEncoder(config, input_dim), config, ARCH_FIELDS, input_dim, num_labels)


def make_objective(config: CurveConfig, input_dim: int, mask_prob: float, cross_distractors: int = 0,
                   reconstruct: bool = False) -> ContrastiveFrames:
    return ContrastiveFrames(CurveEncoder(config, input_dim), mask_prob, cross_distractors, reconstruct)


#: The GPU default (the seed's 6 x 512, 8 heads): model overrides on the CPU-size variant.
GPU_SIZE = dict(hidden_size=512, num_layers=6, num_heads=8, conv_layers=3)
