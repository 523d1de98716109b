"""The data modules of the input kinds whose track is a model family of this package:
``notes`` (the HAN family and ``ridge_probe``: score-aligned note features), ``labels`` (the
reference means: labels and music groups only) and ``frames`` (``frames_probe``,
``frames_transformer``: a ``data.frames`` input). The audio, symbolic and fusion tracks keep
theirs in their own packages; every model entry names its data module (``pianoeval.models.registry``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from pianoeval.data import DEFAULT_LABELS, PercePiano, collate_notes
from pianoeval.data.batch import FramesBatch
from pianoeval.data.dataset import percepiano, percepiano_labels
from pianoeval.data.frames import LoadedFrames, content_hash, load_frames, match_keys, pad_frames
from pianoeval.data.percepiano import LABEL_FILE
from pianoeval.data.samplers import check_tiers, training_loader, training_subset
from pianoeval.errors import ConfigError
from pianoeval.experiment import ExperimentConfig


class NoteDataModule(L.LightningDataModule):
    """PercePiano note features for one (split, fold, feature set)."""

    #: the note features exist for the labelled PercePiano segments only
    SUPPORTED_TIERS = ("T1",)

    def __init__(self, config: ExperimentConfig):
        super().__init__()
        check_tiers(config, self.SUPPORTED_TIERS, "score-aligned note features")
        self.config = config
        self.train_set = self.val_set = self.test_set = self.stats = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        cfg = self.config.data
        self.train_set, self.val_set, self.test_set, self.stats = percepiano(cfg.labels).note_datasets(
            cfg.split, cfg.fold, cfg.feature_set, cfg.pieces, cfg.allow_piece_leakage)
        keep = training_subset(self.config, len(self.train_set))
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
        check_tiers(config, self.SUPPORTED_TIERS, "the PercePiano labels")
        self.config = config
        self.train_set = self.val_set = self.test_set = None
        self.input_dim = 0

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        cfg = self.config.data
        self.train_set, self.val_set, self.test_set = percepiano_labels(cfg.labels).labelled_items(
            cfg.split, cfg.fold, cfg.pieces, cfg.allow_piece_leakage)
        keep = training_subset(self.config, len(self.train_set))
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
        for name in ("train", "validation", "test"):  # the best checkpoint is evaluated on test after training
            if len(parts[name]) < 2 and (name != "test" or fold.test):  # a folds file may have no test list
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
