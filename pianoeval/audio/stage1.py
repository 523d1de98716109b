"""A2 stage 1: self-supervised adapters, trained once per setting and reused.

The LoRA adapters of an ``a2_staged`` model and the shared pooling + MLP of its heads
(whose output z is the contrastive embedding) are trained with the objective of
``pretrain`` (cross-performer InfoNCE + augmentation invariance) on ASAP windows, from
the hidden-state cache of the frozen layers. The result (those tensors, safetensors)
is kept in ``results/pretrained/audio/a2_stage1/<key>/`` with a ``config.json`` that
records the settings, the loss curve and held-out passage retrieval before / after.
The key covers the backbone (content hash), the adapter and heads settings, the stage-1
settings and the audio data options they read, so every stage-2 trial of a sweep with
the same stage-1 settings starts from the same checkpoint, and a change gives a new one.
"""

from __future__ import annotations

import json
import time

import torch

from pianoeval.audio.features import Frontend
from pianoeval.audio.hidden_cache import build_hidden
from pianoeval.audio.pretrain import SSLConfig, retrieval_accuracy, ssl_windows, stage1_key, train_ssl, window_mels
from pianoeval.audio.source import source_of
from pianoeval.io import atomic_write, atomic_write_text
from pianoeval.paths import results_root

STAGE1_VERSION = "1"
_HEAD_FIELDS = ("z_dim", "head_hidden", "head_dropout", "pool_heads", "pool_temperature")
_LORA_FIELDS = ("lora_rank", "lora_alpha", "lora_dropout", "lora_layers", "lora_targets", "hidden_cache")


def ssl_config(config) -> SSLConfig:
    audio = config.audio
    return SSLConfig(window_seconds=audio.asap_window_seconds, windows_per_performance=audio.asap_windows_per_performance,
                     max_pieces=audio.asap_max_pieces, soundfonts=tuple(audio.soundfonts), steps=config.stage1_steps,
                     passages_per_batch=config.stage1_passages_per_batch, lr=config.stage1_lr,
                     temperature=config.stage1_temperature, lambda_invariance=config.stage1_lambda_invariance,
                     warmup_steps=max(1, config.stage1_steps // 20), seed=config.backbone_seed, augment=audio.augment)


def _trainable_state(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().contiguous().clone() for name, p in model.named_parameters()
            if "lora_" in name or name.startswith(("heads.pool.", "heads.shared."))}


def load_or_run_stage1(model, config, progress: bool | None = None, log=print) -> dict:
    """Load the stage-1 weights into ``model`` (running stage 1 first when missing)."""
    from safetensors.torch import load_file, save_file

    encoder = model.encoder
    source = source_of(config)
    ssl = ssl_config(config)
    parts = {"version": STAGE1_VERSION, "backbone": source.key(), "backbone_init": config.backbone_init,
             "ssl": ssl.to_json(), **{k: getattr(config, k) for k in _HEAD_FIELDS + _LORA_FIELDS}}
    folder = results_root() / "pretrained" / "audio" / "a2_stage1" / stage1_key(parts)
    weights = folder / "model.safetensors"
    if weights.is_file():
        missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)
        if unexpected:
            raise RuntimeError(f"{weights}: unexpected tensors {unexpected[:3]} (delete the folder to rerun stage 1)")
        log(f"[audio] A2 stage 1: starting stage 2 from {folder}")
        return json.loads((folder / "config.json").read_text())

    log(f"[audio] A2 stage 1: no checkpoint for these settings; running it now ({ssl.steps} steps) -> {folder}")
    started = time.time()
    train_windows, held_out = ssl_windows(ssl, warn=log)
    store = window_mels(train_windows + held_out, Frontend.of(encoder.spec), ssl, config.audio.workers, progress,
                        warn=log)
    layer = encoder.start
    keys = sorted(store.paths)
    if layer == 0:
        table = {key: store.load(*key).T for key in keys}
    else:
        table = build_hidden(source, layer, store, keys, progress=progress, warn=log, label="ASAP windows")

    def embed(batch):
        frames, mask = encoder.encode(batch)
        return model.heads.embed(frames, mask)[0]

    model.eval()
    before = retrieval_accuracy(embed, held_out, table, ssl.soundfonts[0], layer)
    model.train()
    history = train_ssl(model, embed, train_windows, table, ssl, layer, progress=progress, log=log,
                        desc="A2 stage 1")
    model.eval()
    after = retrieval_accuracy(embed, held_out, table, ssl.soundfonts[0], layer)
    model.train()
    record = {"settings": parts, "history": history, "held_out_retrieval_before": before,
              "held_out_retrieval_after": after, "wall_seconds": time.time() - started}
    state = _trainable_state(model)
    atomic_write(weights, lambda tmp: save_file(state, str(tmp)))
    atomic_write_text(folder / "config.json", json.dumps(record, indent=1, default=str) + "\n")
    log(f"[audio] A2 stage 1 done in {record['wall_seconds']:.0f}s: held-out passage retrieval "
        f"{before:.3f} -> {after:.3f}")
    return record
