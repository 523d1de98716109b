"""Fusion of the audio and symbolic tracks (the v2 design's F1-F3) and its controls.

The encoders are frozen: their frames (the sequence each encoder's ``encode`` returns)
are computed once per segment and cached (``pianoeval.fusion.frames``); a fusion model
trains on those frames only. Every variant reads the same ``FusionBatch`` and ends in
the same heads (regression + per-dimension ranking), so a comparison between variants
measures the fusion, not the heads:

    audio frames    -> pooling -> MLP -> z_audio     \
    symbolic frames -> pooling -> MLP -> z_symbolic  -> fusion -> z -> heads
    (score frames   -> pooling -> MLP -> z_score)    /

* ``audio_only`` / ``symbolic_only``: z = z_audio / z_symbolic (the controls).
* ``concat`` (F2): z = MLP([z_audio; z_symbolic]).
* ``gated`` (F3): per quality dimension d, gate_d = sigmoid(w_d . [z_audio; z_symbolic] + b_d)
  and z_d = gate_d * z_audio + (1 - gate_d) * z_symbolic; dimension d's regression and
  ranking heads read z_d. gate_d = 1 everywhere is exactly ``audio_only`` with the same
  weights, 0 is ``symbolic_only``.
* ``cross_attention`` (F1): both frame sequences are projected to ``fusion_dim``; audio
  frames attend to symbolic frames and symbolic frames to audio frames (multi-head,
  padding masked, residual + LayerNorm); each attended sequence is pooled, and
  z = MLP([z_audio'; z_symbolic']).
* ``score_conditioned``: a third input, the segment's score MIDI through the symbolic
  encoder; z = MLP([z_audio; z_symbolic; z_score; z_symbolic - z_score]) (performance
  audio, performance MIDI and what the score asks for).

Diagnostics (``ModelOutput.diagnostics``, logged every epoch as ``diag/*``):
``gate_mean/<dimension>`` and ``gate_std/<dimension>`` (F3), ``xattn_entropy/audio_to_symbolic``
and ``xattn_entropy/symbolic_to_audio`` (F1; normalised, 1 = uniform), ``alignment_cos``
(cosine similarity of paired z_audio and z_symbolic), ``contribution/audio`` (the audio
share: F3 the mean gate, otherwise the audio half's share of the fusion MLP's first-layer
activation norm) and each modality's pooling entropy.
"""

from __future__ import annotations

import torch
from torch import nn

from pianoeval.models.configs.fusion import FusionConfig
from pianoeval.models.heads import PooledEmbedding, shared_mlp
from pianoeval.models.output import ModelOutput


# --- building blocks ----------------------------------------------------------------------
def attention_entropy(weights: torch.Tensor, query_mask: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """Mean normalised entropy of attention rows ``weights`` [B, Tq, Tk] (each row sums to 1
    over the real keys); 1 = uniform over the keys, 0 = one key. Rows of padded queries and
    items with a single key are left out; NaN when nothing is left."""
    with torch.no_grad():
        entropy = -torch.special.xlogy(weights, weights).sum(-1)  # [B, Tq]
        keys = key_mask.sum(-1, keepdim=True).to(weights.dtype)  # [B, 1]
        valid = query_mask & (keys > 1)
        if not bool(valid.any()):
            return weights.new_tensor(float("nan"))
        return (entropy / keys.clamp(min=2).log())[valid].mean()


class CrossAttention(nn.Module):
    """Queries attend to another sequence; residual + LayerNorm. Padded keys get no weight."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.attention = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(width)

    def forward(self, queries, query_mask, keys, key_mask) -> tuple[torch.Tensor, torch.Tensor]:
        attended, weights = self.attention(queries, keys, keys, key_padding_mask=~key_mask, need_weights=True,
                                           average_attn_weights=True)
        out = self.norm(queries + attended) * query_mask.unsqueeze(-1)
        return out, attention_entropy(weights, query_mask, key_mask)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return nn.functional.cosine_similarity(a.detach(), b.detach(), dim=-1).mean()


def _contribution(first_layer: nn.Linear, parts: list[torch.Tensor]) -> torch.Tensor:
    """Audio share of the first fusion layer's activation: |W_a z_a| / sum_k |W_k z_k|."""
    with torch.no_grad():
        norms, start = [], 0
        for part in parts:
            width = part.shape[-1]
            norms.append((part @ first_layer.weight[:, start:start + width].T).norm(dim=-1))
            start += width
        return (norms[0] / torch.stack(norms).sum(0).clamp(min=1e-12)).mean()


class FusionModel(nn.Module):
    """One fusion variant + the shared heads; ``forward(FusionBatch) -> ModelOutput``."""

    def __init__(self, config: FusionConfig, input_dims: tuple[int, int], num_labels: int):
        super().__init__()
        self.fusion = config.fusion
        audio_dim, symbolic_dim = input_dims
        self.uses_audio = self.fusion != "symbolic_only"
        self.uses_symbolic = self.fusion != "audio_only"
        #: names of the per-dimension gate diagnostics; the trainer sets the run's (NamesDimensions)
        self.label_names = [f"dim{d}" for d in range(num_labels)]
        #: tests and analyses may pin F3's gate (1.0: audio only, 0.0: symbolic only)
        self.gate_override: float | None = None
        z = config.z_dim
        if self.fusion == "cross_attention":
            self.audio_in = nn.Linear(audio_dim, config.fusion_dim)
            self.symbolic_in = nn.Linear(symbolic_dim, config.fusion_dim)
            self.audio_to_symbolic = CrossAttention(config.fusion_dim, config.fusion_heads, config.head_dropout)
            self.symbolic_to_audio = CrossAttention(config.fusion_dim, config.fusion_heads, config.head_dropout)
            audio_dim = symbolic_dim = config.fusion_dim
        if self.uses_audio:
            self.audio = PooledEmbedding(audio_dim, config)
        if self.uses_symbolic:
            self.symbolic = PooledEmbedding(symbolic_dim, config)
        if self.fusion == "score_conditioned":
            self.score = PooledEmbedding(symbolic_dim, config)
        if self.fusion in ("concat", "cross_attention"):
            self.mix = shared_mlp(2 * z, config)
        elif self.fusion == "score_conditioned":
            self.mix = shared_mlp(4 * z, config)
        elif self.fusion == "gated":
            self.gate = nn.Linear(2 * z, num_labels)
        self.regression = nn.Linear(z, num_labels)
        self.ranking = nn.Linear(z, num_labels)

    def forward(self, batch) -> ModelOutput:
        diagnostics: dict[str, torch.Tensor] = {}
        audio, audio_mask = batch.audio, batch.audio_mask
        symbolic, symbolic_mask = batch.symbolic, batch.symbolic_mask
        if self.fusion == "cross_attention":
            audio = self.audio_in(audio) * audio_mask.unsqueeze(-1)
            symbolic = self.symbolic_in(symbolic) * symbolic_mask.unsqueeze(-1)
            audio_att, diagnostics["xattn_entropy/audio_to_symbolic"] = self.audio_to_symbolic(
                audio, audio_mask, symbolic, symbolic_mask)
            symbolic_att, diagnostics["xattn_entropy/symbolic_to_audio"] = self.symbolic_to_audio(
                symbolic, symbolic_mask, audio, audio_mask)
            audio, symbolic = audio_att, symbolic_att
        z_audio = z_symbolic = None
        if self.uses_audio:
            z_audio, d = self.audio.embed(audio, audio_mask)
            diagnostics["attn_entropy/audio_pool"] = d["attn_entropy/pool"]
        if self.uses_symbolic:
            z_symbolic, d = self.symbolic.embed(symbolic, symbolic_mask)
            diagnostics["attn_entropy/symbolic_pool"] = d["attn_entropy/pool"]
        if z_audio is not None and z_symbolic is not None:
            diagnostics["alignment_cos"] = _cosine(z_audio, z_symbolic)

        if self.fusion == "audio_only":
            z = z_audio
        elif self.fusion == "symbolic_only":
            z = z_symbolic
        elif self.fusion == "gated":
            return self._gated(z_audio, z_symbolic, diagnostics)
        else:
            parts = [z_audio, z_symbolic]
            if self.fusion == "score_conditioned":
                z_score, _ = self.score.embed(batch.score, batch.score_mask)
                parts += [z_score, z_symbolic - z_score]
                diagnostics["score_alignment_cos"] = _cosine(z_symbolic, z_score)
            diagnostics["contribution/audio"] = _contribution(self.mix[0], parts)
            z = self.mix(torch.cat(parts, dim=-1))
        return ModelOutput(logits=self.regression(z), embedding=z, rank_scores=self.ranking(z),
                           diagnostics={k: v.detach() for k, v in diagnostics.items()})

    def gates(self, z_audio: torch.Tensor, z_symbolic: torch.Tensor) -> torch.Tensor:
        """[B, N] F3 gates: the audio weight of each quality dimension."""
        if self.gate_override is not None:
            return z_audio.new_full((z_audio.shape[0], self.regression.out_features), float(self.gate_override))
        return torch.sigmoid(self.gate(torch.cat([z_audio, z_symbolic], dim=-1)))

    def _gated(self, z_audio, z_symbolic, diagnostics) -> ModelOutput:
        gate = self.gates(z_audio, z_symbolic)  # [B, N]
        # z_d = gate_d * z_audio + (1 - gate_d) * z_symbolic, one z per dimension: [B, N, Z]
        z_per_dim = gate.unsqueeze(-1) * z_audio.unsqueeze(1) + (1 - gate.unsqueeze(-1)) * z_symbolic.unsqueeze(1)
        logits = (z_per_dim * self.regression.weight).sum(-1) + self.regression.bias
        ranks = (z_per_dim * self.ranking.weight).sum(-1) + self.ranking.bias
        detached = gate.detach()
        for d, name in enumerate(self.label_names):
            diagnostics[f"gate_mean/{name}"] = detached[:, d].mean()
            diagnostics[f"gate_std/{name}"] = detached[:, d].std(unbiased=False)
        diagnostics["contribution/audio"] = detached.mean()
        return ModelOutput(logits=logits, embedding=z_per_dim.mean(1), rank_scores=ranks,
                           diagnostics={k: v.detach() for k, v in diagnostics.items()})


def build_fusion(config: FusionConfig, input_dim: tuple[int, int], num_labels: int) -> FusionModel:
    return FusionModel(config, input_dim, num_labels)
