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

Alignment-supervised objective (``aligned_weight`` > 0; ``python runners/pretrain_audio.py
--objective aligned``): every rendered item comes with its source MIDI, aligned to the
sample, so the backbone's last hidden state is trained to predict, frame by frame, what
the performer did (``pianoeval.audio.targets``): the 9 performance curves (standardised
with the training frames' statistics; MSE) and the 88-key onset roll (binary
cross-entropy divided by the entropy of the training onset rate, so that predicting the
base rate scores 1, as predicting the curve means does). Items: the ASAP training windows
and, with ``percepiano_split``, the training segments of one PercePiano fold (their
first ``percepiano_max_seconds``, the crop A1 trains on, so the log-mel cache is shared);
both soundfonts; the augmented view of an item in a share ``augmented_share`` of the
picks. Targets come from MIDI, never from ratings. Weighted with the contrastive
objective (``contrastive_weight``): ``L = contrastive_weight * L_ssl + aligned_weight *
(L_curves + L_roll)``. Held-out quality per target (R2 of each curve, average precision
and F1 of the onset roll, on the held-out ASAP pieces) is saved with the checkpoint.

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
from pianoeval.audio.backbones import BackboneSpec, ConformerBackbone, hidden_frames
from pianoeval.audio.checkpoint import save_backbone
from pianoeval.audio.data import AudioBatch
from pianoeval.audio.features import AudioItem, Frontend, MelStore, build_mels
from pianoeval.audio.targets import CURVE_NAMES, PIANO_KEYS, TargetTable, build_targets, curve_statistics
from pianoeval.data.dataset import load_percepiano
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
    # the objective: weights of the contrastive (cross-performer + invariance) and the
    # alignment-supervised terms (see the module docstring)
    contrastive_weight: float = 1.0
    aligned_weight: float = 0.0
    items_per_batch: int = 16  # aligned objective: rendered items per step
    augmented_share: float = 0.5  # aligned objective: share of picks that take the augmented view
    percepiano_split: str | None = None  # aligned objective: also a PercePiano fold's training segments
    percepiano_fold: int = 0
    percepiano_max_seconds: float = 12.0
    percepiano_max_segments: int | None = None  # a seeded subset (tests, quick runs); None = the whole fold

    @property
    def objective(self) -> str:
        parts = [f"{name} {weight:g}" for name, weight in (("contrastive", self.contrastive_weight),
                                                          ("aligned", self.aligned_weight)) if weight > 0]
        return " + ".join(parts)

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


def _optimise(module: nn.Module, steps: int, step_loss: Callable[[int, np.random.Generator], tuple[torch.Tensor, dict]],
              config: SSLConfig, progress: bool | None, desc: str, log) -> list[dict]:
    """AdamW + warm-up/cosine on the parameters of ``module`` that require grad, ``steps``
    steps of ``step_loss(step, rng) -> (loss, parts)``; the mean parts every tenth of the run
    are logged and returned."""
    from tqdm.auto import tqdm

    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        return 0.5 * (1 + math.cos(math.pi * (step - config.warmup_steps) / max(1, steps - config.warmup_steps)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    rng = np.random.default_rng(config.seed)
    history, window = [], []
    bar = tqdm(range(steps), desc=desc, unit="step", disable=None if progress is None else not progress, leave=False)
    for step in bar:
        loss, parts = step_loss(step, rng)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"pre-training loss became {float(loss)} at step {step}")
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 2.0)
        optimizer.step()
        scheduler.step()
        window.append({"loss": float(loss.detach()), **parts})
        if (step + 1) % max(1, steps // 10) == 0 or step + 1 == steps:
            mean = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
            history.append({"step": step + 1, **mean})
            bar.set_postfix(loss=f"{mean['loss']:.3f}")
            log(f"[pretrain] step {step + 1}/{steps}  " + "  ".join(f"{k} {v:.4f}" for k, v in mean.items()))
            window = []
    bar.close()
    return history


def train_ssl(module: nn.Module, embed: Callable[[AudioBatch], torch.Tensor], train_windows: list[AsapWindow],
              table: Table, config: SSLConfig, level: int, progress: bool = True, desc: str = "self-supervised",
              log=print) -> list[dict]:
    """The contrastive objective alone (A2's stage 1)."""
    passages = _passages(train_windows)

    def step_loss(step, rng):
        clean, augmented = ssl_step_batch(passages, rng, config, table, level)
        return ssl_loss(embed, clean, augmented, config)

    return _optimise(module, config.steps, step_loss, config, progress, desc, log)


# -- the alignment-supervised objective ---------------------------------------------------
@dataclass
class AlignedData:
    """The aligned objective's items, targets and target statistics."""

    train_ids: list[str]
    held_out_ids: list[str]
    targets: TargetTable
    curve_mean: np.ndarray  # [9] over the training frames
    curve_std: np.ndarray  # [9]
    onset_rate: float  # share of (frame, key) cells with an onset, training frames

    @property
    def roll_entropy(self) -> float:
        """Binary cross-entropy of predicting the base rate everywhere (the roll loss's unit)."""
        p = min(max(self.onset_rate, 1e-6), 1 - 1e-6)
        return float(-(p * math.log(p) + (1 - p) * math.log(1 - p)))

    def record(self) -> dict:
        return {"train_items": len(self.train_ids), "held_out_items": len(self.held_out_ids),
                "skipped_items": len(self.targets.skipped), "onset_rate": self.onset_rate,
                "curve_mean": dict(zip(CURVE_NAMES, map(float, self.curve_mean))),
                "curve_std": dict(zip(CURVE_NAMES, map(float, self.curve_std)))}


def percepiano_train_items(config: SSLConfig) -> list[AudioItem]:
    """The training segments of PercePiano fold ``percepiano_fold`` of ``percepiano_split``
    (never its validation or test segments)."""
    data = load_percepiano(warn=lambda msg: None)
    ids = list(data.fold(config.percepiano_split, config.percepiano_fold).train)
    if config.percepiano_max_segments is not None and config.percepiano_max_segments < len(ids):
        keep = np.random.default_rng(config.seed).permutation(len(ids))[: config.percepiano_max_segments]
        ids = [ids[i] for i in sorted(keep)]
    return [AudioItem(sid, data.by_id[sid].performance_midi(data.root)) for sid in ids]


def aligned_data(items: list[AudioItem], held_out: set[str], table: Table, soundfont: str, frame_rate: float,
                 warn=print) -> AlignedData:
    """Targets of every item with a clean render in ``table`` (its frames decide the grid)."""
    frames = {i.item_id: hidden_frames(table[(i.item_id, soundfont, 0)].shape[0])
              for i in items if (i.item_id, soundfont, 0) in table}
    targets = build_targets(items, frames, frame_rate, warn=warn)
    train_ids = [i.item_id for i in items if i.item_id in targets.targets and i.item_id not in held_out]
    held_ids = [i.item_id for i in items if i.item_id in targets.targets and i.item_id in held_out]
    if not train_ids:
        raise ValueError("no training item has alignment targets (see the skipped items above)")
    mean, std = curve_statistics(targets, train_ids)
    rate = float(np.mean([targets.targets[i][1].mean() for i in train_ids]))
    return AlignedData(train_ids, held_ids, targets, mean, std, rate)


def aligned_batch(ids: list[str], keys: list[tuple[str, str, int]], table: Table, data: AlignedData,
                  ) -> tuple[AudioBatch, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log-mel batch, standardised curves [B, T', 9], roll [B, T', 88], valid [B, T'])."""
    batch = _batch(table, keys, list(range(len(keys))), 0)
    frames = hidden_frames(batch.frames.shape[1])
    curves = torch.zeros(len(keys), frames, len(CURVE_NAMES))
    roll = torch.zeros(len(keys), frames, PIANO_KEYS)
    valid = torch.zeros(len(keys), frames, dtype=torch.bool)
    for b, item_id in enumerate(ids):
        c, r = data.targets.targets[item_id]
        n = min(len(c), frames)
        curves[b, :n] = torch.from_numpy((c[:n] - data.curve_mean) / data.curve_std)
        roll[b, :n] = torch.from_numpy(r[:n].astype(np.float32))
        valid[b, :n] = True
    return batch, curves, roll, valid


def aligned_loss(model: PretrainHead, batch: AudioBatch, curves: torch.Tensor, roll: torch.Tensor,
                 valid: torch.Tensor, data: AlignedData) -> tuple[torch.Tensor, dict[str, float]]:
    predicted, logits, mask = model.aligned(batch)
    keep = mask & valid[:, : mask.shape[1]]
    curve_loss = ((predicted - curves[:, : mask.shape[1]]) ** 2)[keep].mean()
    roll_loss = nn.functional.binary_cross_entropy_with_logits(logits[keep], roll[:, : mask.shape[1]][keep])
    roll_loss = roll_loss / data.roll_entropy
    return curve_loss + roll_loss, {"curves": float(curve_loss.detach()), "roll": float(roll_loss.detach())}


@torch.no_grad()
def aligned_quality(model: PretrainHead, ids: list[str], table: Table, data: AlignedData, soundfont: str,
                    batch_size: int = 16) -> dict[str, float]:
    """Held-out prediction quality per target on clean renders: R2 of each curve (original
    units) and their mean, average precision and F1 (threshold 0.5) of the onset roll."""
    from sklearn.metrics import average_precision_score, f1_score, r2_score

    true_c, pred_c, true_r, prob_r = [], [], [], []
    for i in range(0, len(ids), batch_size):
        chunk = ids[i:i + batch_size]
        batch, curves, roll, valid = aligned_batch(chunk, [(k, soundfont, 0) for k in chunk], table, data)
        predicted, logits, mask = model.aligned(batch)
        keep = mask & valid[:, : mask.shape[1]]
        scale, shift = torch.from_numpy(data.curve_std), torch.from_numpy(data.curve_mean)
        true_c.append((curves[:, : mask.shape[1]][keep] * scale + shift).numpy())
        pred_c.append((predicted[keep] * scale + shift).numpy())
        true_r.append(roll[:, : mask.shape[1]][keep].numpy().ravel())
        prob_r.append(torch.sigmoid(logits[keep]).numpy().ravel())
    true_c, pred_c = np.concatenate(true_c), np.concatenate(pred_c)
    true_r, prob_r = np.concatenate(true_r), np.concatenate(prob_r)
    out = {f"r2/{name}": float(r2_score(true_c[:, c], pred_c[:, c])) for c, name in enumerate(CURVE_NAMES)}
    out["r2_mean"] = float(np.mean([out[f"r2/{name}"] for name in CURVE_NAMES]))
    out["onset_average_precision"] = float(average_precision_score(true_r, prob_r))
    out["onset_f1"] = float(f1_score(true_r, prob_r > 0.5))
    out["onset_rate"] = float(true_r.mean())
    out["frames"] = int(len(true_c))
    return out


def train_pretraining(model: PretrainHead, train_windows: list[AsapWindow], table: Table, config: SSLConfig,
                      aligned: AlignedData | None, progress: bool, log=print) -> list[dict]:
    """The weighted objective of the module docstring on the whole backbone."""
    passages = _passages(train_windows) if config.contrastive_weight > 0 else []

    def step_loss(step, rng):
        total, parts = torch.zeros(()), {}
        if config.contrastive_weight > 0:
            clean, augmented = ssl_step_batch(passages, rng, config, table, 0)
            loss, more = ssl_loss(model, clean, augmented, config)
            total, parts = total + config.contrastive_weight * loss, {**parts, **more}
        if config.aligned_weight > 0:
            chosen = rng.choice(len(aligned.train_ids), size=min(config.items_per_batch, len(aligned.train_ids)),
                                replace=False)
            ids = [aligned.train_ids[i] for i in chosen]
            keys = [(i, str(rng.choice(config.soundfonts)), int(rng.random() < config.augmented_share)) for i in ids]
            loss, more = aligned_loss(model, *aligned_batch(ids, keys, table, aligned), aligned)
            total, parts = total + config.aligned_weight * loss, {**parts, **more}
        return total, parts

    return _optimise(model, config.steps, step_loss, config, progress, "pre-training backbone", log)


def ssl_windows(config: SSLConfig, warn=print) -> tuple[list[AsapWindow], list[AsapWindow]]:
    windows = asap_windows(config.window_seconds, config.windows_per_performance, config.max_pieces, warn=warn)
    return split_by_piece(windows, config.held_out_fraction)


def window_mels(windows: list[AsapWindow], frontend: Frontend, config: SSLConfig, workers: int | None,
                progress: bool, warn=print) -> MelStore:
    return build_mels([w.item for w in windows], list(config.soundfonts), 1, frontend, config.augment, None,
                      workers=workers, progress=progress, warn=warn, label="ASAP windows")


class PretrainHead(nn.Module):
    """The pre-training heads on the backbone's last hidden state (discarded afterwards):
    mean-pool + projection to z (contrastive), and per-frame linear read-outs of the
    performance curves and the onset roll (aligned)."""

    def __init__(self, backbone: ConformerBackbone, z_dim: int = 128):
        super().__init__()
        self.backbone = backbone
        width = backbone.hidden_size
        self.projection = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, z_dim))
        self.curves = nn.Linear(width, len(CURVE_NAMES))
        self.roll = nn.Linear(width, PIANO_KEYS)

    def hidden(self, batch: AudioBatch) -> tuple[torch.Tensor, torch.Tensor]:
        h, mask = self.backbone.embed(batch.frames.transpose(1, 2), batch.lengths)
        return self.backbone.run_layers(h, mask, 0), mask

    def forward(self, batch: AudioBatch) -> torch.Tensor:
        h, mask = self.hidden(batch)
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return self.projection(pooled)

    def aligned(self, batch: AudioBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(curves [B, T', 9], onset-roll logits [B, T', 88], frame mask [B, T'])."""
        h, mask = self.hidden(batch)
        return self.curves(h), self.roll(h), mask


def log_mel_stats(store: MelStore, keys: list, limit: int = 256) -> tuple[float, float]:
    """Mean and std of the dB log-mel over (up to ``limit``) training items."""
    values = np.concatenate([store.load(*k).astype(np.float32).ravel() for k in keys[:limit]])
    return float(values.mean()), float(values.std())


def pretrain_backbone(folder: Path, spec: BackboneSpec, config: SSLConfig, workers: int | None = None,
                      progress: bool = True, log=print, command: str | None = None) -> dict:
    """Pre-train a ``pianoeval`` backbone from scratch with ``config``'s objective and save it
    to ``folder``; returns the ``pretraining`` record saved in its config.json (with
    ``command``, the command line that rebuilds it)."""
    started = time.time()
    torch.manual_seed(config.seed)
    train_windows, held_out = ssl_windows(config, warn=log)
    frontend = Frontend.of(spec)
    store = window_mels(train_windows + held_out, frontend, config, workers, progress, warn=log)
    table: Table = {key: store.load(*key).T for key in store.paths}
    extra = percepiano_train_items(config) if config.aligned_weight > 0 and config.percepiano_split else []
    if extra:
        segments = build_mels(extra, list(config.soundfonts), 1, frontend, config.augment,
                              config.percepiano_max_seconds, workers=workers, progress=progress, warn=log,
                              label="PercePiano train")
        table.update({key: segments.load(*key).T for key in segments.paths})
    prepared = time.time() - started
    mean, std = log_mel_stats(store, sorted(k for k in store.paths if k[2] == 0))
    spec = replace(spec, db_mean=mean, db_std=std)
    model = PretrainHead(ConformerBackbone(spec))
    aligned = None
    if config.aligned_weight > 0:
        aligned = aligned_data([w.item for w in train_windows + held_out] + extra, {w.item.item_id for w in held_out},
                               table, config.soundfonts[0], spec.frames_per_second, warn=log)
    log(f"[pretrain] backbone: {model.backbone.parameter_count():,} parameters; objective {config.objective}; "
        f"{len(train_windows)} training windows ({len(_passages(train_windows))} passages)"
        + (f" + {len(extra)} PercePiano {config.percepiano_split} fold-{config.percepiano_fold} training segments"
           if extra else "") + f", {len(held_out)} held out; log-mel dB mean {mean:.2f} std {std:.2f}")
    model.eval()
    before = retrieval_accuracy(model, held_out, table, config.soundfonts[0], 0)
    model.train()
    history = train_pretraining(model, train_windows, table, config, aligned, progress, log=log)
    model.eval()
    after = retrieval_accuracy(model, held_out, table, config.soundfonts[0], 0)
    record = {"objective": config.objective, "config": config.to_json(), "history": history,
              "held_out_retrieval_before": before, "held_out_retrieval_after": after, "data_seconds": prepared,
              "train_windows": len(train_windows), "held_out_windows": len(held_out),
              "percepiano_train_segments": len(extra)}
    if aligned is not None:
        quality = aligned_quality(model, aligned.held_out_ids, table, aligned, config.soundfonts[0])
        record["aligned"] = {**aligned.record(), "held_out_quality": quality}
        log(f"[pretrain] held-out alignment targets ({quality['frames']} frames): curve R2 "
            + ", ".join(f"{name} {quality[f'r2/{name}']:.2f}" for name in CURVE_NAMES)
            + f" (mean {quality['r2_mean']:.3f}); onset roll AP {quality['onset_average_precision']:.3f}, "
              f"F1 {quality['onset_f1']:.3f} (onset rate {quality['onset_rate']:.4f})")
    record["wall_seconds"] = time.time() - started
    if command:
        record["command"] = command
    save_backbone(model.backbone, folder, record)
    log(f"[pretrain] held-out passage retrieval {before:.3f} -> {after:.3f}; saved {folder} "
        f"({record['wall_seconds'] / 60:.1f} min)")
    return record


def stage1_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
