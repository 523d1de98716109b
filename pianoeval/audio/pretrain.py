"""Self-supervised training on rendered audio: the default backbone's pre-training and
A2's stage 1 share it.

Objective (the design's stage 1, "no labels needed"), on ASAP windows (``asap``):
each batch holds ``passages`` passages x 2 performers, each window in a random training
soundfont, plus an augmented view of every window (``augment``). With z the embedding of
a window (L2-normalised inside the loss) and ``positives: passage`` (the default;
``recording`` keeps only a window's own augmented view as its positive, a control that
does not teach invariance to the performer):

    L = InfoNCE(z over the batch, positives = same passage: the other performer and
                 every augmented view)                                   (cross-performer)
      + lambda_invariance * MSE(z_clean, z_augmented)                    (augmentation)

using the shared ``infonce_loss`` / ``invariance_loss``. Progress is measured by
held-out passage retrieval: for each clean window of held-out pieces, is its nearest
neighbour (cosine) another performer of the same passage? ``retrieval_accuracy`` before
and after training is saved with the checkpoint.

* ``pretrain_backbone``: the whole ``pianoeval`` backbone from random initialisation
  (z = projection of the mean-pooled last hidden state), saved to
  ``results/pretrained/audio/<name>/`` and reused.
* ``run_stage1`` (A2): only the LoRA adapters (and the shared pooling + MLP of the heads,
  whose z is the contrastive embedding) on top of a frozen backbone, from the hidden-state
  cache; stage 2 (supervised) starts from the saved result.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch
from torch import nn

from pianoeval.audio.asap import AsapWindow, asap_windows, split_by_piece
from pianoeval.audio.backbones import BackboneSpec, ConformerBackbone
from pianoeval.audio.checkpoint import save_backbone
from pianoeval.audio.data import AudioBatch
from pianoeval.audio.features import Frontend, MelStore, build_mels
from pianoeval.models.configs.audio import AugmentConfig
from pianoeval.models.losses import infonce_loss, invariance_loss

Table = dict[tuple[str, str, int], np.ndarray]  # (item id, soundfont, variant) -> frames [T, C]


@dataclass(frozen=True)
class SSLConfig:
    """Self-supervised run: data, budget and objective. CPU defaults: 150 steps; measured
    on the project's two cores shared with other jobs (load 10-14): 45 min from nothing
    (rendering 24 min, log-mel 13 min, training 8 min), 18 min with the renders cached."""

    window_seconds: float = 5.0
    windows_per_performance: int = 2
    max_pieces: int | None = None
    held_out_fraction: float = 0.1
    soundfonts: tuple[str, ...] = ("musescore", "timgm6mb")
    steps: int = 150
    passages_per_batch: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    temperature: float = 0.1
    lambda_invariance: float = 1.0
    positives: Literal["passage", "recording"] = "passage"  # "recording": only a window's own augmented view
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_json(self) -> dict:
        data = asdict(self)
        data["augment"] = self.augment.model_dump()
        return data


def _batch(table: Table, keys: list[tuple[str, str, int]], groups: list[int], level: int) -> AudioBatch:
    arrays = [table[k] for k in keys]
    lengths = torch.tensor([a.shape[0] for a in arrays])
    frames = torch.zeros(len(arrays), int(lengths.max()), arrays[0].shape[1])
    for i, a in enumerate(arrays):
        frames[i, : a.shape[0]] = torch.from_numpy(a.astype(np.float32))
    n = len(keys)
    return AudioBatch(labels=torch.zeros(n, 1), label_std=torch.zeros(n, 1), group=torch.tensor(groups),
                      segment_ids=[k[0] for k in keys], label_mask=torch.zeros(n, dtype=torch.bool),
                      frames=frames, lengths=lengths, level=level)


def _passages(windows: list[AsapWindow]) -> list[list[AsapWindow]]:
    by_group: dict[int, list[AsapWindow]] = {}
    for w in windows:
        by_group.setdefault(w.group, []).append(w)
    return [ws for ws in by_group.values() if len(ws) >= 2]


def ssl_step_batch(passages: list[list[AsapWindow]], rng: np.random.Generator, config: SSLConfig, table: Table,
                   level: int) -> tuple[AudioBatch, AudioBatch]:
    """(clean, augmented) batches of ``passages_per_batch`` passages x 2 performers."""
    chosen = rng.choice(len(passages), size=min(config.passages_per_batch, len(passages)), replace=False)
    keys, groups = [], []
    for p in chosen:
        for j in rng.choice(len(passages[p]), size=2, replace=False):
            window = passages[p][j]
            keys.append((window.item.item_id, str(rng.choice(config.soundfonts))))
            groups.append(window.group if config.positives == "passage" else len(groups))
    clean = _batch(table, [(i, sf, 0) for i, sf in keys], groups, level)
    return clean, _batch(table, [(i, sf, 1) for i, sf in keys], groups, level)


def ssl_loss(embed: Callable[[AudioBatch], torch.Tensor], clean: AudioBatch, augmented: AudioBatch,
             config: SSLConfig) -> tuple[torch.Tensor, dict[str, float]]:
    z_clean, z_aug = embed(clean), embed(augmented)
    contrastive = infonce_loss(torch.cat([z_clean, z_aug]), torch.cat([clean.group, augmented.group]),
                               config.temperature)
    # on unit vectors scaled by sqrt(Z), the shared MSE is 2 - 2 cos(z_clean, z_aug)
    scale = math.sqrt(z_clean.shape[1])
    invariance = invariance_loss(nn.functional.normalize(z_clean, dim=1) * scale,
                                 nn.functional.normalize(z_aug, dim=1) * scale)
    total = contrastive + config.lambda_invariance * invariance
    return total, {"contrastive": float(contrastive.detach()), "invariance": float(invariance.detach())}


@torch.no_grad()
def retrieval_accuracy(embed: Callable[[AudioBatch], torch.Tensor], windows: list[AsapWindow], table: Table,
                       soundfont: str, level: int, batch_size: int = 32) -> float:
    """Top-1 same-passage retrieval among clean held-out windows (cosine similarity)."""
    windows = [w for w in windows if (w.item.item_id, soundfont, 0) in table]
    z = torch.cat([embed(_batch(table, [(w.item.item_id, soundfont, 0) for w in windows[i:i + batch_size]],
                                [w.group for w in windows[i:i + batch_size]], level))
                   for i in range(0, len(windows), batch_size)])
    z = nn.functional.normalize(z, dim=1)
    similarity = (z @ z.T).fill_diagonal_(-math.inf)
    nearest = similarity.argmax(dim=1)
    groups = torch.tensor([w.group for w in windows])
    return float((groups[nearest] == groups).float().mean())


def train_ssl(module: nn.Module, embed: Callable[[AudioBatch], torch.Tensor], train_windows: list[AsapWindow],
              table: Table, config: SSLConfig, level: int, progress: bool = True, desc: str = "self-supervised",
              log=print) -> list[dict]:
    """AdamW + warm-up/cosine on the parameters of ``module`` that require grad."""
    from tqdm.auto import tqdm

    passages = _passages(train_windows)
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        return 0.5 * (1 + math.cos(math.pi * (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    rng = np.random.default_rng(config.seed)
    history, window = [], []
    bar = tqdm(range(config.steps), desc=desc, unit="step", disable=None if progress is None else not progress, leave=False)
    for step in bar:
        clean, augmented = ssl_step_batch(passages, rng, config, table, level)
        loss, parts = ssl_loss(embed, clean, augmented, config)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"self-supervised loss became {float(loss)} at step {step}")
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 2.0)
        optimizer.step()
        scheduler.step()
        window.append({"loss": float(loss.detach()), **parts})
        if (step + 1) % max(1, config.steps // 10) == 0 or step + 1 == config.steps:
            mean = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
            history.append({"step": step + 1, **mean})
            bar.set_postfix(loss=f"{mean['loss']:.3f}")
            log(f"[pretrain] step {step + 1}/{config.steps}  loss {mean['loss']:.4f}  contrastive "
                f"{mean['contrastive']:.4f}  invariance {mean['invariance']:.4f}")
            window = []
    bar.close()
    return history


def ssl_windows(config: SSLConfig, warn=print) -> tuple[list[AsapWindow], list[AsapWindow]]:
    windows = asap_windows(config.window_seconds, config.windows_per_performance, config.max_pieces, warn=warn)
    return split_by_piece(windows, config.held_out_fraction)


def window_mels(windows: list[AsapWindow], frontend: Frontend, config: SSLConfig, workers: int | None,
                progress: bool, warn=print) -> MelStore:
    return build_mels([w.item for w in windows], list(config.soundfonts), 1, frontend, config.augment, None,
                      workers=workers, progress=progress, warn=warn, label="ASAP windows")


class PretrainHead(nn.Module):
    """Mean-pool the last hidden state, project to z (discarded after pre-training)."""

    def __init__(self, backbone: ConformerBackbone, z_dim: int = 128):
        super().__init__()
        self.backbone = backbone
        width = backbone.hidden_size
        self.projection = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, z_dim))

    def forward(self, batch: AudioBatch) -> torch.Tensor:
        h, mask = self.backbone.embed(batch.frames.transpose(1, 2), batch.lengths)
        h = self.backbone.run_layers(h, mask, 0)
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return self.projection(pooled)


def log_mel_stats(store: MelStore, keys: list, limit: int = 256) -> tuple[float, float]:
    """Mean and std of the dB log-mel over (up to ``limit``) training items."""
    values = np.concatenate([store.load(*k).astype(np.float32).ravel() for k in keys[:limit]])
    return float(values.mean()), float(values.std())


def pretrain_backbone(folder: Path, spec: BackboneSpec, config: SSLConfig, workers: int | None = None,
                      progress: bool = True, log=print) -> dict:
    """Pre-train a ``pianoeval`` backbone from scratch and save it to ``folder``; returns
    the ``pretraining`` record saved in its config.json."""
    started = time.time()
    torch.manual_seed(config.seed)
    train_windows, held_out = ssl_windows(config, warn=log)
    store = window_mels(train_windows + held_out, Frontend.of(spec), config, workers, progress, warn=log)
    prepared = time.time() - started
    table: Table = {key: store.load(*key).T for key in store.paths}
    mean, std = log_mel_stats(store, sorted(k for k in store.paths if k[2] == 0))
    spec = replace(spec, db_mean=mean, db_std=std)
    model = PretrainHead(ConformerBackbone(spec))
    log(f"[pretrain] backbone: {model.backbone.parameter_count():,} parameters; {len(train_windows)} training "
        f"windows ({len(_passages(train_windows))} passages), {len(held_out)} held out; "
        f"log-mel dB mean {mean:.2f} std {std:.2f}")
    model.eval()
    before = retrieval_accuracy(model, held_out, table, config.soundfonts[0], 0)
    model.train()
    history = train_ssl(model, model, train_windows, table, config, level=0, progress=progress, log=log,
                        desc="pre-training backbone")
    model.eval()
    after = retrieval_accuracy(model, held_out, table, config.soundfonts[0], 0)
    record = {"objective": "cross-performer InfoNCE + augmentation invariance on ASAP windows",
              "config": config.to_json(), "history": history, "held_out_retrieval_before": before,
              "held_out_retrieval_after": after, "data_seconds": prepared,
              "wall_seconds": time.time() - started, "train_windows": len(train_windows),
              "held_out_windows": len(held_out)}
    save_backbone(model.backbone, folder, record)
    log(f"[pretrain] held-out passage retrieval {before:.3f} -> {after:.3f}; saved {folder} "
        f"({record['wall_seconds'] / 60:.1f} min)")
    return record


def stage1_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
