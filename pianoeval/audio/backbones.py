"""Audio backbones behind one interface: audio -> log-mel frames -> hidden states per layer.

Both backbones share one architecture, MuQ's (Zhu et al., "MuQ: Self-Supervised Music
Representation Learning with Mel Residual Vector Quantization", 2025):

    audio (24 kHz) -> power mel spectrogram (nnAudio) -> dB -> (x - db_mean) / db_std
      -> Conv2dSubsampling: two residual 3x3 conv blocks, stride 2 in frequency and time
         (4x fewer frames) -> Linear to the model width        = hidden state 0
      -> conformer layers (transformers' Wav2Vec2ConformerEncoderLayer: FFN/2, rotary
         self-attention with linear_q/k/v/out, convolution module, FFN/2, LayerNorm)
                                                                 = hidden states 1..L
      -> a final LayerNorm on the last one (as MuQ's hidden_states[L])

* ``muq``: MuQ itself (12 layers, width 1024), loaded from a local MuQ checkpoint
  folder (``config.json`` + ``model.safetensors``, see ``muq_checkpoint``).
* ``pianoeval``: the same architecture at CPU size (a few million parameters),
  pre-trained self-supervised on rendered audio by ``runners/pretrain_audio.py``.

The conformer layers are transformers' modules (same parameter names as MuQ's
checkpoint), but the layer loop is ours: it returns every hidden state, runs any
range of layers (the hidden-state cache starts training at the first adapted layer),
and masks padding exactly, also inside the convolution module (transformers only zeroes
padded inputs once, so the last frames of a padded item would see the padding through
the depthwise convolution). An item's hidden states are therefore the same alone or in
a padded batch, which the cache relies on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Literal

import torch
from torch import nn

FRONTEND_SAMPLE_RATE = 24_000


@dataclass(frozen=True)
class BackboneSpec:
    """Architecture and front end of a backbone (saved as its ``config.json``)."""

    kind: Literal["pianoeval", "muq"] = "pianoeval"
    sample_rate: int = FRONTEND_SAMPLE_RATE
    n_fft: int = 1024
    hop_length: int = 480  # 50 mel frames a second -> 12.5 hidden frames a second
    n_mels: int = 64
    db_mean: float = 0.0  # log-mel normalisation (MuQ: its "stat" block)
    db_std: float = 1.0
    conv_channels: int = 32  # channels of the two residual conv blocks (MuQ: conv_dim 512)
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    conv_kernel: int = 15  # depthwise kernel of the conformer convolution module (MuQ: 31)
    hidden_act: str = "swish"
    rotary_base: int = 10_000
    layer_norm_eps: float = 1e-5
    dropout: float = 0.1

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length / 4

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "BackboneSpec":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown backbone config keys {unknown} (known: {sorted(known)})")
        return cls(**data)


class MelFrontend(nn.Module):
    """Power mel spectrogram (nnAudio, HTK mel scale, no filter normalisation: the same
    filters as torchaudio's MelSpectrogram, which MuQ uses) -> dB. Standardising with
    the backbone's ``db_mean``/``db_std`` happens in ``ConformerBackbone.embed``, so the
    cached features serve every backbone with the same front end."""

    def __init__(self, spec: BackboneSpec):
        super().__init__()
        from nnAudio.features import MelSpectrogram

        self.spec = spec
        self.mel = MelSpectrogram(sr=spec.sample_rate, n_fft=spec.n_fft, win_length=spec.n_fft, n_mels=spec.n_mels,
                                  hop_length=spec.hop_length, window="hann", center=True, pad_mode="reflect",
                                  power=2.0, htk=True, fmin=0.0, fmax=spec.sample_rate / 2, norm=None,
                                  verbose=False)

    @torch.no_grad()
    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """[N] or [B, N] float audio (unpadded) -> [.., n_mels, T] log-mel in dB."""
        power = self.mel(audio.float().reshape(-1, audio.shape[-1]))[..., :-1]  # MuQ drops the last frame
        db = 10.0 * torch.log10(power.clamp_min(1e-10))
        return db[0] if audio.dim() == 1 else db

    def num_frames(self, num_samples: int) -> int:
        return num_samples // self.spec.hop_length


class Res2dBlock(nn.Module):
    """Residual block of two 3x3 convs (stride on the first) with a strided 3x3 shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: tuple[int, int] = (2, 2)):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, stride=stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv3 = nn.Conv2d(in_channels, out_channels, 3, padding=1, stride=stride)
        self.bn3 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, out_lengths: torch.Tensor) -> torch.Tensor:
        # the inner activation is masked too: conv2 must see zeros past the end, as alone
        inner = _mask_time(torch.relu(self.bn1(self.conv1(x))), out_lengths)
        return torch.relu(self.bn2(self.conv2(inner)) + self.bn3(self.conv3(x)))


def _subsampled(lengths: torch.Tensor) -> torch.Tensor:
    return torch.div(lengths + 1, 2, rounding_mode="floor")  # a stride-2, padding-1, 3-wide conv


def hidden_frames(mel_frames: int) -> int:
    """Frames of every hidden state for ``mel_frames`` log-mel frames (the front end halves
    time twice)."""
    return int(_subsampled(_subsampled(torch.tensor(mel_frames))))


class Conv2dSubsampling(nn.Module):
    """Log-mel [B, n_mels, T] -> frames [B, ceil(ceil(T/2)/2), width]; padding masked."""

    def __init__(self, channels: int, width: int, n_mels: int):
        super().__init__()
        self.conv = nn.Sequential(Res2dBlock(1, channels), Res2dBlock(channels, channels))
        self.linear = nn.Linear(channels * math.ceil(math.ceil(n_mels / 2) / 2), width)

    def forward(self, mel: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = mel.unsqueeze(1)
        for block in self.conv:
            x = _mask_time(x, lengths)
            lengths = _subsampled(lengths)
            x = block(x, lengths)
        x = _mask_time(x, lengths)
        frames = self.linear(x.permute(0, 3, 1, 2).flatten(2))  # b c f t -> b t (c f)
        return frames, lengths


def _mask_time(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    steps = torch.arange(x.shape[-1], device=x.device)
    return x * (steps < lengths[:, None]).to(x.dtype)[:, None, None, :]


class ConformerStack(nn.Module):
    """Container with MuQ's parameter names: ``layers.N.*``, ``layer_norm``, ``embed_positions``."""

    def __init__(self, spec: BackboneSpec, layer_indices: range):
        super().__init__()
        from transformers import Wav2Vec2ConformerConfig
        from transformers.models.wav2vec2_conformer.modeling_wav2vec2_conformer import (
            Wav2Vec2ConformerEncoderLayer, Wav2Vec2ConformerRotaryPositionalEmbedding)

        config = Wav2Vec2ConformerConfig(
            hidden_size=spec.hidden_size, num_hidden_layers=spec.num_layers, num_attention_heads=spec.num_heads,
            intermediate_size=spec.intermediate_size, conv_depthwise_kernel_size=spec.conv_kernel,
            hidden_act=spec.hidden_act, position_embeddings_type="rotary", rotary_embedding_base=spec.rotary_base,
            layer_norm_eps=spec.layer_norm_eps, attention_dropout=spec.dropout, hidden_dropout=spec.dropout,
            activation_dropout=spec.dropout, conformer_conv_dropout=spec.dropout)
        config._attn_implementation = "sdpa"  # fused attention; equal to eager up to float error
        self.first = layer_indices.start
        # Layers below ``first`` are not built (they run once, into the hidden-state cache);
        # ModuleDict keys keep MuQ's layer numbers in parameter names.
        self.layers = nn.ModuleDict({str(i): Wav2Vec2ConformerEncoderLayer(config) for i in layer_indices})
        self.layer_norm = nn.LayerNorm(spec.hidden_size, eps=spec.layer_norm_eps)
        self.embed_positions = Wav2Vec2ConformerRotaryPositionalEmbedding(config)


def conformer_layer(layer: nn.Module, h: torch.Tensor, mask: torch.Tensor, attention_mask: torch.Tensor,
                    rotary: torch.Tensor) -> torch.Tensor:
    """One Wav2Vec2ConformerEncoderLayer, step by step, with padding masked in the conv module."""
    h = layer.ffn1(layer.ffn1_layer_norm(h)) * 0.5 + h
    attended, _ = layer.self_attn(hidden_states=layer.self_attn_layer_norm(h), attention_mask=attention_mask,
                                  relative_position_embeddings=rotary)
    h = layer.self_attn_dropout(attended) + h
    conv = layer.conv_module
    c = conv.glu(conv.pointwise_conv1(conv.layer_norm(h).transpose(1, 2)))
    c = c * mask[:, None, :].to(c.dtype)  # padded frames must not enter the depthwise conv
    c = conv.pointwise_conv2(conv.activation(conv.batch_norm(conv.depthwise_conv(c))))
    h = h + conv.dropout(c).transpose(1, 2)
    h = layer.ffn2(layer.ffn2_layer_norm(h)) * 0.5 + h
    return layer.final_layer_norm(h) * mask[..., None].to(h.dtype)


class ConformerBackbone(nn.Module):
    """Front end + conformer layers ``[first_layer, num_layers)`` of a backbone.

    Input is the log-mel in dB (``MelFrontend``, computed and cached by ``features``).
    Layer numbers are 1-based as in MuQ's ``hidden_states``: hidden state ``k`` is the
    output of layer ``k``; hidden state 0 is the conv front end's output. Built with
    ``first_layer > 0`` it holds only layers ``first_layer+1 .. L`` (and no front end) and
    takes hidden state ``first_layer`` as input: what an adapted encoder trains on.
    """

    def __init__(self, spec: BackboneSpec, first_layer: int = 0):
        super().__init__()
        if not 0 <= first_layer < spec.num_layers:
            raise ValueError(f"first_layer {first_layer} outside [0, {spec.num_layers})")
        self.spec = spec
        self.first_layer = first_layer
        if first_layer == 0:  # the mel front end has no weights: it runs in the data pipeline
            self.conv = Conv2dSubsampling(spec.conv_channels, spec.hidden_size, spec.n_mels)
        self.conformer = ConformerStack(spec, range(first_layer, spec.num_layers))

    @property
    def hidden_size(self) -> int:
        return self.spec.hidden_size

    def layer(self, number: int) -> nn.Module:
        """Conformer layer ``number`` (1-based, MuQ's numbering)."""
        return self.conformer.layers[str(number - 1)]

    def embed(self, mel: torch.Tensor, mel_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded log-mel in dB [B, n_mels, T] -> (hidden state 0 [B, T', C], mask [B, T'])."""
        mel = (mel.float() - self.spec.db_mean) / self.spec.db_std
        frames, lengths = self.conv(mel, mel_lengths)
        mask = torch.arange(frames.shape[1], device=frames.device)[None, :] < lengths[:, None]
        return frames * mask[..., None].to(frames.dtype), mask

    def run_layers(self, h: torch.Tensor, mask: torch.Tensor, start: int, stop: int | None = None,
                   every: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """Hidden state ``start`` -> hidden state ``stop`` (default: the last, normed).

        ``every=True`` returns the list of hidden states ``start+1 .. stop``."""
        stop = self.spec.num_layers if stop is None else stop
        if not self.first_layer <= start <= stop <= self.spec.num_layers:
            raise ValueError(f"layers {start}->{stop} not available (this module holds layers "
                             f"{self.first_layer + 1}..{self.spec.num_layers})")
        attention_mask = torch.zeros(mask.shape[0], 1, 1, mask.shape[1], dtype=h.dtype, device=h.device)
        attention_mask = attention_mask.masked_fill(~mask[:, None, None, :], torch.finfo(h.dtype).min)
        rotary = self.conformer.embed_positions(h)
        states = []
        for number in range(start + 1, stop + 1):
            h = conformer_layer(self.layer(number), h, mask, attention_mask, rotary)
            if number == self.spec.num_layers:
                h = self.conformer.layer_norm(h) * mask[..., None].to(h.dtype)
            states.append(h)
        return states if every else h

    def hidden_states(self, mel: torch.Tensor, mel_lengths: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """All hidden states ``0..L`` of a padded log-mel batch, and the frame mask."""
        h, mask = self.embed(mel, mel_lengths)
        return [h, *self.run_layers(h, mask, 0, every=True)], mask

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def full_parameter_count(spec: BackboneSpec) -> int:
    """Parameters of the whole backbone (front end + every layer), without building MuQ-size weights."""
    with torch.device("meta"):
        return ConformerBackbone(spec).parameter_count()

