"""frames_probe and frames_transformer on hand-made frame batches (unit tests of the modules;
the real-data path is in tests/train/test_frames_run.py)."""

import pytest
import torch

from pianoeval.data.batch import FramesBatch
from pianoeval.errors import ConfigError
from pianoeval.experiment import ExperimentConfig
from pianoeval.models.registry import get_model

SMALL = {"z_dim": 16, "head_hidden": 16, "pool_heads": 2, "head_dropout": 0.0}
TRANSFORMER = {"layers": 2, "width": 16, "heads": 2, "dropout": 0.0}


def batch(lengths=(5, 3), width=12, pad_value=0.0, seed=0) -> FramesBatch:
    g = torch.Generator().manual_seed(seed)
    n = len(lengths)
    frames = torch.randn(n, max(lengths), width, generator=g)
    for i, length in enumerate(lengths):
        frames[i, length:] = pad_value
    return FramesBatch(labels=torch.rand(n, 19, generator=g), label_std=torch.zeros(n, 19),
                       group=torch.zeros(n, dtype=torch.int64), segment_ids=[f"s{i}" for i in range(n)],
                       frames=frames, lengths=torch.tensor(lengths))


def model(name: str, **extra):
    torch.manual_seed(0)
    entry = get_model(name)
    fields = {**SMALL, **(TRANSFORMER if name == "frames_transformer" else {}), **extra}
    return entry.build(entry.make_config(fields), 12, 19).eval()


@pytest.mark.parametrize("name", ["frames_probe", "frames_transformer"])
def test_a_batch_of_two_gives_logits_ranking_scores_and_an_embedding(name):
    out = model(name)(batch())
    assert out.logits.shape == out.rank_scores.shape == (2, 19) and out.embedding.shape == (2, 16)
    assert torch.isfinite(out.logits).all() and 0 <= float(out.diagnostics["attn_entropy/pool"]) <= 1


@pytest.mark.parametrize("name", ["frames_probe", "frames_transformer"])
def test_padded_frames_do_not_change_any_output(name):
    m = model(name)
    with torch.no_grad():
        clean, noisy = m(batch(pad_value=0.0)), m(batch(pad_value=1e4))
    torch.testing.assert_close(clean.logits, noisy.logits)
    torch.testing.assert_close(clean.embedding, noisy.embedding)


def test_the_probe_trains_only_pooling_and_heads_and_the_transformer_its_layers_too():
    probe, transformer = model("frames_probe"), model("frames_transformer")
    assert not list(probe.encoder.parameters())
    projected = model("frames_probe", probe_width=8)
    assert projected.encoder.output_dim == 8 and projected(batch()).logits.shape == (2, 19)
    assert sum(p.numel() for p in transformer.encoder.parameters()) > 0
    assert len(transformer.encoder.layers.layers) == 2 and transformer.encoder.output_dim == 16


def test_the_transformer_config_is_checked_and_data_frames_is_required_with_the_export_command():
    with pytest.raises(ConfigError, match="width 18 is not divisible by heads 4"):
        ExperimentConfig.resolve({"model": {"name": "frames_transformer", "width": 18, "heads": 4}})
    config = ExperimentConfig.resolve({"model": {"name": "frames_probe"}}, "spec.yaml")
    with pytest.raises(ConfigError, match=r"spec\.yaml: data\.frames: required by model frames_probe .*"
                                          r"runners/export_frames\.py"):
        config.require_inputs("spec.yaml")
    with pytest.raises(ConfigError, match="data.frames: .*does not exist"):
        ExperimentConfig.resolve({"model": {"name": "frames_probe"}, "data": {"frames": "no/such/frames.pt"}})
