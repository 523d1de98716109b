"""Which backbone a config means, where its weights are, and its cache key.

* ``backbone: pianoeval`` reads ``results/pretrained/audio/<backbone_name>/`` (made by
  ``python runners/pretrain_audio.py``) or, when none was built here, the copy shipped in
  ``pianoeval/audio/weights/<backbone_name>/``; if neither exists the run stops with the
  command that makes it, so a randomly initialised backbone is never used by accident.
* ``backbone: muq`` reads the MuQ checkpoint folder ``backbone_path`` (nothing is
  downloaded, ever).
* ``backbone_path`` (either kind) names a checkpoint folder explicitly.
* ``backbone_init: random`` keeps the checkpoint's architecture and log-mel statistics
  but re-initialises every weight (seeded): the control of "does pre-training help?".
  It is announced on one line whenever it is loaded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from pianoeval.audio.backbones import BackboneSpec, ConformerBackbone
from pianoeval.audio.checkpoint import checkpoint_hash, checkpoint_spec, load_backbone
from pianoeval.errors import ConfigError, DataError
from pianoeval.models.configs.audio import DEFAULT_BACKBONE_NAME, built_backbone_dir, pretrained_backbone_dir

PRETRAIN_COMMAND = "python runners/pretrain_audio.py --name {name}"


def pretrained_dir(name: str = DEFAULT_BACKBONE_NAME) -> Path:
    """Where ``runners/pretrain_audio.py --name <name>`` writes (and, once there, what is read)."""
    return built_backbone_dir(name)


@dataclass(frozen=True)
class BackboneSource:
    folder: Path
    init: str = "pretrained"  # or "random"
    seed: int = 0

    def spec(self) -> BackboneSpec:
        return checkpoint_spec(self.folder)

    def key(self) -> str:
        """Cache key part: the checkpoint's content hash (random init: spec + seed)."""
        base = checkpoint_hash(self.folder)
        if self.init == "pretrained":
            return base
        return hashlib.sha256(f"random|{self.spec().to_json()}|{self.seed}".encode()).hexdigest()[:16]

    def load(self, first_layer: int = 0, announce=print) -> ConformerBackbone:
        if self.init == "pretrained":
            return load_backbone(self.folder, first_layer)
        announce(f"[audio] backbone: RANDOM initialisation (backbone_init: random, seed {self.seed}); "
                 f"architecture and log-mel statistics from {self.folder}")
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(self.seed)
        full = ConformerBackbone(self.spec())  # same weights whatever first_layer is
        torch.random.set_rng_state(generator_state)
        if first_layer == 0:
            return full
        top = ConformerBackbone(self.spec(), first_layer)
        top.load_state_dict({k: v for k, v in full.state_dict().items() if k in top.state_dict()})
        return top


def backbone_source(backbone: str, backbone_name: str, backbone_path: str | None, backbone_init: str,
                    seed: int = 0) -> BackboneSource:
    """The checkpoint folder a model config names; DataError with the fix when absent."""
    if backbone_path:
        folder = Path(backbone_path).expanduser()
        if not folder.is_dir():
            raise DataError(f"model.backbone_path: {folder} is not a folder (expected a checkpoint folder with "
                            f"config.json + model.safetensors)")
    elif backbone == "muq":
        raise ConfigError("model.backbone_path: required for backbone 'muq' (a local MuQ checkpoint folder, e.g. "
                          "a copy of OpenMuQ/MuQ-large-msd-iter: config.json + model.safetensors)")
    else:
        folder = pretrained_backbone_dir(backbone_name)
        if not (folder / "config.json").is_file():
            raise DataError(f"no pretrained pianoeval audio backbone at {folder}: make one with "
                            f"`{PRETRAIN_COMMAND.format(name=backbone_name)}` (20-45 minutes on 2 CPU cores, most of it rendering audio the first time), "
                            f"or set model.backbone_init: random to train on a random one on purpose")
    source = BackboneSource(folder, backbone_init, seed)
    kind = source.spec().kind
    if kind != backbone:
        raise ConfigError(f"model.backbone: {backbone!r} but {folder} holds a {kind!r} checkpoint")
    return source


def source_of(config) -> BackboneSource:
    """The backbone an audio model config (``AudioEncoderConfig``: A1-A3) names."""
    return backbone_source(config.backbone, config.backbone_name, config.backbone_path, config.backbone_init,
                           config.backbone_seed)
