"""The PercePiano HAN family: one configurable model, eight registered variants.

Architecture as in the reference doc, section 3 (``VirtuosoNetMultiLevel`` over
``HanEncoder``): Linear note embedder -> note BiLSTM and voice-wise BiLSTM -> context
attention pooled per beat -> beat BiLSTM -> context attention pooled per measure ->
measure BiLSTM; a readout picks one level (or the concatenation of all, spanned back to
notes), pools it with context attention and feeds the shared ``out_fc`` head. Logits
are returned; the sigmoid is applied outside the model.

Only modules on the configured path are instantiated, so parameter counts are honest:
``han`` at ``input_dim=101`` has 12,914,195 parameters, the reference's on-path count
(the reference's printed ~14.2-15.3 M also counts unused modules).

Deliberate differences from the reference (see ``segments`` and ``attention``):
padding is excluded by explicit length masks (quirk 3.6.1) and spanned copies use true
lengths (quirk 3.6.2). ``note_beat`` (beat hierarchy without the voice branch) and
level zeroing (section 7) have no switch in the reference and are added here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from pianoeval.data.batch import NoteBatch
from pianoeval.models.attention import ContextAttention
from pianoeval.models.configs.han import HanConfig
from pianoeval.models.output import ModelOutput
from pianoeval.models.segments import (Hierarchy, broadcast_to_notes, normalised_entropy, pad_segments,
                                       packed_lstm, segment_mask, voicewise_lstm)

# Note-aligned ``HanLevels`` fields concatenated (in this order) before a readout's projection;
# ``beat`` and ``measure`` readouts have no projection and read their LSTM outputs directly.
_SPANNED = {"voice": "voice", "beat": "beat_spanned", "measure": "measure_spanned"}


def _readout_blocks(config: HanConfig) -> tuple[str, ...]:
    if config.readout == "total_note_cat":
        return ("note",) + tuple(_SPANNED[level] for level in config.levels)
    return {"note": ("note",), "voice": ("note", "voice")}.get(config.readout, ())


def _bilstm(input_size: int, hidden_size: int, layers: int, dropout: float) -> nn.LSTM:
    # nn.LSTM applies dropout between layers only; passing it to a 1-layer LSTM just warns.
    return nn.LSTM(input_size, hidden_size, num_layers=layers, batch_first=True, bidirectional=True,
                   dropout=dropout if layers > 1 else 0.0)


@dataclass
class HanLevels:
    """Per-level outputs of one forward pass (after zeroing). Widths are ``2H``.

    ``note``/``voice``/``beat_spanned``/``measure_spanned`` are note-aligned ``[B, T, *]``
    with zero padding; ``beat``/``measure`` are padded ``[B, N, 2H]`` node sequences.
    Levels that are not built (or not needed by the readout) are None.
    """

    note_mask: torch.Tensor
    note: torch.Tensor
    voice: torch.Tensor | None = None
    beat: torch.Tensor | None = None
    beat_mask: torch.Tensor | None = None
    measure: torch.Tensor | None = None
    measure_mask: torch.Tensor | None = None
    beat_spanned: torch.Tensor | None = None
    measure_spanned: torch.Tensor | None = None
    hierarchy: Hierarchy | None = None
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)


class HanModel(nn.Module):
    """The HAN family; ``forward(NoteBatch) -> ModelOutput`` with logits ``[B, num_labels]``."""

    def __init__(self, config: HanConfig, input_dim: int, num_labels: int):
        super().__init__()
        self.config = config
        hidden, width = config.hidden_size, 2 * config.hidden_size
        heads, temp = config.num_heads, config.attention_temperature
        built = set(config.levels)
        # A single Linear, no activation / dropout / norm (reference MixEmbedder).
        self.embedder = nn.Linear(input_dim, hidden)
        self.note_lstm = _bilstm(hidden, hidden, config.flat_layers or config.note_layers, config.dropout)
        if "voice" in built:
            self.voice_lstm = _bilstm(hidden, hidden, config.voice_layers, config.dropout)
        if "beat" in built:
            beat_input = 2 * width if "voice" in built else width  # [note | voice] or note only
            self.beat_attention = ContextAttention(beat_input, heads, temp)
            self.beat_lstm = _bilstm(beat_input, hidden, config.beat_layers, config.dropout)
        if "measure" in built:
            self.measure_attention = ContextAttention(width, heads, temp)
            self.measure_lstm = _bilstm(width, hidden, config.measure_layers, config.dropout)
        self.readout_blocks = _readout_blocks(config)
        # Readouts over note-aligned levels project to 2H first; beat/measure read their LSTM directly.
        self.readout_projection = (nn.Linear(width * len(self.readout_blocks), width)
                                   if self.readout_blocks else None)
        self.readout_attention = ContextAttention(width, heads, temp)
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(width, width), nn.GELU(),
                                  nn.Dropout(config.dropout), nn.Linear(width, num_labels))

    def _zeroed(self, level: str) -> bool:
        if level not in self.config.zero_levels:
            return False
        return self.config.zero_mode == "train_and_eval" or not self.training

    def encode_levels(self, batch: NoteBatch) -> HanLevels:
        """Run the encoder levels the config builds; zeroing is applied here."""
        mask, lengths = batch.mask, batch.lengths
        notes = self.embedder(batch.features)
        out = HanLevels(note_mask=mask, note=packed_lstm(self.note_lstm, notes, lengths))
        if "voice" in self.config.levels:
            out.voice = (notes.new_zeros(out.note.shape) if self._zeroed("voice")
                         else voicewise_lstm(self.voice_lstm, notes, batch.voice, mask))
        if "beat" in self.config.levels:
            self._encode_beats(batch, out)
        return out

    def _encode_beats(self, batch: NoteBatch, out: HanLevels) -> None:
        mask = out.note_mask
        hier = out.hierarchy = Hierarchy.from_indices(batch.beat_index, batch.measure_index, mask)
        diag = out.diagnostics
        beat_input = out.note if out.voice is None else torch.cat([out.note, out.voice], dim=-1)
        note_beat = hier.note_beat[mask]
        beat_nodes, beat_weights = self.beat_attention.pool_segments(beat_input[mask], note_beat,
                                                                     hier.num_beats)
        out.beat = packed_lstm(self.beat_lstm, pad_segments(beat_nodes, hier.beats_per_item),
                               hier.beats_per_item)
        out.beat_mask = segment_mask(hier.beats_per_item)
        diag["attn_entropy/beat"] = normalised_entropy(beat_weights, note_beat, hier.num_beats)
        diag["count/beats_per_item"] = hier.beats_per_item.float().mean()
        beat_flat = out.beat[out.beat_mask]  # [num_beats, 2H], global-id order
        if "beat_spanned" in self.readout_blocks:
            out.beat_spanned = (out.note.new_zeros(out.note.shape) if self._zeroed("beat")
                                else broadcast_to_notes(beat_flat, hier.note_beat, mask))
        if "measure" not in self.config.levels:
            return
        measure_nodes, measure_weights = self.measure_attention.pool_segments(
            beat_flat, hier.beat_measure, hier.num_measures)
        out.measure = packed_lstm(self.measure_lstm, pad_segments(measure_nodes, hier.measures_per_item),
                                  hier.measures_per_item)
        out.measure_mask = segment_mask(hier.measures_per_item)
        diag["attn_entropy/measure"] = normalised_entropy(measure_weights, hier.beat_measure,
                                                          hier.num_measures)
        diag["count/measures_per_item"] = hier.measures_per_item.float().mean()
        if "measure_spanned" in self.readout_blocks:
            out.measure_spanned = (out.note.new_zeros(out.note.shape) if self._zeroed("measure")
                                   else broadcast_to_notes(out.measure[out.measure_mask],
                                                           hier.note_measure, mask))

    def readout_frames(self, levels: HanLevels) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """The sequence the readout attention pools: ``(frames [B, N, 2H], mask [B, N], shares)``.

        For projected readouts the projection is computed block by block,
        ``sum_k W_k h_k + b`` (equal to the Linear on the concatenation), so a zeroed block
        removes exactly ``W_k h_k`` and each block's share ``||W_k h_k|| / sum_j ||W_j h_j||``
        (mean over real notes) comes for free; shares are reported when >1 block.
        """
        if self.readout_projection is None:
            name = self.config.readout
            return getattr(levels, name), getattr(levels, f"{name}_mask"), {}
        weight, width = self.readout_projection.weight, self.readout_projection.out_features
        terms = [F.linear(getattr(levels, block), weight[:, i * width:(i + 1) * width])
                 for i, block in enumerate(self.readout_blocks)]
        frames = torch.stack(terms).sum(0) + self.readout_projection.bias
        shares: dict[str, torch.Tensor] = {}
        if len(terms) > 1:
            with torch.no_grad():
                norms = torch.stack([t.norm(dim=-1) for t in terms])  # [K, B, T]
                share = (norms / norms.sum(0).clamp_min(1e-12))[:, levels.note_mask]
                for block, value in zip(self.readout_blocks, share.mean(-1)):
                    shares[f"contribution/{block.removesuffix('_spanned')}"] = value
        return frames, levels.note_mask, shares

    def encode(self, batch: NoteBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder protocol: the readout frames ``[B, N, 2H]`` and their mask ``[B, N]``."""
        frames, mask, _ = self.readout_frames(self.encode_levels(batch))
        return frames, mask

    def forward(self, batch: NoteBatch) -> ModelOutput:
        levels = self.encode_levels(batch)
        frames, frame_mask, shares = self.readout_frames(levels)
        pooled, weights = self.readout_attention(frames, frame_mask)
        logits = self.head(pooled)
        diagnostics = {**levels.diagnostics, **shares}
        rows = frame_mask.nonzero()[:, 0]  # item of every real frame: one readout segment per item
        diagnostics["attn_entropy/readout"] = normalised_entropy(weights[frame_mask], rows,
                                                                 frame_mask.shape[0])
        diagnostics["count/notes_per_item"] = batch.lengths.float().mean()
        return ModelOutput(logits=logits, embedding=pooled,
                           diagnostics={k: v.detach() for k, v in diagnostics.items()})


def build_han(config: HanConfig, input_dim: int, num_labels: int) -> HanModel:
    """Registry builder: ``build(config, input_dim, num_labels) -> nn.Module``."""
    return HanModel(config, input_dim, num_labels)
