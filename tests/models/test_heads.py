"""The shared pooling + heads pipeline and tier-aware losses (unit tests, synthetic inputs)."""

import math
from dataclasses import dataclass

import torch
from torch import nn

from pianoeval.data.batch import BatchBase
from pianoeval.experiment import ExperimentConfig
from pianoeval.models.heads import EncoderWithHeads, HeadsConfig
from pianoeval.train.module import PerformanceModule


@dataclass
class FrameBatch(BatchBase):
    frames: torch.Tensor = None
    mask: torch.Tensor = None


class FrameEncoder(nn.Module):
    output_dim = 16

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 16)

    def encode(self, batch):
        return self.proj(batch.frames), batch.mask


def _batch(n=6, t=5, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, t + 1, (n,), generator=g)
    return FrameBatch(labels=torch.rand(n, 19, generator=g), label_std=torch.rand(n, 19, generator=g),
                      group=torch.tensor([0, 0, 1, 1, 2, -1][:n]), segment_ids=[f"s{i}" for i in range(n)],
                      frames=torch.randn(n, t, 4, generator=g), mask=torch.arange(t) < lengths[:, None], **kw)


def test_heads_shapes_and_padding_independence():
    torch.manual_seed(0)
    model = EncoderWithHeads(FrameEncoder(), 19, HeadsConfig(z_dim=8, head_hidden=8, pool_heads=4)).eval()
    batch = _batch()
    out = model(batch)
    assert out.logits.shape == (6, 19) and out.rank_scores.shape == (6, 19) and out.embedding.shape == (6, 8)
    alone = _batch()
    alone.frames, alone.mask = batch.frames[:1, : int(batch.mask[0].sum())], batch.mask[:1, : int(batch.mask[0].sum())]
    assert torch.allclose(model(alone).logits[0], out.logits[0], atol=1e-5)
    assert 0 <= float(out.diagnostics["attn_entropy/pool"]) <= 1 or math.isnan(float(out.diagnostics["attn_entropy/pool"]))


def test_unlabelled_items_never_reach_the_regression_loss():
    config = ExperimentConfig.resolve({"model": {"name": "han"}, "train": {"lambda_rank": 1.0, "lambda_contrastive": 0.5}})
    module = PerformanceModule.__new__(PerformanceModule)
    nn.Module.__init__(module)
    module.config = config
    module.model = EncoderWithHeads(FrameEncoder(), 19, HeadsConfig(z_dim=8, head_hidden=8, pool_heads=4))
    batch = _batch(label_mask=torch.tensor([True, True, True, True, False, False]))
    batch.labels[4:] = float("nan")  # cross-performer items have no ratings
    total, logged = module._loss(module.model(batch), batch)
    assert torch.isfinite(total) and set(logged) == {"regression", "ranking", "contrastive", "total"}
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in module.model.parameters() if p.grad is not None)
