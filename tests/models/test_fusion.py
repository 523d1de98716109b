"""The fusion variants on hand-made frame batches (unit tests of the modules alone; the
real-data path is in tests/fusion/)."""

import pytest
import torch

from pianoeval.data import LABEL_NAMES
from pianoeval.errors import ConfigError
from pianoeval.experiment import ExperimentConfig
from pianoeval.fusion.data import FusionBatch
from pianoeval.models.fusion import FusionConfig, FusionModel
from pianoeval.models.registry import get_model

LABELS = 19
SMALL = {"z_dim": 16, "head_hidden": 16, "pool_heads": 2, "fusion_dim": 8, "fusion_heads": 2, "head_dropout": 0.0}


def config(fusion: str, **extra) -> FusionConfig:
    return FusionConfig(fusion=fusion, **SMALL, **extra)


def batch(lengths_a=(5, 3, 7), lengths_s=(4, 6, 2), width_a=6, width_s=10, pad_value=0.0, seed=0) -> FusionBatch:
    g = torch.Generator().manual_seed(seed)
    n = len(lengths_a)

    def frames(lengths, width):
        x = torch.randn(n, max(lengths), width, generator=g)
        for i, length in enumerate(lengths):
            x[i, length:] = pad_value
        return x, torch.tensor(lengths)

    audio, la = frames(lengths_a, width_a)
    symbolic, ls = frames(lengths_s, width_s)
    score, lc = frames(lengths_s, width_s)
    return FusionBatch(labels=torch.rand(n, LABELS, generator=g), label_std=torch.zeros(n, LABELS),
                       group=torch.tensor([0, 0, 1])[:n], segment_ids=[f"s{i}" for i in range(n)],
                       audio=audio, audio_lengths=la, symbolic=symbolic, symbolic_lengths=ls,
                       score=score, score_lengths=lc)


def model(fusion: str, seed: int = 0) -> FusionModel:
    torch.manual_seed(seed)
    return FusionModel(config(fusion), (6, 10), LABELS).eval()


def test_gates_pinned_to_one_or_zero_are_exactly_the_single_modality_controls():
    gated = model("gated")
    b = batch()
    for value, control_name, part in ((1.0, "audio_only", "audio"), (0.0, "symbolic_only", "symbolic")):
        control = model(control_name, seed=1)
        # same embedding and heads as the gated model: copy the shared parts across
        state = {k: v for k, v in gated.state_dict().items() if k.split(".")[0] in (part, "regression", "ranking")}
        control.load_state_dict(state)
        gated.gate_override = value
        with torch.no_grad():
            fused, alone = gated(b), control(b)
        torch.testing.assert_close(fused.logits, alone.logits)
        torch.testing.assert_close(fused.rank_scores, alone.rank_scores)
        assert float(fused.diagnostics["contribution/audio"]) == value
    gated.gate_override = None
    with torch.no_grad():
        free = gated(b)
    assert not torch.allclose(free.logits, control(b).logits)  # an unpinned gate mixes the two


def test_gate_diagnostics_give_mean_and_std_per_quality_dimension():
    gated = model("gated")
    assert gated.label_names[0] == "dim0"  # until the trainer names the run's dimensions (NamesDimensions)
    gated.label_names = list(LABEL_NAMES)
    out = gated(batch())
    means = [k for k in out.diagnostics if k.startswith("gate_mean/")]
    stds = [k for k in out.diagnostics if k.startswith("gate_std/")]
    assert len(means) == len(stds) == LABELS
    assert all(0 < float(out.diagnostics[k]) < 1 for k in means)
    assert means[0] == f"gate_mean/{LABEL_NAMES[0]}"


@pytest.mark.parametrize("fusion", ["audio_only", "symbolic_only", "concat", "gated", "cross_attention",
                                    "score_conditioned"])
def test_padded_frames_do_not_change_any_output(fusion):
    """Whatever sits in padded positions (here: huge values) is never read."""
    m = model(fusion)
    with torch.no_grad():
        clean, noisy = m(batch(pad_value=0.0)), m(batch(pad_value=1e4))
    torch.testing.assert_close(clean.logits, noisy.logits)
    torch.testing.assert_close(clean.embedding, noisy.embedding)


def test_cross_attention_gives_padded_keys_zero_weight_and_logs_both_directions():
    m = model("cross_attention")
    b = batch()
    captured = {}
    hook = m.audio_to_symbolic.attention.register_forward_hook(lambda mod, args, out: captured.update(w=out[1]))
    with torch.no_grad():
        out = m(b)
    hook.remove()
    weights = captured["w"]  # [B, Ta, Ts]
    for i, length in enumerate(b.symbolic_lengths.tolist()):
        assert torch.all(weights[i, :, length:] == 0)
        torch.testing.assert_close(weights[i, :, :length].sum(-1), torch.ones(weights.shape[1]))
    for direction in ("audio_to_symbolic", "symbolic_to_audio"):
        assert 0 < float(out.diagnostics[f"xattn_entropy/{direction}"]) <= 1
    assert -1 <= float(out.diagnostics["alignment_cos"]) <= 1


@pytest.mark.parametrize("fusion", ["concat", "gated", "cross_attention", "score_conditioned"])
def test_reordering_a_batch_reorders_the_outputs_and_nothing_else(fusion):
    m = model(fusion)
    b = batch()
    order = [2, 0, 1]

    def take(x):
        return x[order]

    shuffled = FusionBatch(labels=take(b.labels), label_std=take(b.label_std), group=take(b.group),
                           segment_ids=[b.segment_ids[i] for i in order], audio=take(b.audio),
                           audio_lengths=take(b.audio_lengths), symbolic=take(b.symbolic),
                           symbolic_lengths=take(b.symbolic_lengths), score=take(b.score),
                           score_lengths=take(b.score_lengths))
    with torch.no_grad():
        out, out_shuffled = m(b), m(shuffled)
    torch.testing.assert_close(out.logits[order], out_shuffled.logits)
    torch.testing.assert_close(out.rank_scores[order], out_shuffled.rank_scores)


def test_encoders_of_the_wrong_track_are_refused_with_the_choices():
    with pytest.raises(ConfigError, match="symbolic_encoder: a1_lora reads audio input; use one of .*han"):
        ExperimentConfig.resolve({"model": {"name": "fusion_f3_gated", "symbolic_encoder": {"name": "a1_lora"}}})
    with pytest.raises(ConfigError, match="audio_encoder: s2_gnn reads note_graph input"):
        ExperimentConfig.resolve({"model": {"name": "fusion_f2_concat", "audio_encoder": {"name": "s2_gnn"}}})


def test_the_resolved_config_holds_each_encoders_full_config():
    config = ExperimentConfig.resolve({"model": {"name": "fusion_f1_xattn",
                                                 "symbolic_encoder": {"name": "s2_gnn", "hidden_size": 32}}})
    spec = config.model_spec()
    assert spec.fusion == "cross_attention"
    assert spec.symbolic_encoder["hidden_size"] == 32 and "num_layers" in spec.symbolic_encoder
    assert spec.audio_encoder["name"] == "a1_lora" and "lora_rank" in spec.audio_encoder
    assert get_model("fusion_score").make_config({}).needs_score
