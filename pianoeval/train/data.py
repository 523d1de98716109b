"""Data modules by input kind: the trainer asks for the model's kind, never its name.

``DATA_MODULES`` maps a registry entry's ``input_kind`` to its LightningDataModule;
the HAN family reads ``"notes"``, the label-only reference predictors ``"labels"``.
Loaded datasets are cached per process, so a Ray actor that is reused across trials
loads PercePiano once. ``labelled_items`` gives predictors fitted in closed form the
items of a stage as arrays.
"""

from __future__ import annotations

import math
from functools import lru_cache

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from pianoeval.audio.data import AudioDataModule
from pianoeval.data import DEFAULT_LABELS, LabelledItems, NoteDataset, PercePiano, collate_notes, load_percepiano
from pianoeval.data.batch import FramesBatch
from pianoeval.data.frames import LoadedFrames, content_hash, load_frames, match_keys, pad_frames
from pianoeval.data.percepiano import LABEL_FILE
from pianoeval.errors import ConfigError
from pianoeval.experiment import ExperimentConfig
from pianoeval.fusion.data import FusionDataModule
from pianoeval.symbolic.datamodule import DATA_MODULES as SYMBOLIC_DATA_MODULES


@lru_cache(maxsize=4)
def percepiano(labels: str = DEFAULT_LABELS) -> PercePiano:
    """The dataset labelled with ``labels`` (a ``data.labels`` value) and its note
    features, once per process and label set."""
    data = percepiano_labels(labels)
    data.note_features
    return data


@lru_cache(maxsize=4)
def percepiano_labels(labels: str = DEFAULT_LABELS) -> PercePiano:
    """The dataset's segments, labels (the label set ``labels``) and splits, no note
    features, once per process and label set."""
    return load_percepiano(labels=labels)


def _check_tiers(config: ExperimentConfig, supported: tuple[str, ...], what: str) -> None:
    unsupported = [t for t in config.data.tiers if t not in supported]
    if unsupported:
        raise ConfigError(f"data.tiers: {unsupported} are not available for {what} "
                          f"(model {config.model_name}); use {list(supported)}")


def _training_subset(config: ExperimentConfig, size: int) -> list[int] | None:
    """Indices of ``data.max_train_segments`` training items (a seeded shuffle); None = all."""
    limit = config.data.max_train_segments
    if limit is None or limit >= size:
        return None
    return sorted(np.random.default_rng(config.seed).permutation(size)[:limit].tolist())


class GroupedBatchSampler(Sampler[list[int]]):
    """Batches in which performances of the same music come in twos (or ``group_size``s).

    Every epoch, each music group's items are shuffled and cut into chunks of
    ``group_size`` (a leftover single stays a chunk of one, so every item is seen once
    per epoch); chunks are shuffled and packed into batches. Deterministic for
    (seed, epoch).
    """

    def __init__(self, groups: np.ndarray, batch_size: int, group_size: int, seed: int):
        self.groups = np.asarray(groups)
        self.batch_size = batch_size
        self.group_size = min(group_size, batch_size)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng((self.seed, self.epoch))
        chunks = []
        for group in np.unique(self.groups):
            members = rng.permutation(np.nonzero(self.groups == group)[0])
            chunks += [members[i:i + self.group_size].tolist() for i in range(0, len(members), self.group_size)]
        order = rng.permutation(len(chunks))
        batches, current = [], []
        for k in order:
            if len(current) + len(chunks[k]) > self.batch_size:
                batches.append(current)
                current = []
            current = current + chunks[k]
        if current:
            batches.append(current)
        return batches

    def __iter__(self):
        batches = self._batches()
        self.epoch += 1  # Lightning does not call set_epoch on custom batch samplers
        return iter(batches)

    def __len__(self) -> int:
        return len(self._batches())


def training_loader(dataset, groups: np.ndarray, config: ExperimentConfig, collate) -> DataLoader:
    """The training DataLoader of ``data.batch_sampler``: seeded shuffled batches (``random``),
    or batches of same-music groups (``grouped``; ``groups`` is each item's music id)."""
    cfg = config.data
    if cfg.batch_sampler == "grouped":
        sampler = GroupedBatchSampler(groups, cfg.batch_size, cfg.group_size, config.seed)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
    generator = torch.Generator().manual_seed(config.seed)
    return DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, generator=generator, collate_fn=collate)


class NoteDataModule(L.LightningDataModule):
    """PercePiano note features for one (split, fold, feature set)."""

    #: the note features exist for the labelled PercePiano segments only
    SUPPORTED_TIERS = ("T1",)

    def __init__(self, config: ExperimentConfig):
        super().__init__()
        _check_tiers(config, self.SUPPORTED_TIERS, "score-aligned note features")
        self.config = config
        self.train_set = self.val_set = self.test_set = self.stats = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        cfg = self.config.data
        self.train_set, self.val_set, self.test_set, self.stats = percepiano(cfg.labels).note_datasets(
            cfg.split, cfg.fold, cfg.feature_set, cfg.pieces, cfg.allow_piece_leakage)
        keep = _training_subset(self.config, len(self.train_set))
        if keep is not None:
            self.train_set = torch.utils.data.Subset(self.train_set, keep)

    @property
    def input_dim(self) -> int:
        self.setup()
        base = self.train_set.dataset if isinstance(self.train_set, torch.utils.data.Subset) else self.train_set
        return base.input_dim

    def _train_groups(self) -> np.ndarray:
        if isinstance(self.train_set, torch.utils.data.Subset):
            return self.train_set.dataset.group.numpy()[self.train_set.indices]
        return self.train_set.group.numpy()

    def train_dataloader(self) -> DataLoader:
        return training_loader(self.train_set, self._train_groups(), self.config, collate_notes)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.config.data.eval_batch_size, collate_fn=collate_notes)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=self.config.data.eval_batch_size, collate_fn=collate_notes)

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_set) / self.config.data.batch_size)


class LabelDataModule(L.LightningDataModule):
    """Labels and music groups of one (split, fold), no inputs: what the label-only reference
    predictors read (``input_kind: labels``). Its parts are ``LabelledItems``, not DataLoaders."""

    SUPPORTED_TIERS = ("T1",)

    def __init__(self, config: ExperimentConfig):
        super().__init__()
        _check_tiers(config, self.SUPPORTED_TIERS, "the PercePiano labels")
        self.config = config
        self.train_set = self.val_set = self.test_set = None
        self.input_dim = 0

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        cfg = self.config.data
        self.train_set, self.val_set, self.test_set = percepiano_labels(cfg.labels).labelled_items(
            cfg.split, cfg.fold, cfg.pieces, cfg.allow_piece_leakage)
        keep = _training_subset(self.config, len(self.train_set))
        if keep is not None:
            self.train_set = self.train_set.subset(keep)


@lru_cache(maxsize=2)
def _frames(path: str, sha256: str) -> LoadedFrames:
    """A checked frames input, once per process and file content (Ray actors reuse it)."""
    return load_frames(path)


class FramesDataset(torch.utils.data.Dataset):
    """Segments of one part of a fold that have frames: (frames [T, D], segment) by index."""

    def __init__(self, frames: LoadedFrames, ids: list[str], data: PercePiano):
        self.frames, self.ids, self.data = frames, ids, data
        self.group = np.array([data.group_of[data.by_id[sid].score_key] for sid in ids], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        sid = self.ids[index]
        return self.frames.table.get(sid), self.data.by_id[sid], int(self.group[index])


def collate_frames(samples) -> FramesBatch:
    frames, lengths = pad_frames([s[0] for s in samples])
    return FramesBatch(labels=torch.tensor([s[1].labels for s in samples], dtype=torch.float32),
                       label_std=torch.tensor([s[1].label_std for s in samples], dtype=torch.float32),
                       group=torch.tensor([s[2] for s in samples], dtype=torch.int64),
                       segment_ids=[s[1].segment_id for s in samples], frames=frames, lengths=lengths)


class FramesDataModule(L.LightningDataModule):
    """PercePiano labels and splits on the segments of a ``data.frames`` input.

    A segment of the fold without frames is skipped (counted and reported per part)."""

    SUPPORTED_TIERS = ("T1",)

    def __init__(self, config: ExperimentConfig, warn=print):
        super().__init__()
        unsupported = [t for t in config.data.tiers if t not in self.SUPPORTED_TIERS]
        if unsupported:
            raise ConfigError(f"data.tiers: {unsupported} are not available for frames inputs (model "
                              f"{config.model_name}); use {list(self.SUPPORTED_TIERS)}")
        if config.data.frames is None:
            raise ConfigError(f"data.frames: required by model {config.model_name}; give a frames file "
                              f"(python runners/export_frames.py writes one)")
        self.config, self.warn = config, warn
        self.frames: LoadedFrames | None = None
        self.train_set = self.val_set = self.test_set = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        cfg = self.config.data
        data = percepiano_labels(cfg.labels)
        self.frames = _frames(cfg.frames, content_hash(cfg.frames))
        self.warn(self.frames.summary())
        labels_file = cfg.labels if cfg.labels != DEFAULT_LABELS else str(data.root / LABEL_FILE)
        have = match_keys(self.frames, data.by_id, labels_file, self.warn)
        fold = data.fold(cfg.split, cfg.fold, cfg.pieces, cfg.allow_piece_leakage)
        parts = {name: [s for s in getattr(fold, name) if s in have] for name in ("train", "validation", "test")}
        missing = {name: len(getattr(fold, name)) - len(ids) for name, ids in parts.items()}
        if any(missing.values()):
            self.warn("[frames] segments without frames skipped: " + ", ".join(
                f"{name} {n} of {len(getattr(fold, name))}" for name, n in missing.items()))
        train = parts["train"]
        if cfg.max_train_segments is not None and cfg.max_train_segments < len(train):
            keep = np.random.default_rng(self.config.seed).permutation(len(train))[: cfg.max_train_segments]
            parts["train"] = [train[i] for i in sorted(keep)]
        for name in ("train", "validation"):
            if len(parts[name]) < 2:
                raise ConfigError(f"data.frames: {cfg.frames} has frames for {len(parts[name])} {name} segments of "
                                  f"{cfg.split} fold {cfg.fold}; at least 2 are needed")
        self.train_set, self.val_set, self.test_set = (FramesDataset(self.frames, parts[name], data)
                                                       for name in ("train", "validation", "test"))

    @property
    def input_dim(self) -> int:
        self.setup()
        return self.frames.width

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_set) / self.config.data.batch_size)

    def train_dataloader(self) -> DataLoader:
        return training_loader(self.train_set, self.train_set.group, self.config, collate_frames)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.config.data.eval_batch_size, collate_fn=collate_frames)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=self.config.data.eval_batch_size, collate_fn=collate_frames)


#: input_kind -> data module class.
DATA_MODULES: dict[str, type[L.LightningDataModule]] = {"notes": NoteDataModule, **SYMBOLIC_DATA_MODULES,
                                                       "audio": AudioDataModule, "fusion": FusionDataModule,
                                                       "labels": LabelDataModule, "frames": FramesDataModule}


def labelled_items(datamodule: L.LightningDataModule, stage: str) -> LabelledItems:
    """The ``train``, ``val`` or ``test`` items of a set-up data module as arrays, for predictors
    fitted in closed form: a label data module's own items, or a note data module's items with
    each one's normalised note-feature matrix (a training subset stays that subset)."""
    dataset = {"train": datamodule.train_set, "val": datamodule.val_set, "test": datamodule.test_set}[stage]
    if isinstance(dataset, LabelledItems):
        return dataset
    indices = None
    if isinstance(dataset, torch.utils.data.Subset):
        dataset, indices = dataset.dataset, dataset.indices
    if not isinstance(dataset, NoteDataset):
        raise ConfigError(f"model {datamodule.config.model_name}: a closed-form predictor reads labels or note "
                          f"features, not {type(dataset).__name__} items")
    bounds = zip(dataset.offsets[:-1], dataset.offsets[1:])
    items = LabelledItems(segment_ids=tuple(dataset.segment_ids), labels=dataset.labels.numpy().astype(np.float64),
                          label_std=dataset.label_std.numpy().astype(np.float64), group=dataset.group.numpy(),
                          notes=tuple(dataset.features[lo:hi].numpy() for lo, hi in bounds))
    return items if indices is None else items.subset(indices)


def supported_tiers(model_name: str) -> tuple[str, ...]:
    from pianoeval.models.registry import get_model

    return getattr(DATA_MODULES[get_model(model_name).input_kind], "SUPPORTED_TIERS", ("T1",))


def build_datamodule(config: ExperimentConfig) -> L.LightningDataModule:
    from pianoeval.models.registry import get_model

    return DATA_MODULES[get_model(config.model_name).input_kind](config)
