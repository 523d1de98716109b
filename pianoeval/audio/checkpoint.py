"""Backbone checkpoints: MuQ's published format and ours, one loader.

A checkpoint is a folder with ``config.json`` and ``model.safetensors`` (safetensors:
no code runs on load).

**MuQ** (``OpenMuQ/MuQ-large-msd-iter`` as saved by huggingface_hub's
``PyTorchModelHubMixin``): ``config.json`` holds MuQ's constructor arguments; the
weights are the state dict of the ``MuQ`` wrapper, so every key starts with ``model.``.
Mapping assumed here (MuQ's ``MuQModel`` attribute names):

| MuQ key / config                                | here                                      |
|-------------------------------------------------|-------------------------------------------|
| ``model.conv.conv.{0,1}.{conv,bn}{1,2,3}.*``    | ``conv.conv.{0,1}.*`` (Res2dBlock)         |
| ``model.conv.linear.*``                         | ``conv.linear.*``                          |
| ``model.conformer.layers.{i}.*`` (i = 0..11)    | ``conformer.layers.{i}.*`` (layer i+1)     |
| ``model.conformer.layer_norm.*``                | ``conformer.layer_norm.*``                 |
| ``model.conformer.embed_positions.inv_freq``    | recomputed from ``rotary_embedding_base``  |
| ignored: ``model.conformer.pos_conv_embed.*`` (built, never called by the conformer encoder), ``model.linear.*`` and ``model.cls_token`` (pre-training heads), ``model.quantizer_*`` / ``model.rvq.*`` (targets), ``model.preprocessor_melspec_2048.*`` (torchaudio mel buffers: we compute the same mel with nnAudio) ||
| ``encoder_dim``, ``encoder_depth``, ``conv_dim``, ``n_mels``, ``hop_length`` | ``hidden_size``, ``num_layers``, ``conv_channels``, ``n_mels``, ``hop_length`` |
| ``stat.melspec_2048_mean`` / ``_std``           | ``db_mean`` / ``db_std``                   |
| ``w2v2_config.num_attention_heads``, ``intermediate_size``, ``conv_depthwise_kernel_size``, ``hidden_act``, ``rotary_embedding_base``, ``layer_norm_eps`` | same names without prefix (``conv_kernel``, ``rotary_base``) |

The front end is fixed by MuQ's code: 24 kHz, n_fft 2048 (``melspec_2048``), power
mel in dB. Only ``position_embeddings_type: rotary`` and ``label_rate: 25`` (MuQ's
published models) are supported.

**pianoeval** (``results/pretrained/audio/<name>/`` or shipped in
``pianoeval/audio/weights/<name>/``): ``config.json`` = ``{"format":
"pianoeval-audio-backbone", "spec": {...}, "weights_sha256": ..., "pretraining": {...,
"command": ...}}`` and keys without the ``model.`` prefix. The weights are checked against
``weights_sha256`` on every load.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from pianoeval.audio.backbones import BackboneSpec, ConformerBackbone
from pianoeval.audio.render import file_hash
from pianoeval.data.frames import content_hash
from pianoeval.errors import DataError
from pianoeval.io import atomic_write, atomic_write_text

OUR_FORMAT = "pianoeval-audio-backbone"
MUQ_PREFIX = "model."
MUQ_IGNORED = ("conformer.pos_conv_embed.", "linear.", "cls_token", "quantizer_", "rvq.", "preprocessor_",
               "recon_proj.", "conformer.embed_positions.")
MUQ_FRONTEND = {"sample_rate": 24_000, "n_fft": 2048}


def read_config(folder: Path) -> dict:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise DataError(f"{folder}: not a backbone checkpoint (config.json missing; expected config.json + "
                        f"model.safetensors)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text (a checkpoint's config.json is JSON)") from None


def spec_from_muq_config(cfg: dict, source: str = "config.json") -> BackboneSpec:
    """MuQ's ``config.json`` -> BackboneSpec (see the table in the module docstring)."""
    w2v2 = cfg.get("w2v2_config") or {}
    if w2v2.get("position_embeddings_type", "rotary") != "rotary":
        raise DataError(f"{source}: w2v2_config.position_embeddings_type: "
                        f"{w2v2['position_embeddings_type']!r} is not supported (MuQ uses 'rotary')")
    if list(cfg.get("features", ["melspec_2048"])) != ["melspec_2048"]:
        raise DataError(f"{source}: features: {cfg['features']} not supported (MuQ uses ['melspec_2048'])")
    if int(cfg.get("label_rate", 25)) != 25:
        # MuQModel picks its conv front end's time strides from label_rate: 25 -> (2, 2), a 4x
        # subsampling (what this backbone implements); 50 -> (2, 1). The weights have the same
        # shapes either way, so without this check such a checkpoint would load and be wrong.
        raise DataError(f"{source}: label_rate: {cfg['label_rate']} is not supported (MuQ's published models "
                        f"use 25: the conv front end subsamples time by 4)")
    stat = cfg.get("stat") or {}
    if "melspec_2048_mean" not in stat or "melspec_2048_std" not in stat:
        raise DataError(f"{source}: stat.melspec_2048_mean / stat.melspec_2048_std missing (MuQ's log-mel "
                        f"normalisation; without it the inputs would be on the wrong scale)")
    return BackboneSpec(
        kind="muq", **MUQ_FRONTEND, hop_length=int(cfg.get("hop_length", 240)), n_mels=int(cfg.get("n_mels", 128)),
        db_mean=float(stat["melspec_2048_mean"]), db_std=float(stat["melspec_2048_std"]),
        conv_channels=int(cfg.get("conv_dim", 512)), hidden_size=int(cfg.get("encoder_dim", 1024)),
        num_layers=int(cfg.get("encoder_depth", 12)), num_heads=int(w2v2.get("num_attention_heads", 16)),
        intermediate_size=int(w2v2.get("intermediate_size", 4096)),
        conv_kernel=int(w2v2.get("conv_depthwise_kernel_size", 31)), hidden_act=str(w2v2.get("hidden_act", "swish")),
        rotary_base=int(w2v2.get("rotary_embedding_base", 10_000)),
        layer_norm_eps=float(w2v2.get("layer_norm_eps", 1e-5)), dropout=float(w2v2.get("hidden_dropout", 0.1)))


def checkpoint_spec(folder: Path) -> BackboneSpec:
    """The spec of a checkpoint folder of either format."""
    cfg = read_config(folder)
    if cfg.get("format") == OUR_FORMAT:
        try:
            return BackboneSpec.from_json(cfg["spec"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{folder}/config.json: spec: {err}") from None
    if "encoder_dim" in cfg or "w2v2_config" in cfg:
        return spec_from_muq_config(cfg, f"{folder}/config.json")
    raise DataError(f"{folder}/config.json: neither a MuQ config (encoder_dim, w2v2_config, stat) nor a "
                    f"pianoeval backbone config (format: {OUR_FORMAT})")


def checkpoint_hash(folder: Path) -> str:
    """Content hash of config.json + model.safetensors (a cache key part)."""
    folder = Path(folder)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise DataError(f"{folder}: model.safetensors missing (a checkpoint is config.json + model.safetensors)")
    return hashlib.sha256(f"{file_hash(folder / 'config.json')}|{file_hash(weights)}".encode()).hexdigest()[:16]


def check_weights(folder: Path) -> None:
    """A pianoeval checkpoint records its weights' sha256 in config.json; a file that no
    longer matches (edited, truncated, an LFS pointer) is a DataError with the rebuild command."""
    cfg = read_config(folder)
    expected = cfg.get("weights_sha256")
    if cfg.get("format") != OUR_FORMAT or not expected:
        return
    weights = Path(folder) / "model.safetensors"
    actual = content_hash(weights)
    if actual != expected:
        command = (cfg.get("pretraining") or {}).get("command") or "python runners/pretrain_audio.py --help"
        raise DataError(f"{weights}: content hash {actual[:12]} does not match weights_sha256 {expected[:12]} in "
                        f"its config.json; rebuild it with `{command} --force`")


def load_backbone(folder: Path, first_layer: int = 0) -> ConformerBackbone:
    """Build the backbone of ``folder`` (layers above ``first_layer`` only, when > 0) and
    load its weights; a missing or mis-shaped tensor is a DataError naming the key."""
    from safetensors import safe_open

    folder = Path(folder)
    spec = checkpoint_spec(folder)
    model = ConformerBackbone(spec, first_layer)
    prefix = MUQ_PREFIX if spec.kind == "muq" and read_config(folder).get("format") != OUR_FORMAT else ""
    wanted = {k: v for k, v in model.state_dict().items() if not k.startswith("conformer.embed_positions.")}
    weights = folder / "model.safetensors"
    checkpoint_hash(folder)  # raises when missing
    check_weights(folder)
    state = {}
    with safe_open(str(weights), framework="pt") as handle:
        available = set(handle.keys())
        for key, target in wanted.items():
            stored = prefix + key
            if stored not in available:
                raise DataError(f"{weights}: tensor {stored!r} missing (this {spec.kind} checkpoint does not match "
                                f"its config.json: {spec.num_layers} layers of width {spec.hidden_size})")
            tensor = handle.get_tensor(stored)
            if tensor.shape != target.shape:
                raise DataError(f"{weights}: tensor {stored!r} has shape {tuple(tensor.shape)}, the config implies "
                                f"{tuple(target.shape)}")
            state[key] = tensor
    model.load_state_dict(state, strict=False)
    return model


def save_backbone(model: ConformerBackbone, folder: Path, pretraining: dict) -> None:
    """Write ``model`` in our format (config.json + model.safetensors), atomically."""
    from safetensors.torch import save_file

    if model.first_layer != 0:
        raise ValueError("save_backbone needs the whole backbone (first_layer 0)")
    folder = Path(folder)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()
             if not k.startswith("conformer.embed_positions.")}
    atomic_write(folder / "model.safetensors", lambda tmp: save_file(state, str(tmp)))
    config = {"format": OUR_FORMAT, "spec": model.spec.to_json(),
              "weights_sha256": content_hash(folder / "model.safetensors"), "pretraining": pretraining}
    atomic_write_text(folder / "config.json", json.dumps(config, indent=1) + "\n")


def write_muq_checkpoint(model: ConformerBackbone, folder: Path, extra_config: dict | None = None) -> None:
    """Write ``model`` (a ``kind="muq"`` spec) exactly as MuQ publishes it: MuQ's config keys
    and ``model.``-prefixed weights, plus the pre-training-only tensors MuQ also ships
    (``model.linear``, ``model.cls_token``), which the loader must skip."""
    from safetensors.torch import save_file

    spec = model.spec
    state = {MUQ_PREFIX + k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()
             if not k.startswith("conformer.embed_positions.")}
    state["model.linear.weight"] = torch.zeros(64, spec.hidden_size)
    state["model.linear.bias"] = torch.zeros(64)
    state["model.cls_token"] = torch.zeros(spec.hidden_size)
    config = {
        "label_rate": 25, "num_codebooks": 1, "codebook_dim": 16, "codebook_size": 64, "features": ["melspec_2048"],
        "hop_length": spec.hop_length, "n_mels": spec.n_mels, "conv_dim": spec.conv_channels,
        "encoder_dim": spec.hidden_size, "encoder_depth": spec.num_layers, "mask_hop": 0.4, "mask_prob": 0.6,
        "is_flash": False, "stat": {"melspec_2048_cnt": 1, "melspec_2048_mean": spec.db_mean,
                                     "melspec_2048_std": spec.db_std},
        "w2v2_config": {"hidden_size": spec.hidden_size, "num_attention_heads": spec.num_heads,
                        "intermediate_size": spec.intermediate_size,
                        "conv_depthwise_kernel_size": spec.conv_kernel, "hidden_act": spec.hidden_act,
                        "position_embeddings_type": "rotary", "rotary_embedding_base": spec.rotary_base,
                        "layer_norm_eps": spec.layer_norm_eps, "hidden_dropout": spec.dropout},
        "use_rvq_target": False, "use_vq_target": False, "use_encodec_target": False,
        **(extra_config or {}),
    }
    folder = Path(folder)
    atomic_write(folder / "model.safetensors", lambda tmp: save_file(state, str(tmp)))
    atomic_write_text(folder / "config.json", json.dumps(config, indent=1) + "\n")
