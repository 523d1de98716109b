"""The HAN family: every variant, honest parameter counts, masks, zeroing, config errors."""

import pytest
import torch
import torch.nn.functional as F

from pianoeval.data.batch import NoteBatch
from pianoeval.errors import ConfigError
from pianoeval.models.configs.han import VARIANTS, HanConfig
from pianoeval.models.han import HanModel
from pianoeval.models.registry import get_model

NUM_LABELS = 19
TINY = {"hidden_size": 8, "num_heads": 2}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread, as in sweeps: on shared cores oneDNN's multi-threaded LSTM spins badly."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_batch(lengths=(23, 9, 14), input_dim=6, seed=0) -> NoteBatch:
    """Random notes with contiguous beats (0-3 notes per step), 1-3 beats per measure, voices 0-3."""
    g = torch.Generator().manual_seed(seed)
    batch, steps = len(lengths), max(lengths)
    features = torch.zeros(batch, steps, input_dim)
    beat, measure, voice = (torch.zeros(batch, steps, dtype=torch.long) for _ in range(3))
    for b, n in enumerate(lengths):
        features[b, :n] = torch.randn(n, input_dim, generator=g)
        new_beat = torch.rand(n, generator=g) < 0.4
        new_beat[0] = False
        beat[b, :n] = torch.cumsum(new_beat.long(), 0)
        beats_per_measure = torch.randint(1, 4, (n,), generator=g)
        measure_of_beat = torch.repeat_interleave(torch.arange(n), beats_per_measure)[:n]
        measure[b, :n] = measure_of_beat[beat[b, :n]]
        voice[b, :n] = torch.randint(0, 4, (n,), generator=g)
    return NoteBatch(labels=torch.rand(batch, NUM_LABELS, generator=g), label_std=torch.zeros(batch, NUM_LABELS),
                     group=torch.arange(batch), segment_ids=[f"item{b}" for b in range(batch)],
                     features=features, lengths=torch.tensor(lengths), beat_index=beat,
                     measure_index=measure, voice=voice)


def item_alone(batch: NoteBatch, b: int) -> NoteBatch:
    n = int(batch.lengths[b])
    cut = slice(b, b + 1)
    return NoteBatch(labels=batch.labels[cut], label_std=batch.label_std[cut], group=batch.group[cut],
                     segment_ids=batch.segment_ids[cut], features=batch.features[cut, :n],
                     lengths=batch.lengths[cut], beat_index=batch.beat_index[cut, :n],
                     measure_index=batch.measure_index[cut, :n], voice=batch.voice[cut, :n])


def build(name: str, input_dim: int = 6, **overrides) -> HanModel:
    entry = get_model(name)
    return entry.build(entry.make_config({**TINY, **overrides}), input_dim, NUM_LABELS)


VARIANT_NAMES = [entry.name for entry in VARIANTS]


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_variant_forward_backward(name):
    torch.manual_seed(0)
    model = build(name)
    out = model(make_batch())
    assert out.logits.shape == (3, NUM_LABELS)
    assert out.embedding.shape == (3, 2 * TINY["hidden_size"])
    assert all(v.ndim == 0 and not v.requires_grad for v in out.diagnostics.values())
    out.logits.sum().backward()
    # only modules on the path are built, so every parameter gets a gradient
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_variant_table():
    entries = {entry.name: entry for entry in VARIANTS}
    assert set(entries) == {"bilstm_baseline", "note_sa", "note_voice", "note_beat", "note_voice_beat",
                            "han", "han_total_cat", "flat_bilstm_7"}
    assert all(e.input_kind == "notes" for e in VARIANTS)
    assert entries["bilstm_baseline"].data_defaults == {"feature_set": "perf_only"}
    assert all(e.data_defaults == {"feature_set": "full"} for n, e in entries.items() if n != "bilstm_baseline")


# Reference section 3.5: on-path parameters at D_in = 101 and the default sizes.
@pytest.mark.parametrize("name, expected", [
    ("han", 12_914_195), ("bilstm_baseline", 3_453_971), ("note_voice", 6_345_747),
    ("note_voice_beat", 11_074_067), ("han_total_cat", 13_963_283),
])
def test_parameter_count_matches_reference(name, expected):
    entry = get_model(name)
    model = entry.build(entry.make_config({}), 101, NUM_LABELS)
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_outputs_independent_of_padding(name):
    torch.manual_seed(0)
    model = build(name).eval()
    batch = make_batch()
    with torch.no_grad():
        together = model(batch)
        for b in range(len(batch)):
            alone = model(item_alone(batch, b))
            assert torch.allclose(together.logits[b], alone.logits[0], atol=1e-5)
            assert torch.allclose(together.embedding[b], alone.embedding[0], atol=1e-5)


def _twin(name: str, **zeroing) -> tuple[HanModel, HanModel]:
    """The same weights with and without zeroing."""
    torch.manual_seed(0)
    plain, zeroed = build(name), build(name, **zeroing)
    zeroed.load_state_dict(plain.state_dict())
    return plain, zeroed


@pytest.mark.parametrize("level, block", [("beat", "beat_spanned"), ("measure", "measure_spanned")])
def test_eval_zeroing_removes_exactly_the_block_projection(level, block):
    plain, zeroed = _twin("han_total_cat", zero_levels=[level], zero_mode="eval_only")
    plain.eval(), zeroed.eval()
    batch = make_batch()
    with torch.no_grad():
        levels = plain.encode_levels(batch)
        full, mask, _ = plain.readout_frames(levels)
        ablated, _, _ = zeroed.readout_frames(zeroed.encode_levels(batch))
        width = 2 * TINY["hidden_size"]
        k = plain.readout_blocks.index(block)
        w_block = plain.readout_projection.weight[:, k * width:(k + 1) * width]
        expected = F.linear(getattr(levels, block), w_block)
    assert torch.allclose((full - ablated)[mask], expected[mask], atol=1e-6)
    assert not torch.allclose(full[mask], ablated[mask])


def test_eval_only_zeroing_leaves_training_untouched():
    plain, zeroed = _twin("han_total_cat", zero_levels=["voice", "beat", "measure"], zero_mode="eval_only")
    batch = make_batch()
    torch.manual_seed(1)
    train_plain = plain(batch).logits
    torch.manual_seed(1)  # same dropout masks
    assert torch.equal(zeroed(batch).logits, train_plain)
    plain.eval(), zeroed.eval()
    with torch.no_grad():
        assert not torch.allclose(zeroed(batch).logits, plain(batch).logits)


def test_train_and_eval_zeroing_is_always_on():
    _, zeroed = _twin("han_total_cat", zero_levels=["beat"], zero_mode="train_and_eval")
    for training in (True, False):
        zeroed.train(training)
        levels = zeroed.encode_levels(make_batch())
        assert torch.all(levels.beat_spanned == 0) and levels.measure_spanned.abs().sum() > 0


def test_voice_zeroing_and_contribution_shares():
    _, zeroed = _twin("note_voice", zero_levels=["voice"])
    out = zeroed(make_batch())
    assert float(out.diagnostics["contribution/voice"]) == 0.0
    assert float(out.diagnostics["contribution/note"]) == pytest.approx(1.0)
    shares = build("han_total_cat")(make_batch()).diagnostics
    parts = [float(shares[f"contribution/{k}"]) for k in ("note", "voice", "beat", "measure")]
    assert all(p > 0 for p in parts) and sum(parts) == pytest.approx(1.0, abs=1e-5)


def test_diagnostics_of_full_han():
    diag = build("han")(make_batch()).diagnostics
    for key in ("attn_entropy/beat", "attn_entropy/measure", "attn_entropy/readout"):
        assert 0.0 <= float(diag[key]) <= 1.0 + 1e-6
    assert diag["count/beats_per_item"] >= diag["count/measures_per_item"] >= 1


def test_note_beat_has_no_voice_branch():
    model = build("note_beat")
    assert not hasattr(model, "voice_lstm")
    assert model.beat_attention.size == 2 * TINY["hidden_size"]  # note_out only, not [note|voice]


@pytest.mark.parametrize("overrides, message", [
    ({"readout": "measure", "levels": ["voice", "beat"]}, "needs levels \\['measure'\\]"),
    ({"levels": ["voice", "measure"]}, "'measure' needs 'beat'"),
    ({"readout": "measure", "zero_levels": ["beat"]}, "only path"),
    ({"readout": "beat", "levels": ["beat"], "zero_levels": ["beat"]}, "only path"),
    ({"readout": "note", "levels": ["voice"]}, "would not reach readout"),
    ({"readout": "voice", "levels": ["voice"], "zero_levels": ["beat"]}, "'beat' is not built"),
    ({"readout": "note", "levels": [], "flat_layers": 7, "zero_levels": []}, None),
    ({"readout": "voice", "levels": ["voice"], "flat_layers": 7}, "flat control"),
    ({"hidden_size": 10, "num_heads": 8}, "does not divide"),
    ({"levels": ["beat", "beat", "measure"]}, "duplicate level"),
    ({"zero_mode": "always"}, "zero_mode"),
])
def test_config_validation(overrides, message):
    if message is None:
        HanConfig(**overrides)
        return
    with pytest.raises(ValueError, match=message):
        HanConfig(**overrides)


def test_registry_config_errors_name_file_and_key():
    with pytest.raises(ConfigError, match=r"exp\.yaml: model: .*only path"):
        get_model("han").make_config({"zero_levels": ["beat"]}, source="exp.yaml")
    with pytest.raises(ConfigError, match=r"exp\.yaml: model\.hidden_sise: unknown key"):
        get_model("han").make_config({"hidden_sise": 8}, source="exp.yaml")


def test_levels_are_canonically_ordered():
    assert HanConfig(levels=["measure", "voice", "beat"]).levels == ("voice", "beat", "measure")


@pytest.mark.parametrize("name", ["han", "han_total_cat", "note_voice"])
def test_single_note_items(name):
    torch.manual_seed(0)
    out = build(name)(make_batch(lengths=(5, 1)))
    assert torch.isfinite(out.logits).all()
    out.logits.sum().backward()
