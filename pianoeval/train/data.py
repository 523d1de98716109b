"""Data modules by input kind: the trainer asks for the model's kind, never its name.

``DATA_MODULES`` maps a registry entry's ``input_kind`` to its LightningDataModule;
the HAN family reads ``"notes"``. Loaded datasets are cached per process, so a Ray
actor that is reused across trials loads PercePiano once.
"""

from __future__ import annotations

import math
from functools import lru_cache

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from pianoeval.audio.data import AudioDataModule
from pianoeval.data import DEFAULT_LABELS, PercePiano, collate_notes, load_percepiano
from pianoeval.experiment import ExperimentConfig
from pianoeval.fusion.data import FusionDataModule
from pianoeval.symbolic.datamodule import DATA_MODULES as SYMBOLIC_DATA_MODULES


@lru_cache(maxsize=4)
def percepiano(labels: str = DEFAULT_LABELS) -> PercePiano:
    """The dataset labelled with ``labels`` (a ``data.labels`` value) and its note
    features, once per process and label set."""
    data = load_percepiano(labels=labels)
    data.note_features
    return data


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


class NoteDataModule(L.LightningDataModule):
    """PercePiano note features for one (split, fold, feature set)."""

    #: the note features exist for the labelled PercePiano segments only
    SUPPORTED_TIERS = ("T1",)

    def __init__(self, config: ExperimentConfig):
        super().__init__()
        unsupported = [t for t in config.data.tiers if t not in self.SUPPORTED_TIERS]
        if unsupported:
            from pianoeval.errors import ConfigError

            raise ConfigError(f"data.tiers: {unsupported} are not available for score-aligned note features "
                              f"(model {config.model_name}); use {list(self.SUPPORTED_TIERS)}")
        self.config = config
        self.train_set = self.val_set = self.test_set = self.stats = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        cfg = self.config.data
        self.train_set, self.val_set, self.test_set, self.stats = percepiano(cfg.labels).note_datasets(
            cfg.split, cfg.fold, cfg.feature_set, cfg.pieces, cfg.allow_piece_leakage)
        if cfg.max_train_segments is not None and cfg.max_train_segments < len(self.train_set):
            keep = np.random.default_rng(self.config.seed).permutation(len(self.train_set))[: cfg.max_train_segments]
            self.train_set = torch.utils.data.Subset(self.train_set, sorted(keep.tolist()))

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
        cfg = self.config.data
        if cfg.batch_sampler == "grouped":
            sampler = GroupedBatchSampler(self._train_groups(), cfg.batch_size, cfg.group_size, self.config.seed)
            return DataLoader(self.train_set, batch_sampler=sampler, collate_fn=collate_notes)
        generator = torch.Generator().manual_seed(self.config.seed)
        return DataLoader(self.train_set, batch_size=cfg.batch_size, shuffle=True, generator=generator,
                          collate_fn=collate_notes)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.config.data.eval_batch_size, collate_fn=collate_notes)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=self.config.data.eval_batch_size, collate_fn=collate_notes)

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_set) / self.config.data.batch_size)


#: input_kind -> data module class.
DATA_MODULES: dict[str, type[L.LightningDataModule]] = {"notes": NoteDataModule, **SYMBOLIC_DATA_MODULES,
                                                       "audio": AudioDataModule, "fusion": FusionDataModule}


def supported_tiers(model_name: str) -> tuple[str, ...]:
    from pianoeval.models.registry import get_model

    return getattr(DATA_MODULES[get_model(model_name).input_kind], "SUPPORTED_TIERS", ("T1",))


def build_datamodule(config: ExperimentConfig) -> L.LightningDataModule:
    from pianoeval.models.registry import get_model

    return DATA_MODULES[get_model(config.model_name).input_kind](config)
