"""ContextAttention: the reference formula, the explicit length mask, segment pooling."""

import pytest
import torch

from pianoeval.models.attention import ContextAttention


def _reference_pool(attn: ContextAttention, x: torch.Tensor) -> torch.Tensor:
    """The reference formula for one unpadded sequence ``[T, C]``, head by head."""
    d = attn.head_size
    keys = torch.tanh(attn.attention_net(x))
    out = []
    for h in range(attn.num_heads):
        s = keys[:, h * d:(h + 1) * d] @ attn.context_vector[h] / attn.temperature
        out.append((torch.softmax(s, 0).unsqueeze(1) * x[:, h * d:(h + 1) * d]).sum(0))
    return torch.cat(out)


def test_parameters_and_init():
    attn = ContextAttention(512, 8)
    assert sum(p.numel() for p in attn.parameters()) == 263_168
    assert attn.context_vector.shape == (8, 64)
    assert attn.context_vector.abs().max() <= 1.0


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_matches_reference_formula(temperature):
    torch.manual_seed(0)
    attn = ContextAttention(12, 3, temperature)
    x = torch.randn(1, 7, 12)
    pooled, weights = attn(x, torch.ones(1, 7, dtype=torch.bool))
    assert torch.allclose(pooled[0], _reference_pool(attn, x[0]), atol=1e-6)
    assert weights.shape == (1, 7, 3)


def test_temperature_divides_scores():
    torch.manual_seed(0)
    sharp, plain = ContextAttention(8, 2, 0.5), ContextAttention(8, 2)
    plain.load_state_dict(sharp.state_dict())
    x = torch.randn(5, 8)
    assert torch.allclose(sharp.scores(x), 2 * plain.scores(x))


def test_length_mask_ignores_padding_contents():
    torch.manual_seed(0)
    attn = ContextAttention(8, 2)
    x = torch.randn(2, 6, 8)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    x_garbage = x.clone()
    x_garbage[1, 4:] = 1e3 * torch.randn(2, 8)  # e.g. a Linear's bias on padded rows (quirk 3.6.1)
    pooled, weights = attn(x_garbage, mask)
    alone, _ = attn(x[1:, :4], mask[1:, :4])
    assert torch.allclose(pooled[1], alone[0], atol=1e-6)
    assert torch.all(weights[1, 4:] == 0)
    assert torch.allclose(weights.sum(1), torch.ones(2, 2))


def test_pool_segments_equals_per_segment_readout():
    torch.manual_seed(0)
    attn = ContextAttention(8, 4)
    x = torch.randn(9, 8)
    segment_ids = torch.tensor([0, 0, 0, 1, 2, 2, 3, 3, 3])
    nodes, weights = attn.pool_segments(x, segment_ids, 4)
    assert nodes.shape == (4, 8) and weights.shape == (9, 4)
    for s in range(4):
        rows = x[segment_ids == s]
        assert torch.allclose(nodes[s], _reference_pool(attn, rows), atol=1e-6)
        assert torch.allclose(weights[segment_ids == s].sum(0), torch.ones(4))


def test_invalid_sizes():
    with pytest.raises(ValueError, match="not divisible"):
        ContextAttention(10, 3)
    with pytest.raises(ValueError, match="temperature"):
        ContextAttention(8, 2, 0.0)
