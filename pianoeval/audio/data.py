"""Audio batches for training: tiers T1 (labelled PercePiano renders), T3 (ASAP
cross-performer windows) and T4 (augmented views), from cached features.

``AudioDataModule`` (the audio models' data module) reads the tiers, split and batching
from ``data:`` (``data.tiers``), its audio options from the model config's ``audio:``
block (``AudioDataConfig``; ``model.audio.*`` in a sweep) and the loss weights from
``train:``:

* T1: every PercePiano segment of the fold, rendered with each soundfont of
  ``soundfonts``; each epoch draws one soundfont per item (seeded). ``group`` = the
  score-segment id, ``label_mask`` True.
* T3 (``"T3" in data.tiers``): ``t3_passages_per_batch`` ASAP passages, two
  performers each, appended to every training batch; ``group`` = passage id (>= 1e6,
  disjoint from PercePiano's), ``label_mask`` False, so they enter only the contrastive
  term.
* T4 (``"T4" in data.tiers``; needed by ``train.lambda_invariance > 0``): every training
  item also comes as one of ``augmented_views`` augmented variants, in ``batch.augmented``.
* Validation and test use ``eval_soundfont``; with ``robustness_eval`` each batch carries
  a fixed augmented view (``augmented``), from which the trainer derives
  ``val/robust_pairwise_drop`` and ``val/robust_pearson``.

Frames are the backbone's hidden state at the encoder's first adapted layer (from the
hidden-state cache), or log-mel frames when that layer is 0 / the cache is off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pianoeval.audio.asap import asap_windows
from pianoeval.audio.features import AudioItem, Frontend, build_mels
from pianoeval.audio.hidden_cache import build_hidden
from pianoeval.audio.source import source_of
from pianoeval.data.batch import TIER_CROSS_PERFORMER, TIER_LABELLED, BatchBase
from pianoeval.data.dataset import load_percepiano
from pianoeval.errors import ConfigError
from pianoeval.models.configs.audio import AudioDataConfig


@dataclass
class AudioBatch(BatchBase):
    """Frames of audio: log-mel (``level`` 0, width n_mels) or a backbone hidden state
    (``level`` k: the output of layer k, width = the backbone's). Zero-padded."""

    frames: torch.Tensor  # [B, T, C] float32
    lengths: torch.Tensor  # [B] int64, real frames per item (>= 1)
    level: int = field(default=0, kw_only=True)

    @property
    def mask(self) -> torch.Tensor:
        steps = torch.arange(self.frames.shape[1], device=self.lengths.device)
        return steps.unsqueeze(0) < self.lengths.unsqueeze(1)


@dataclass(frozen=True)
class Entry:
    item_id: str
    labels: np.ndarray  # [L]
    label_std: np.ndarray  # [L]
    group: int
    tier: int
    labelled: bool


FrameKey = tuple[str, str, int]  # (item id, soundfont, variant)


class AudioDataset(Dataset):
    """Index = (entry index, soundfont, augmented variant or 0) -> (entry, clean, augmented)."""

    def __init__(self, entries: list[Entry], frames: dict[FrameKey, np.ndarray], level: int):
        self.entries = entries
        self.frames = frames
        self.level = level

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: tuple[int, str, int]):
        index, soundfont, variant = key
        entry = self.entries[index]
        clean = self.frames[(entry.item_id, soundfont, 0)]
        augmented = self.frames[(entry.item_id, soundfont, variant)] if variant else None
        return entry, clean, augmented


def stack_frames(arrays: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Variable-length frames [T_i, C] -> zero-padded [B, T, C] float32 and lengths [B]."""
    lengths = torch.tensor([a.shape[0] for a in arrays])
    out = torch.zeros(len(arrays), int(lengths.max()), arrays[0].shape[1])
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = torch.from_numpy(a.astype(np.float32))
    return out, lengths


def make_collate(level: int):
    def collate(samples) -> AudioBatch:
        entries = [s[0] for s in samples]
        common = dict(
            labels=torch.from_numpy(np.stack([e.labels for e in entries])).float(),
            label_std=torch.from_numpy(np.stack([e.label_std for e in entries])).float(),
            group=torch.tensor([e.group for e in entries], dtype=torch.int64),
            segment_ids=[e.item_id for e in entries],
            label_mask=torch.tensor([e.labelled for e in entries]),
            tier=torch.tensor([e.tier for e in entries], dtype=torch.int64),
            level=level,
        )
        frames, lengths = stack_frames([s[1] for s in samples])
        augmented = None
        if all(s[2] is not None for s in samples):
            aug_frames, aug_lengths = stack_frames([s[2] for s in samples])
            augmented = AudioBatch(**common, frames=aug_frames, lengths=aug_lengths)
        return AudioBatch(**common, frames=frames, lengths=lengths, augmented=augmented)

    return collate


class AudioTrainSampler(Sampler[list[tuple[int, str, int]]]):
    """Training batches of (index, soundfont, variant), deterministic for (seed, epoch).

    T1 items are shuffled (``grouped``: each music group's items are cut into chunks of
    ``group_size`` and the shuffled chunks are laid end to end, so same-music pairs share
    a batch), then cut into exactly ``ceil(N / batch_size)`` batches: Lightning fixes the
    number of batches per epoch once, so it must not vary. T3 passages (two performers
    each) are appended to every batch; soundfont and augmented variant are drawn per item."""

    def __init__(self, t1_groups: np.ndarray, t3_passages: list[list[int]], batch_size: int, grouped: bool,
                 group_size: int, seed: int, soundfonts: tuple[str, ...], variants: int, t3_per_batch: int):
        self.t1_groups = np.asarray(t1_groups)
        self.t3_passages = [p for p in t3_passages if len(p) >= 2]
        self.batch_size, self.grouped, self.group_size = batch_size, grouped, min(group_size, batch_size)
        self.seed, self.soundfonts, self.variants, self.t3_per_batch = seed, soundfonts, variants, t3_per_batch
        self.epoch = 0

    def _t1_order(self, rng: np.random.Generator) -> list[int]:
        if not self.grouped:
            return rng.permutation(len(self.t1_groups)).tolist()
        chunks = []
        for group in np.unique(self.t1_groups):
            members = rng.permutation(np.nonzero(self.t1_groups == group)[0])
            chunks += [members[i:i + self.group_size].tolist() for i in range(0, len(members), self.group_size)]
        return [i for k in rng.permutation(len(chunks)) for i in chunks[k]]

    def __iter__(self):
        rng = np.random.default_rng((self.seed, self.epoch))
        order = self._t1_order(rng)
        batches = []
        for start in range(0, len(order), self.batch_size):
            indices = order[start:start + self.batch_size]
            if self.t3_passages:
                for p in rng.choice(len(self.t3_passages), size=min(self.t3_per_batch, len(self.t3_passages)),
                                    replace=False):
                    indices += rng.choice(self.t3_passages[p], size=2, replace=False).tolist()
            batches.append([(int(i), str(rng.choice(self.soundfonts)),
                             int(rng.integers(1, self.variants + 1)) if self.variants else 0) for i in indices])
        self.epoch += 1  # Lightning does not call set_epoch on custom batch samplers
        return iter(batches)

    def __len__(self) -> int:
        return math.ceil(len(self.t1_groups) / self.batch_size)


@lru_cache(maxsize=4)
def _percepiano(labels: str):
    return load_percepiano(warn=lambda msg: None, labels=labels)


def _subset(ids: tuple[str, ...], limit: int | None, seed: int, group_of=None) -> list[str]:
    """The first ``limit`` ids of a seeded shuffle; with ``group_of`` whole music groups are
    kept (so a small evaluation subset still has same-music pairs to rank)."""
    if limit is None or limit >= len(ids):
        return list(ids)
    rng = np.random.default_rng(seed)
    if group_of is None:
        keep = rng.permutation(len(ids))[:limit]
        return [ids[i] for i in sorted(keep.tolist())]
    groups: dict[int, list[str]] = {}
    for sid in ids:
        groups.setdefault(group_of(sid), []).append(sid)
    chosen: list[str] = []
    for g in rng.permutation(sorted(groups)):
        if len(chosen) >= limit:
            break
        chosen += groups[int(g)]
    return sorted(chosen)


class AudioDataModule(L.LightningDataModule):
    """PercePiano audio (+ ASAP windows) for one model config; see the module docstring."""

    SUPPORTED_TIERS = ("T1", "T3", "T4")  # T2 (competition placements) has no data here

    def __init__(self, config, progress: bool | None = None, warn=print):
        super().__init__()
        tiers, train = set(config.data.tiers), config.train
        unsupported = sorted(tiers - set(self.SUPPORTED_TIERS))
        if unsupported:
            raise ConfigError(f"data.tiers: {unsupported} are not available for audio (model {config.model_name}); "
                              f"use some of {list(self.SUPPORTED_TIERS)}")
        if "T1" not in tiers:
            raise ConfigError("data.tiers: the audio models train on labelled PercePiano audio: include T1")
        if train.lambda_invariance > 0 and "T4" not in tiers:
            raise ConfigError(f"train.lambda_invariance: {train.lambda_invariance} needs augmented views: add T4 to "
                              f"data.tiers (or set it to 0)")
        self.config = config
        self.spec_model = config.model_spec()
        self.audio: AudioDataConfig = self.spec_model.audio
        self.progress, self.warn = progress, warn
        self.train_set = self.val_set = self.test_set = None

    # -- assembling ------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        cfg, audio, train = self.config.data, self.audio, self.config.train
        data = _percepiano(cfg.labels)
        fold = data.fold(cfg.split, cfg.fold, cfg.pieces, cfg.allow_piece_leakage)
        train_ids = _subset(fold.train, cfg.max_train_segments, self.config.seed)
        group_of = lambda sid: data.group_of[data.by_id[sid].score_key]  # noqa: E731
        val_ids = _subset(fold.validation, audio.max_eval_segments, self.config.seed, group_of)
        test_ids = _subset(fold.test, audio.max_eval_segments, self.config.seed, group_of)
        source = source_of(self.spec_model)
        spec = source.spec()
        self.layer = self.spec_model.cache_layer(spec)
        frontend = Frontend.of(spec)
        tiers = set(cfg.tiers)
        if "T4" in tiers and train.lambda_invariance == 0:
            self.warn("[audio] data.tiers has T4 but train.lambda_invariance is 0: augmented views enter no loss")
        variants = audio.augmented_views if "T4" in tiers else 0
        eval_variants = 1 if audio.robustness_eval else 0

        def items(ids):
            return [AudioItem(sid, data.by_id[sid].performance_midi(data.root)) for sid in ids]

        common = dict(frontend=frontend, augment=audio.augment, max_seconds=audio.max_seconds,
                      workers=audio.workers, progress=self.progress, warn=self.warn)
        train_mels = build_mels(items(train_ids), list(audio.soundfonts), variants, label="PercePiano train", **common)
        eval_mels = build_mels(items(val_ids + test_ids), [audio.eval_soundfont], eval_variants,
                               label="PercePiano val+test", **common)
        windows = []
        if "T3" in tiers:
            if train.lambda_contrastive == 0:
                self.warn("[audio] data.tiers has T3 but train.lambda_contrastive is 0: T3 windows enter no loss")
            windows = asap_windows(audio.asap_window_seconds, audio.asap_windows_per_performance,
                                   audio.asap_max_pieces, warn=self.warn)
            t3_mels = build_mels([w.item for w in windows], list(audio.soundfonts), variants,
                                 label="ASAP windows", **{**common, "max_seconds": None})
            train_mels.paths.update(t3_mels.paths)

        def frames(store, keys, label):
            keys = [k for k in keys if k in store]
            if self.layer == 0:
                return {k: store.load(*k).T for k in keys}
            return build_hidden(source, self.layer, store, keys, progress=self.progress, warn=self.warn, label=label)

        def keys_for(ids, soundfonts, n_variants):
            return [(i, sf, v) for i in ids for sf in soundfonts for v in range(n_variants + 1)]

        train_keys = keys_for(train_ids + [w.item.item_id for w in windows], audio.soundfonts, variants)
        train_frames = frames(train_mels, train_keys, "train")
        eval_frames = frames(eval_mels, keys_for(val_ids + test_ids, [audio.eval_soundfont], eval_variants), "val+test")

        def complete(item_id, soundfonts, n_variants, table):
            return all((item_id, sf, v) in table for sf in soundfonts for v in range(n_variants + 1))

        def t1_entries(ids, soundfonts, n_variants, table):
            kept = [sid for sid in ids if complete(sid, soundfonts, n_variants, table)]
            if len(kept) < len(ids):
                self.warn(f"[audio] {len(ids) - len(kept)} segments left out (their audio was skipped, see above)")
            return [Entry(sid, np.asarray(data.by_id[sid].labels, np.float32),
                          np.asarray(data.by_id[sid].label_std, np.float32),
                          data.group_of[data.by_id[sid].score_key], TIER_LABELLED, True) for sid in kept]

        train_entries = t1_entries(train_ids, audio.soundfonts, variants, train_frames)
        n_t1 = len(train_entries)
        passages: dict[int, list[int]] = {}
        blank = np.zeros(len(train_entries[0].labels), np.float32)
        for w in windows:
            if complete(w.item.item_id, audio.soundfonts, variants, train_frames):
                passages.setdefault(w.group, []).append(len(train_entries))
                train_entries.append(Entry(w.item.item_id, blank, blank, w.group, TIER_CROSS_PERFORMER, False))
        self.train_set = AudioDataset(train_entries, train_frames, self.layer)
        self.val_set = AudioDataset(t1_entries(val_ids, [audio.eval_soundfont], eval_variants, eval_frames),
                                    eval_frames, self.layer)
        self.test_set = AudioDataset(t1_entries(test_ids, [audio.eval_soundfont], eval_variants, eval_frames),
                                     eval_frames, self.layer)
        self.sampler = AudioTrainSampler(
            np.array([e.group for e in train_entries[:n_t1]]), list(passages.values()), cfg.batch_size,
            cfg.batch_sampler == "grouped", cfg.group_size, self.config.seed, audio.soundfonts, variants,
            audio.t3_passages_per_batch)
        self.eval_variants = eval_variants
        self._input_dim = next(iter(train_frames.values())).shape[1]
        self.warn(f"[audio] data: {n_t1} T1 train segments x {len(audio.soundfonts)} soundfonts, "
                  f"{len(train_entries) - n_t1} T3 windows, {variants} augmented views; val {len(self.val_set)}, "
                  f"test {len(self.test_set)} ({audio.eval_soundfont}); frames = "
                  f"{'log-mel' if self.layer == 0 else f'hidden state {self.layer}'} ({self._input_dim} wide)")

    @property
    def input_dim(self) -> int:
        self.setup()
        return self._input_dim

    def steps_per_epoch(self) -> int:
        return len(self.sampler)

    # -- loaders ---------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_sampler=self.sampler, collate_fn=make_collate(self.layer))

    def _eval_loader(self, dataset: AudioDataset) -> DataLoader:
        size = self.config.data.eval_batch_size
        keys = [(i, self.audio.eval_soundfont, self.eval_variants) for i in range(len(dataset))]
        batches = [keys[i:i + size] for i in range(0, len(keys), size)]
        return DataLoader(dataset, batch_sampler=batches, collate_fn=make_collate(self.layer))

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set)
