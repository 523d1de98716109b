"""The conformer backbone: padding-exact hidden states, layer ranges, parameter counts."""

import torch

from pianoeval.audio.backbones import BackboneSpec, ConformerBackbone, full_parameter_count

TINY = BackboneSpec(hidden_size=32, num_heads=2, intermediate_size=64, conv_channels=8, num_layers=4)


def _mel(frames, seed):
    return torch.randn(TINY.n_mels, frames, generator=torch.Generator().manual_seed(seed)) * 20 - 45


def test_an_item_has_the_same_hidden_states_alone_and_in_a_padded_batch():
    torch.manual_seed(0)
    model = ConformerBackbone(TINY).eval()
    long, short = _mel(300, 1), _mel(203, 2)
    batch = torch.zeros(2, TINY.n_mels, 300)
    batch[0], batch[1, :, :203] = long, short
    with torch.no_grad():
        together, mask = model.hidden_states(batch, torch.tensor([300, 203]))
        alone, mask_alone = model.hidden_states(short[None], torch.tensor([203]))
    n = int(mask_alone.sum())
    assert int(mask[1].sum()) == n == 51  # 203 mel frames -> 102 -> 51
    for k, (a, b) in enumerate(zip(together, alone)):
        assert torch.allclose(a[1, :n], b[0], atol=1e-5), f"hidden state {k}"
        assert a[1, n:].abs().max() == 0  # padding stays zero


def test_upper_layers_continue_exactly_from_a_cached_hidden_state():
    torch.manual_seed(0)
    full = ConformerBackbone(TINY).eval()
    top = ConformerBackbone(TINY, first_layer=2).eval()
    top.load_state_dict({k: v for k, v in full.state_dict().items() if k in top.state_dict()})
    assert sorted({k.split(".")[2] for k in top.state_dict() if k.startswith("conformer.layers.")}) == ["2", "3"]
    with torch.no_grad():
        states, mask = full.hidden_states(_mel(120, 3)[None], torch.tensor([120]))
        assert torch.allclose(top.run_layers(states[2], mask, 2), states[4], atol=1e-6)


def test_parameter_counts_of_the_default_and_of_muq_size():
    assert 1_000_000 < full_parameter_count(BackboneSpec()) < 5_000_000  # the CPU-sized default
    muq = BackboneSpec(kind="muq", n_fft=2048, hop_length=240, n_mels=128, conv_channels=512, hidden_size=1024,
                       num_layers=12, num_heads=16, intermediate_size=4096, conv_kernel=31)
    assert 300e6 < full_parameter_count(muq) < 330e6  # MuQ-large: about 316 M without its heads
