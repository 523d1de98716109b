"""LoRA adapters (peft) on the attention projections of a backbone's top layers.

``attach_lora`` injects peft LoRA layers into ``linear_q/k/v/out`` (configurable) of
the given conformer layers and freezes every other backbone weight. peft's ``Linear``
adds ``B A x * alpha / r`` to the frozen projection in training and evaluation alike:
our conformer layers call the projections as ordinary modules (no fused attention kernel
reads the raw weights, as PyTorch's ``nn.TransformerEncoderLayer`` fast path does in
eval mode), so adapters are active at evaluation; ``tests/audio/test_lora.py`` checks it.
"""

from __future__ import annotations

from torch import nn

from pianoeval.audio.backbones import ConformerBackbone
from pianoeval.models.configs.audio import ATTENTION_PROJECTIONS


def attach_lora(backbone: ConformerBackbone, layers: range, rank: int, alpha: float, dropout: float,
                targets: tuple[str, ...] = ATTENTION_PROJECTIONS) -> ConformerBackbone:
    """Inject LoRA into ``targets`` of conformer ``layers`` (1-based); freeze the rest."""
    from peft import LoraConfig, inject_adapter_in_model

    names = [f"conformer.layers.{n - 1}.self_attn.{t}" for n in layers for t in targets]
    for p in backbone.parameters():
        p.requires_grad_(False)
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=names, bias="none")
    backbone = inject_adapter_in_model(config, backbone)
    for name, p in backbone.named_parameters():
        p.requires_grad_("lora_" in name)
    return backbone


def lora_dropouts(module: nn.Module) -> list[nn.Module]:
    """peft's LoRA dropout modules (they follow train/eval; the frozen base does not)."""
    return [m for name, m in module.named_modules() if name.endswith("lora_dropout")]
