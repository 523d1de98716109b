"""S1: a Transformer encoder on REMI tokens, with BERT-style masked-token pre-training.

    tokens [B, T] -> embedding + learned chunk positions -> ChunkedTransformer
      -> frames [B, T, hidden_size] (mask: real tokens) -> shared heads

Pre-training (``MaskedTokens``): 15% of the real, non-special tokens are chosen; of
those 80% become ``MASK``, 10% a random non-special token, 10% stay; the encoder
predicts the original ids of the chosen tokens (BERT's head: Linear, GELU, LayerNorm, then
the tied input embedding; cross-entropy).
"""

from __future__ import annotations

import torch
from torch import nn

from pianoeval.models.configs.symbolic import RemiConfig
from pianoeval.models.symbolic_common import ChunkedTransformer, build_with_heads
from pianoeval.symbolic import tokens as remi

ENCODER = "s1"
EDGE_NAMES: tuple[str, ...] = ()  # not a graph
ARCH_FIELDS = {"hidden_size": "h", "num_layers": "l", "num_heads": "a", "ff_multiplier": "ff", "chunk_len": "c"}


class RemiEncoder(nn.Module):
    """REMI ids -> contextual token frames (encoder protocol: ``encode(batch)``)."""

    def __init__(self, config: RemiConfig, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.output_dim = config.hidden_size
        self.embed = nn.Embedding(vocab_size, config.hidden_size, padding_idx=remi.PAD_ID)
        nn.init.normal_(self.embed.weight, std=0.02)  # BERT's scale: tied output logits start near 0
        with torch.no_grad():
            self.embed.weight[remi.PAD_ID].zero_()
        self.dropout = nn.Dropout(config.dropout)
        self.transformer = ChunkedTransformer(config.hidden_size, config.num_layers, config.num_heads,
                                              config.ff_multiplier, config.dropout, config.chunk_len)

    def encode_tokens(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.transformer(self.dropout(self.embed(tokens)), mask)

    def encode(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        mask = batch.mask
        return self.encode_tokens(batch.tokens, mask), mask


class MaskedTokens(nn.Module):
    """BERT-style masked-token objective around a ``RemiEncoder``."""

    def __init__(self, encoder: RemiEncoder, mask_prob: float = 0.15):
        super().__init__()
        self.encoder = encoder
        self.mask_prob = mask_prob
        width = encoder.output_dim
        self.transform = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.LayerNorm(width))  # BERT's MLM head
        self.bias = nn.Parameter(torch.zeros(encoder.vocab_size))
        self.register_buffer("special", torch.as_tensor(remi.special_ids()), persistent=False)
        self.mask_id = remi.mask_id()

    def forward(self, batch, generator: torch.Generator):
        tokens, mask = batch.tokens, batch.mask
        eligible = mask & ~torch.isin(tokens, self.special)
        draw = torch.rand(tokens.shape, generator=generator).to(tokens.device)
        chosen = eligible & (draw < self.mask_prob)
        if not bool(chosen.any()):  # a tiny batch drew nothing: choose its first eligible token
            chosen = eligible & (eligible.cumsum(1) == 1)
        action = torch.rand(tokens.shape, generator=generator).to(tokens.device)
        random_ids = torch.randint(len(self.special), self.encoder.vocab_size, tokens.shape,
                                   generator=generator).to(tokens.device)
        inputs = torch.where(chosen & (action < 0.8), torch.full_like(tokens, self.mask_id), tokens)
        inputs = torch.where(chosen & (action >= 0.8) & (action < 0.9), random_ids, inputs)
        frames = self.encoder.encode_tokens(inputs, mask)
        logits = self.transform(frames[chosen]) @ self.encoder.embed.weight.T + self.bias  # tied output embedding
        target = tokens[chosen]
        loss = nn.functional.cross_entropy(logits, target)
        accuracy = (logits.argmax(-1) == target).float().mean()
        return {"masked_tokens": loss}, {"masked_token_acc": accuracy.detach()}, frames, mask


def build_remi(config: RemiConfig, input_dim: int, num_labels: int) -> nn.Module:
    """Registry builder; ``input_dim`` is the REMI vocabulary size."""
    return build_with_heads(ENCODER, RemiEncoder(config, input_dim), config, ARCH_FIELDS, input_dim, num_labels)


def make_objective(config: RemiConfig, input_dim: int, mask_prob: float) -> MaskedTokens:
    return MaskedTokens(RemiEncoder(config, input_dim), mask_prob)


#: The GPU default (the seed's 6 x 512, 8 heads): model overrides on the CPU-size variant.
GPU_SIZE = dict(hidden_size=512, num_layers=6, num_heads=8)
