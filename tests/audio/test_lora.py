"""LoRA adapters are active at evaluation, and the frozen base stays frozen."""

import torch

from pianoeval.audio.backbones import BackboneSpec, ConformerBackbone
from pianoeval.audio.lora import attach_lora

TINY = BackboneSpec(hidden_size=32, num_heads=2, intermediate_size=64, conv_channels=8)


def test_adapters_change_the_output_in_eval_mode_once_b_is_non_zero():
    torch.manual_seed(0)
    model = attach_lora(ConformerBackbone(TINY, first_layer=2), range(3, 5), rank=4, alpha=8, dropout=0.1).eval()
    h, mask = torch.randn(2, 20, 32), torch.ones(2, 20, dtype=torch.bool)
    with torch.no_grad():
        before = model.run_layers(h, mask, 2)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.fill_(0.05)  # B starts at zero: the adapter is a no-op until trained
        after = model.run_layers(h, mask, 2)
    assert not model.training
    assert (after - before).abs().max() > 1e-3
