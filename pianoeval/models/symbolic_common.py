"""What the symbolic encoders (S1, S2, S2H, S3) share: config fields, a chunked
Transformer, and the pre-trained-weights contract.

Pre-trained encoders live in ``results/pretrained/symbolic/<encoder>/<arch>/`` as
``encoder.pt`` (a plain state dict, loaded with ``weights_only=True``) and
``config.json`` (encoder, architecture, input width, corpus, steps, losses). ``<arch>``
spells out the architecture fields (e.g. ``h128-l2-a4-ff4-c256``), so ``pretrained:
true`` finds the checkpoint made for exactly this architecture; ``pretrained: <path>``
names a folder (or its ``encoder.pt``) explicitly. A requested checkpoint that is
missing or made for another architecture is an error that says how to make it --
never a silent random initialisation.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pianoeval.errors import ConfigError, DataError
from pianoeval.io import atomic_write, atomic_write_text
from pianoeval.models.configs.symbolic import SymbolicConfig
from pianoeval.models.heads import EncoderWithHeads
from pianoeval.paths import REPO_ROOT, results_root


# --- a Transformer over fixed-length chunks ---------------------------------------------------
class ChunkedTransformer(nn.Module):
    """Pre-norm Transformer encoder applied to chunks of ``chunk_len`` steps.

    Long sequences (a 2-minute PercePiano segment is ~2,000 REMI tokens) are cut into
    consecutive chunks that attend within themselves, so cost grows linearly with
    length; chunks that hold only padding are never computed. Learned positions count
    inside a chunk."""

    def __init__(self, width: int, layers: int, heads: int, ff_multiplier: int, dropout: float, chunk_len: int,
                 position_std: float = 0.02):
        super().__init__()
        self.chunk_len = chunk_len
        self.position = nn.Embedding(chunk_len, width)
        # positions start at the scale of the inputs they are added to (0.02: BERT's token
        # embeddings; 1.0: LayerNorm-ed frames), or attention cannot tell frames apart
        nn.init.normal_(self.position.weight, std=position_std)
        layer = nn.TransformerEncoderLayer(width, heads, ff_multiplier * width, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, T, C], mask [B, T] bool (True = real) -> [B, T, C] (padding rows: zeros)."""
        batch, steps, width = x.shape
        chunks = math.ceil(steps / self.chunk_len)
        pad = chunks * self.chunk_len - steps
        if pad:
            x = nn.functional.pad(x, (0, 0, 0, pad))
            mask = nn.functional.pad(mask, (0, pad))
        x = x.reshape(batch * chunks, self.chunk_len, width) + self.position.weight
        chunk_mask = mask.reshape(batch * chunks, self.chunk_len)
        live = chunk_mask.any(dim=1)
        out = torch.zeros_like(x)
        out[live] = self.norm(self.layers(x[live], src_key_padding_mask=~chunk_mask[live]))
        out = out * chunk_mask.unsqueeze(-1)
        return out.reshape(batch, chunks * self.chunk_len, width)[:, :steps]


# --- pre-trained weights --------------------------------------------------------------------
def arch_tag(config: SymbolicConfig, fields: dict[str, str]) -> str:
    """Folder name spelling the architecture: ``fields`` maps config field -> short name."""
    return "-".join(f"{short}{getattr(config, name)}" for name, short in fields.items())


def pretrained_dir(encoder: str, config: SymbolicConfig, fields: dict[str, str]) -> Path:
    return results_root() / "pretrained" / "symbolic" / encoder / arch_tag(config, fields)


def arch_values(config: SymbolicConfig, fields: dict[str, str]) -> dict[str, Any]:
    return {name: getattr(config, name) for name in fields}


def _how_to_make(encoder: str, config: SymbolicConfig, fields: dict[str, str]) -> str:
    sets = " ".join(f"--set {name}={getattr(config, name)}" for name in fields)
    return f"make them with `python runners/pretrain_symbolic.py --encoder {encoder} {sets}`, or set model.pretrained: false"


def resolve_pretrained(encoder: str, config: SymbolicConfig, fields: dict[str, str]) -> Path | None:
    """The ``encoder.pt`` that ``config.pretrained`` asks for (None: random init)."""
    if config.pretrained is False:
        return None
    if config.pretrained is True:
        folder = pretrained_dir(encoder, config, fields)
    else:
        folder = Path(config.pretrained)
        if not folder.is_absolute():
            folder = REPO_ROOT / folder
        if folder.suffix == ".pt":
            folder = folder.parent
    weights = folder / "encoder.pt"
    if not weights.is_file():
        raise DataError(f"model.pretrained: no pre-trained {encoder} encoder at {weights}; "
                        f"{_how_to_make(encoder, config, fields)}")
    return weights


def load_pretrained(module: nn.Module, weights: Path, encoder: str, config: SymbolicConfig,
                    fields: dict[str, str], input_dim: int, announce=print) -> dict:
    """Load ``weights`` into the encoder ``module`` after checking it was made for it."""
    meta_path = weights.parent / "config.json"
    if not meta_path.is_file():
        raise DataError(f"{meta_path}: missing (a pre-trained checkpoint is encoder.pt + config.json)")
    meta = json.loads(meta_path.read_text())
    if meta.get("encoder") != encoder:
        raise ConfigError(f"model.pretrained: {weights} holds a {meta.get('encoder')!r} encoder, not {encoder!r}")
    wanted = arch_values(config, fields)
    made = {k: meta.get("architecture", {}).get(k) for k in wanted}
    if made != wanted or meta.get("input_dim") != input_dim:
        raise ConfigError(f"model.pretrained: {weights} was pre-trained with {made} (input width {meta.get('input_dim')}) "
                          f"but this model has {wanted} (input width {input_dim}); {_how_to_make(encoder, config, fields)}")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    module.load_state_dict(state)
    announce(f"[pretrained] {encoder}: loaded {weights} ({meta.get('steps')} steps on {meta.get('corpus_items')} "
             f"items, final loss {meta.get('final_loss', float('nan')):.4f})")
    return meta


def save_pretrained(folder: Path, module: nn.Module, meta: dict) -> Path:
    """Write ``encoder.pt`` (plain state dict) and ``config.json`` atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    atomic_write(folder / "encoder.pt", lambda tmp: torch.save(state, tmp))
    atomic_write_text(folder / "config.json", json.dumps(meta, indent=1, default=str))
    return folder / "encoder.pt"


def build_with_heads(encoder_name: str, encoder: nn.Module, config: SymbolicConfig, fields: dict[str, str],
                     input_dim: int, num_labels: int) -> EncoderWithHeads:
    """The registered model: encoder (pre-trained if asked) + the shared heads."""
    weights = resolve_pretrained(encoder_name, config, fields)
    if weights is not None:
        load_pretrained(encoder, weights, encoder_name, config, fields, input_dim)
    if config.freeze_encoder:
        encoder.requires_grad_(False)
    return EncoderWithHeads(encoder, num_labels, config)
