"""Self-supervised pre-training of a symbolic encoder (S1, S2, S2H, S3).

    >>> from pianoeval.symbolic.pretrain import PretrainConfig, pretrain
    >>> result = pretrain(PretrainConfig(encoder="s1", steps=500))
    >>> result.weights     # results/pretrained/symbolic/s1/h128-l2-a4-ff4-c256/encoder.pt

The encoder's own objective (S1 masked tokens, S2 link prediction + masked velocity /
timing, S2H per-edge-type link prediction, S3 masked-frame contrastive) runs on the
corpus windows (ASAP by default; PercePiano's performances can be added, unlabelled).
With ``lambda_contrastive > 0`` batches hold pairs of cross-performer windows (same
bars, different performers) and a piece-based InfoNCE on the mean-pooled, projected
encoder frames is added: it pulls performances of the same bars together. With
``lambda_performance > 0`` (S1, S3) the opposite question is asked: every window is
seen as two disjoint crops (views), and each view must find the other view of its own
performance among all views of the batch, which again comes in cross-performer pairs,
so the other performer's views of the same bars are the hardest negatives. Only what
sets one performance apart from another of the same notes (its tempo, loudness,
articulation, pedalling: what PercePiano's listeners rate) answers it. Whole ASAP
pieces are held out for a validation loss (``validation_items`` windows), evaluated
every ``eval_every`` steps.

Optimiser: AdamW, linear warm-up then cosine decay, gradient clipping. Output: the
encoder's plain state dict ``encoder.pt``, ``config.json`` (architecture, input width,
corpus, steps, losses, wall time) and ``history.csv``, in the folder that
``pretrained: true`` looks in (``pianoeval.models.symbolic_common``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from pianoeval.data.percepiano import NUM_LABELS
from pianoeval.data.samplers import GroupedBatchSampler
from pianoeval.errors import ConfigError
from pianoeval.models.losses import infonce_loss
from pianoeval.models.symbolic import ENCODERS
from pianoeval.models.symbolic_common import arch_values, pretrained_dir, save_pretrained
from pianoeval.symbolic.batches import ItemMeta, SymbolicDataset, collate_for
from pianoeval.symbolic.corpus import ASAP_GROUP_OFFSET, PERCEPIANO, music_groups
from pianoeval.symbolic.datamodule import MixedDataset
from pianoeval.symbolic.pretrain_config import PretrainConfig, encoder_config
from pianoeval.symbolic.sources import corpus_items, corpus_store, input_dim_of, percepiano_data

DEFAULT_MASK_PROB = {"s1": 0.15, "s2": 0.15, "s2h": 0.15, "s3": 0.65}


@dataclass
class PretrainResult:
    weights: Path
    meta: dict
    history: list[dict] = field(default_factory=list)


def _split_by_piece(items, validation_items: int, seed: int):
    """(train, validation): whole pieces go to validation until it holds enough windows."""
    pieces = sorted({i.piece for i in items})
    order = np.random.default_rng(seed).permutation(len(pieces))
    held, count = set(), 0
    for k in order:
        if count >= validation_items:
            break
        held.add(pieces[k])
        count += sum(1 for i in items if i.piece == pieces[k])
    return [i for i in items if i.piece not in held], [i for i in items if i.piece in held]


def corpus_datasets(kind: str, config: PretrainConfig, log=print):
    """(train, validation) SymbolicDatasets of the pre-training corpus (labels unused)."""
    items, stores = [], {}
    for source in config.sources:
        store = corpus_store(kind, source, pieces=config.pieces)
        stores[source] = store
        keep = [i for i in corpus_items(source, config.pieces) if i.item_id in store]
        if source == PERCEPIANO and config.percepiano_fold is not None:
            try:
                training = set(percepiano_data().fold(*config.percepiano_fold).train)
            except ConfigError as err:  # the split's check names data.fold; name this setting instead
                raise ConfigError(f"percepiano_fold {config.percepiano_fold[1]}: "
                                  f"{str(err).removeprefix('data.fold: ')}") from None
            keep = [i for i in keep if i.item_id in training]
            log(f"[pretrain] percepiano: the {len(keep)} training segments of the {config.percepiano_fold[0]} split, "
                f"fold {config.percepiano_fold[1]} (its validation and test performances stay unseen)")
        elif source == PERCEPIANO:
            log("[pretrain] percepiano: every segment, validation and test folds' included (unlabelled); "
                "--percepiano-fold SPLIT:FOLD keeps one fold's training segments only")
        items += keep
    train, validation = _split_by_piece(items, config.validation_items, config.seed)
    if config.max_items is not None and config.max_items < len(train):
        keep = np.random.default_rng(config.seed).permutation(len(train))[: config.max_items]
        train = [train[k] for k in sorted(keep)]
    group_of = music_groups(train + validation, offset=ASAP_GROUP_OFFSET)
    zeros = (0.0,) * NUM_LABELS

    def dataset(part):
        metas = [ItemMeta(i.item_id, zeros, zeros, group_of.get(i.music_key, -1), labelled=False) for i in part]
        by_source = {s: [m for m, i in zip(metas, part) if i.source == s] for s in config.sources}
        sets = [SymbolicDataset(stores[s], by_source[s]) for s in config.sources if by_source[s]]
        return sets[0] if len(sets) == 1 else MixedDataset(sets)

    log(f"[pretrain] corpus: {len(train)} training and {len(validation)} validation windows "
        f"({', '.join(config.sources)}), {len(group_of)} cross-performer groups")
    return dataset(train), (dataset(validation) if validation else None)


def _schedule(optimizer, steps: int, warmup_fraction: float):
    warmup = int(warmup_fraction * steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class RandomCrop:
    """Collate wrapper: cut each item's ``field`` (tokens / curves) to a seeded random
    ``length``-long span before collating; other fields and shorter items pass unchanged.

    With ``views=2`` every item becomes two items cut from disjoint parts of it: the
    sequence is split at a random point of its middle third and each part is cropped to
    at most ``length // 2`` (the whole part if ``length`` is None). The batch then holds
    the first views of all items, then their second views, in the same order."""

    def __init__(self, collate, field: str | None, length: int | None, seed: int, views: int = 1):
        if views not in (1, 2):
            raise ValueError(f"views must be 1 or 2, got {views}")
        self.collate, self.field, self.length, self.views = collate, field, length, views
        self.rng = np.random.default_rng(seed)

    def _crop(self, values, length: int | None):
        if length is None or len(values) <= length:
            return values
        start = int(self.rng.integers(0, len(values) - length + 1))
        return values[start:start + length]

    def __call__(self, items: list[dict]):
        if self.field is None:
            return self.collate(items)
        if self.views == 1:
            return self.collate([{**item, self.field: self._crop(item[self.field], self.length)} for item in items])
        half = None if self.length is None else max(1, self.length // 2)
        first, second = [], []
        for item in items:
            values = item[self.field]
            n = len(values)
            if n < 2:
                raise ValueError(f"{item['meta'].item_id}: {n} {self.field}, too short for two views")
            low = max(1, n // 3)
            split = min(int(self.rng.integers(low, max(low, n - n // 3) + 1)), n - 1)
            first.append({**item, self.field: self._crop(values[:split], half)})
            second.append({**item, self.field: self._crop(values[split:], half)})
        return self.collate(first + second)


def _loader(dataset, collate, config: PretrainConfig, epoch: int, seed: int, training: bool = True):
    """Batches of one pass: cross-performer pairs when an InfoNCE term is on (so the
    validation loss sees the batches training sees: in file order, the windows of one
    performance would sit side by side as negatives), else shuffled."""
    if config.lambda_contrastive > 0 or config.lambda_performance > 0:
        sampler = GroupedBatchSampler(dataset.group, config.batch_size, 2, seed)
        sampler.set_epoch(epoch)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    return DataLoader(dataset, batch_size=config.batch_size, shuffle=True, generator=generator,
                      collate_fn=collate, drop_last=training and len(dataset) > config.batch_size)


def _batches(dataset, collate, config: PretrainConfig):
    epoch = 0
    while True:
        yield from _loader(dataset, collate, config, epoch, config.seed)
        epoch += 1


class Pretrainer(nn.Module):
    """The encoder's objective (with S3's optional reconstruction term), plus the optional
    cross-performer and same-performance InfoNCE terms (module docstring)."""

    def __init__(self, objective: nn.Module, config: PretrainConfig):
        super().__init__()
        self.objective = objective
        self.config = config
        width = objective.encoder.output_dim

        def head():
            return nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))

        self.project = head() if config.lambda_contrastive > 0 else None
        self.project_performance = head() if config.lambda_performance > 0 else None

    def forward(self, batch, generator):
        terms, metrics, frames, mask = self.objective(batch, generator)
        weights = {name: self.config.lambda_objective for name in terms}
        if "reconstruct" in terms:
            weights["reconstruct"] = self.config.lambda_reconstruct
        pooled = (frames * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        if self.project is not None:
            grouped = batch.group >= 0
            terms["cross_performer"] = infonce_loss(self.project(pooled[grouped]), batch.group[grouped],
                                                    self.config.contrastive_temperature)
            weights["cross_performer"] = self.config.lambda_contrastive
        if self.project_performance is not None:
            # views come as [first views..., second views...] (RandomCrop with views=2)
            performance = torch.arange(len(pooled), device=pooled.device) % (len(pooled) // 2)
            embedded = self.project_performance(pooled)
            terms["same_performance"] = infonce_loss(embedded, performance, self.config.contrastive_temperature)
            weights["same_performance"] = self.config.lambda_performance
            with torch.no_grad():
                unit = nn.functional.normalize(embedded, dim=1)
                similarity = (unit @ unit.T).fill_diagonal_(float("-inf"))
                metrics["performance_acc"] = (performance[similarity.argmax(1)] == performance).float().mean()
        total = sum(weights[k] * v for k, v in terms.items())
        return total, {**{k: float(v.detach()) for k, v in terms.items()}, **{k: float(v) for k, v in metrics.items()}}


def _evaluate(model: Pretrainer, dataset, collate, config: PretrainConfig) -> dict[str, float]:
    if isinstance(collate, RandomCrop):  # the same crops every time
        collate = RandomCrop(collate.collate, collate.field, collate.length, config.seed + 1, collate.views)
    model.eval()
    generator = torch.Generator().manual_seed(config.seed + 1)  # the same masks every time
    sums, count = {}, 0
    with torch.no_grad():
        for batch in _loader(dataset, collate, config, 0, config.seed + 1, training=False):  # the same batches
            total, logged = model(batch, generator)
            for key, value in {"loss": float(total), **logged}.items():
                sums[key] = sums.get(key, 0.0) + value * len(batch)
            count += len(batch)
    model.train()
    return {f"val_{k}": v / count for k, v in sums.items()}


@dataclass
class PretrainSetup:
    """Everything a pre-training loop needs, built from a PretrainConfig."""

    model: Pretrainer
    train_set: torch.utils.data.Dataset
    val_set: torch.utils.data.Dataset | None
    collate: RandomCrop
    family: Any  # the encoder's model module (symbolic_remi, ...)
    kind: str  # its representation: tokens, graphs or curves
    variant: str
    model_config: Any
    input_dim: int
    mask_prob: float


def setup_pretraining(config: PretrainConfig, log=print) -> PretrainSetup:
    """The objective (around a fresh encoder), the corpus datasets and the collate function."""
    family, kind, _ = ENCODERS[config.encoder]
    entry, model_config = encoder_config(config)
    mask_prob = config.mask_prob or DEFAULT_MASK_PROB[config.encoder]
    torch.manual_seed(config.seed)
    train_set, val_set = corpus_datasets(kind, config, log)
    crop_field = {"tokens": "tokens", "curves": "curves"}.get(kind)
    views = 2 if config.lambda_performance > 0 else 1
    collate = RandomCrop(collate_for(kind, family.EDGE_NAMES), crop_field, config.crop, config.seed, views)
    input_dim = input_dim_of(kind)
    options = ({"cross_distractors": config.cross_distractors, "reconstruct": config.lambda_reconstruct > 0}
               if config.encoder == "s3" else {})
    model = Pretrainer(family.make_objective(model_config, input_dim, mask_prob, **options), config)
    return PretrainSetup(model, train_set, val_set, collate, family, kind, entry.name, model_config, input_dim, mask_prob)


def pretrain(config: PretrainConfig, out_dir: Path | None = None, progress: bool = True, log=print) -> PretrainResult:
    """Pre-train ``config.encoder``; see the module docstring."""
    setup = setup_pretraining(config, log)
    model, train_set, val_set, collate = setup.model, setup.train_set, setup.val_set, setup.collate
    family, model_config, input_dim, mask_prob = setup.family, setup.model_config, setup.input_dim, setup.mask_prob
    kind = setup.kind
    params = sum(p.numel() for p in model.objective.encoder.parameters())
    log(f"[pretrain] {config.encoder} ({setup.variant}, {params:,} encoder parameters): {config.steps} steps, "
        f"batch {config.batch_size}, lr {config.lr:g}, mask {mask_prob:g}, contrastive {config.lambda_contrastive:g}, "
        f"same-performance {config.lambda_performance:g}"
        + (f", reconstruction {config.lambda_reconstruct:g}" if config.lambda_reconstruct else ""))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = _schedule(optimizer, config.steps, config.warmup_fraction)
    generator = torch.Generator().manual_seed(config.seed)
    history, recent, step_seconds = [], [], 0.0
    started = time.time()
    bar = tqdm(total=config.steps, desc=f"pretrain {config.encoder}", disable=not progress, leave=False)
    batches = _batches(train_set, collate, config)
    model.train()
    for step in range(1, config.steps + 1):
        batch = next(batches)
        tick = time.time()
        total, logged = model(batch, generator)
        if not torch.isfinite(total):
            raise FloatingPointError(f"pre-training loss became {float(total)} at step {step}; lower --set lr")
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        step_seconds += time.time() - tick
        recent.append({"loss": float(total.detach()), **logged})
        bar.update(1)
        bar.set_postfix(loss=f"{recent[-1]['loss']:.3f}")
        if step % config.eval_every == 0 or step == config.steps:
            row = {"step": step, **{k: float(np.mean([r[k] for r in recent if k in r])) for k in recent[-1]}}
            if val_set is not None:
                row.update(_evaluate(model, val_set, collate, config))
            row["seconds"] = time.time() - started
            history.append(row)
            recent = []
            log(f"[pretrain] step {step}: " + "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("step", "seconds")))
    bar.close()
    folder = Path(out_dir) if out_dir is not None else pretrained_dir(config.encoder, model_config, family.ARCH_FIELDS)
    last = history[-1]
    meta = {"encoder": config.encoder, "variant": setup.variant, "architecture": arch_values(model_config, family.ARCH_FIELDS),
            "model_config": model_config.model_dump(mode="json"), "input_dim": input_dim, "representation": kind,
            "pretrain": config.model_dump(mode="json"), "mask_prob": mask_prob, "corpus_items": len(train_set),
            "validation_items": len(val_set) if val_set is not None else 0, "steps": config.steps,
            "final_loss": last["loss"], "final_val_loss": last.get("val_loss"), "wall_seconds": time.time() - started,
            "steps_per_second": config.steps / max(step_seconds, 1e-9), "encoder_parameters": params,
            "torch_threads": torch.get_num_threads()}
    weights = save_pretrained(folder, model.objective.encoder, meta)
    pd.DataFrame(history).to_csv(folder / "history.csv", index=False)
    log(f"[pretrain] wrote {weights} ({meta['wall_seconds'] / 60:.1f} min, {meta['steps_per_second']:.2f} steps/s)")
    return PretrainResult(weights, meta, history)

