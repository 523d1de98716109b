"""The audio family (A1-A3 of the v2 design): a conformer backbone + the shared heads.

    audio -> log-mel -> [frozen: front end, layers 1..k]  (run once: hidden-state cache)
          -> [adapted: layers k+1..L] -> frames [B, T, C] -> EncoderWithHeads

* ``a1_lora``: LoRA (peft) on the attention projections of the top layers (MuQ: 9-12);
  every backbone weight stays frozen (the trainable share is printed and logged as
  ``diag/trainable_share``).
* ``a2_staged``: A1's adapters, first trained self-supervised (stage 1: cross-performer
  InfoNCE + augmentation invariance on ASAP windows, ``pianoeval.audio.pretrain``), then
  supervised (stage 2) from that checkpoint. Stage 1 runs once per setting and is kept
  under ``results/pretrained/audio/a2_stage1/<key>/``.
* ``a3_unfreeze``: gradual unfreezing, top-down: layer L trains from epoch 0, layer L-1
  joins after ``unfreeze_every`` epochs, and so on down to the lowest of
  ``unfreeze_layers``; layer L-d learns at ``lr * layer_lr_decay ** d`` (discriminative
  learning rates). BatchNorm statistics stay frozen (padded frames would enter them).

Backbones: ``pianoeval`` (default, CPU-sized, pre-trained by ``runners/pretrain_audio.py``)
or ``muq`` (a local MuQ checkpoint, ``backbone_path``). See docs/audio.md.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from pianoeval.audio.backbones import full_parameter_count
from pianoeval.audio.lora import attach_lora, lora_dropouts
from pianoeval.audio.source import source_of
from pianoeval.audio.stage1 import load_or_run_stage1
from pianoeval.models.configs.audio import A1Config, A2Config, A3Config, AudioEncoderConfig
from pianoeval.models.heads import EncoderWithHeads


class AudioEncoder(nn.Module):
    """Adapted layers of a backbone; ``encode(AudioBatch) -> (frames, mask)``."""

    def __init__(self, config: AudioEncoderConfig):
        super().__init__()
        source = source_of(config)
        self.spec = source.spec()
        self.adapted = config.adapted_layers(self.spec)
        self.start = config.cache_layer(self.spec)
        self.backbone = source.load(self.start)
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.output_dim = self.spec.hidden_size
        self.backbone_parameters = full_parameter_count(self.spec)

    def encode(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        if batch.level != self.start:
            raise ValueError(f"batch frames are hidden state {batch.level}, this encoder starts at {self.start} "
                             f"(data module and model config disagree)")
        if self.start == 0:
            h, mask = self.backbone.embed(batch.frames.transpose(1, 2), batch.lengths)
        else:
            h, mask = batch.frames, batch.mask
        return self.backbone.run_layers(h, mask, self.start), mask

    def trainable_backbone_parameters(self) -> int:
        return sum(p.numel() for p in self.backbone.parameters() if p.requires_grad)

    def diagnostics(self) -> dict[str, torch.Tensor]:
        return {"trainable_share": torch.tensor(self.trainable_backbone_parameters() / self.backbone_parameters)}

    def share_line(self, what: str) -> str:
        n = self.trainable_backbone_parameters()
        return (f"[audio] {what}: {n:,} trainable of {self.backbone_parameters:,} backbone parameters "
                f"({100 * n / self.backbone_parameters:.2f}%; {100 - 100 * n / self.backbone_parameters:.2f}% frozen)")


class LoraEncoder(AudioEncoder):
    def __init__(self, config: A1Config):
        super().__init__(config)
        self.backbone = attach_lora(self.backbone, self.adapted, config.lora_rank, config.lora_alpha,
                                    config.lora_dropout, tuple(config.lora_targets))
        print(self.share_line(f"LoRA r={config.lora_rank} alpha={config.lora_alpha:g} on layers "
                              f"{self.adapted.start}-{self.adapted.stop - 1} ({', '.join(config.lora_targets)})"))

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # frozen base: no dropout, no BatchNorm statistics updates
        for module in lora_dropouts(self.backbone):
            module.train(mode)
        return self


class UnfreezeEncoder(AudioEncoder):
    def __init__(self, config: A3Config):
        super().__init__(config)
        self.config = config
        self.unfrozen = 0
        self.unfreeze_for_epoch(0)

    def layers_top_down(self) -> list[nn.Module]:
        return [self.backbone.layer(n) for n in reversed(self.adapted)]

    def unfreeze_for_epoch(self, epoch: int) -> int:
        count = min(1 + epoch // self.config.unfreeze_every, len(self.adapted))
        for depth, layer in enumerate(self.layers_top_down()):
            for p in layer.parameters():
                p.requires_grad_(depth < count)
        if self.adapted.stop - 1 == self.spec.num_layers:
            for p in self.backbone.conformer.layer_norm.parameters():
                p.requires_grad_(True)  # the final LayerNorm belongs to the top layer
        if count != self.unfrozen:
            self.unfrozen = count
            print(self.share_line(f"epoch {epoch}: layers {self.adapted.stop - count}-{self.adapted.stop - 1} "
                                  f"unfrozen"))
        self.train(self.training)
        return count

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()
        for layer in self.layers_top_down()[: getattr(self, "unfrozen", 0)]:
            layer.train(mode)
            for module in layer.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def parameter_groups(self, lr: float) -> list[dict]:
        decay = self.config.layer_lr_decay
        groups = []
        for depth, layer in enumerate(self.layers_top_down()):
            params = list(layer.parameters())
            if depth == 0:
                params += list(self.backbone.conformer.layer_norm.parameters())
            groups.append({"params": params, "lr": lr * decay ** depth, "name": f"layer{self.adapted.stop - 1 - depth}"})
        return groups


class GradualUnfreezing(L.Callback):
    """Unfreezes the next layer at the start of every ``unfreeze_every``-th epoch."""

    def __init__(self, encoder: UnfreezeEncoder):
        self.encoder = encoder

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.encoder.unfreeze_for_epoch(trainer.current_epoch)


class AudioModel(EncoderWithHeads):
    """EncoderWithHeads plus the optional hooks PerformanceModule asks an encoder for."""

    def parameter_groups(self, lr: float) -> list[dict] | None:
        groups = getattr(self.encoder, "parameter_groups", None)
        if groups is None:
            return None
        return [*groups(lr), {"params": list(self.heads.parameters()), "lr": lr, "name": "heads"}]

    def training_callbacks(self) -> list[L.Callback]:
        return [GradualUnfreezing(self.encoder)] if isinstance(self.encoder, UnfreezeEncoder) else []


def build_a1(config: A1Config, input_dim: int, num_labels: int) -> AudioModel:
    return AudioModel(LoraEncoder(config), num_labels, config)


def build_a2(config: A2Config, input_dim: int, num_labels: int) -> AudioModel:
    model = AudioModel(LoraEncoder(config), num_labels, config)
    load_or_run_stage1(model, config)
    return model


def build_a3(config: A3Config, input_dim: int, num_labels: int) -> AudioModel:
    return AudioModel(UnfreezeEncoder(config), num_labels, config)
