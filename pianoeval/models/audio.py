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

import math
from typing import Literal

import lightning as L
import pydantic
import torch
from torch import nn

from pianoeval.audio.backbones import BackboneSpec, full_parameter_count
from pianoeval.audio.data import AudioDataConfig
from pianoeval.audio.lora import ATTENTION_PROJECTIONS, attach_lora, lora_dropouts
from pianoeval.audio.source import DEFAULT_BACKBONE_NAME, BackboneSource, backbone_source
from pianoeval.errors import ConfigError
from pianoeval.models.heads import EncoderWithHeads, HeadsConfig
from pianoeval.models.registry import ModelEntry


def _top_third(num_layers: int) -> int:
    return math.ceil(num_layers / 3)  # MuQ: 4 of 12 (layers 9-12); 4-layer default: 2


class AudioEncoderConfig(HeadsConfig):
    """Backbone choice and audio data options shared by A1-A3.

    Attributes:
        backbone: ``pianoeval`` (the pre-trained CPU-sized default) or ``muq``.
        backbone_name: folder under ``results/pretrained/audio/`` (``pianoeval``).
        backbone_path: a checkpoint folder (config.json + model.safetensors); required
            for ``muq``, overrides ``backbone_name``.
        backbone_init: ``pretrained`` or ``random`` (same architecture, re-initialised
            weights: the no-pre-training control; announced when used).
        backbone_seed: seed of the random initialisation.
        hidden_cache: train on cached hidden states of the frozen layers (False: run the
            whole backbone every step, from log-mel frames; slower, same result).
        audio: the audio data block (soundfonts, crop, tiers, augmentation).
    """

    backbone: Literal["pianoeval", "muq"] = "pianoeval"
    backbone_name: str = DEFAULT_BACKBONE_NAME
    backbone_path: str | None = None
    backbone_init: Literal["pretrained", "random"] = "pretrained"
    backbone_seed: int = 0
    hidden_cache: bool = True
    audio: AudioDataConfig = AudioDataConfig()

    def backbone_source(self) -> BackboneSource:
        return backbone_source(self.backbone, self.backbone_name, self.backbone_path, self.backbone_init,
                               self.backbone_seed)

    def adapted_layers(self, spec: BackboneSpec) -> range:
        raise NotImplementedError

    def cache_layer(self, spec: BackboneSpec) -> int:
        """Hidden state the batches carry: the input of the first adapted layer (0 = log-mel)."""
        return self.adapted_layers(spec).start - 1 if self.hidden_cache else 0


class A1Config(AudioEncoderConfig):
    """A1: LoRA on attention projections.

    Attributes:
        lora_rank, lora_alpha, lora_dropout: LoRA rank r, scale alpha (update
            ``B A x * alpha / r``) and dropout on the adapter input.
        lora_layers: ``[first, last]`` conformer layers (1-based, inclusive) that get
            adapters; None = the top third (MuQ: 9-12; the 4-layer default: 3-4).
        lora_targets: which projections of each layer's self-attention.
    """

    lora_rank: int = pydantic.Field(8, ge=1)
    lora_alpha: float = pydantic.Field(16.0, gt=0)
    lora_dropout: float = pydantic.Field(0.1, ge=0, lt=1)
    lora_layers: tuple[int, int] | None = None
    lora_targets: tuple[Literal["linear_q", "linear_k", "linear_v", "linear_out"], ...] = ATTENTION_PROJECTIONS

    def adapted_layers(self, spec: BackboneSpec) -> range:
        first, last = self.lora_layers or (spec.num_layers - _top_third(spec.num_layers) + 1, spec.num_layers)
        if not 1 <= first <= last <= spec.num_layers:
            raise ConfigError(f"model.lora_layers: {[first, last]} outside the backbone's layers 1-{spec.num_layers}")
        if last != spec.num_layers:
            raise ConfigError(f"model.lora_layers: must end at the top layer {spec.num_layers} (the layers above the "
                              f"adapted ones would be frozen and still run every step); got {[first, last]}")
        return range(first, last + 1)


class A2Config(A1Config):
    """A2: A1 with a self-supervised stage 1 before supervised training.

    Attributes:
        stage1_steps: optimiser steps of stage 1.
        stage1_lr: its learning rate (AdamW, warm-up + cosine).
        stage1_passages_per_batch: ASAP passages (x 2 performers, + augmented views) a step.
        stage1_lambda_invariance: weight of the augmentation-invariance term.
        stage1_temperature: InfoNCE temperature.
    The ASAP windows, soundfonts and augmentation come from the ``audio`` block.
    """

    stage1_steps: int = pydantic.Field(150, ge=1)
    stage1_lr: float = pydantic.Field(1e-3, gt=0)
    stage1_passages_per_batch: int = pydantic.Field(8, ge=2)
    stage1_lambda_invariance: float = pydantic.Field(1.0, ge=0)
    stage1_temperature: float = pydantic.Field(0.1, gt=0)


class A3Config(AudioEncoderConfig):
    """A3: gradual unfreezing with discriminative learning rates.

    Attributes:
        unfreeze_layers: how many top layers are unfrozen in the end (MuQ: 4 = 12..9);
            None = the top third.
        unfreeze_every: epochs between unfreezing one more layer.
        layer_lr_decay: learning-rate factor per layer below the top.
    """

    unfreeze_layers: int | None = pydantic.Field(None, ge=1)
    unfreeze_every: int = pydantic.Field(1, ge=1)
    layer_lr_decay: float = pydantic.Field(0.5, gt=0, le=1)

    def adapted_layers(self, spec: BackboneSpec) -> range:
        count = self.unfreeze_layers or _top_third(spec.num_layers)
        if count > spec.num_layers:
            raise ConfigError(f"model.unfreeze_layers: {count} > the backbone's {spec.num_layers} layers")
        return range(spec.num_layers - count + 1, spec.num_layers + 1)


class AudioEncoder(nn.Module):
    """Adapted layers of a backbone; ``encode(AudioBatch) -> (frames, mask)``."""

    def __init__(self, config: AudioEncoderConfig):
        super().__init__()
        source = config.backbone_source()
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
    from pianoeval.audio.stage1 import load_or_run_stage1

    model = AudioModel(LoraEncoder(config), num_labels, config)
    load_or_run_stage1(model, config)
    return model


def build_a3(config: A3Config, input_dim: int, num_labels: int) -> AudioModel:
    return AudioModel(UnfreezeEncoder(config), num_labels, config)


_GROUPED = {"batch_sampler": "grouped"}  # same-music pairs in every batch, for the ranking loss

VARIANTS: tuple[ModelEntry, ...] = (
    ModelEntry("a1_lora", A1Config, build_a1, input_kind="audio", data_defaults=_GROUPED,
               description="A1: LoRA on the attention projections of the backbone's top layers"),
    ModelEntry("a2_staged", A2Config, build_a2, input_kind="audio", data_defaults=_GROUPED,
               description="A2: LoRA adapters, self-supervised stage 1 (ASAP) then supervised stage 2"),
    ModelEntry("a3_unfreeze", A3Config, build_a3, input_kind="audio", data_defaults=_GROUPED,
               description="A3: gradual top-down unfreezing with discriminative learning rates"),
)
