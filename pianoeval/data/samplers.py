"""How training items are drawn: seeded shuffles, same-music batches, small training subsets.

Shared by every track's data module (notes, frames, symbolic, audio pre-training), so a
``data.batch_sampler`` or ``data.max_train_segments`` means the same thing everywhere.
The ``config`` these helpers take is a run config (``pianoeval.experiment.ExperimentConfig``):
they read its ``data`` block and ``seed``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from pianoeval.errors import ConfigError


def check_tiers(config, supported: tuple[str, ...], what: str) -> None:
    """A ConfigError when ``data.tiers`` asks for a tier the data module ``what`` does not have."""
    unsupported = [t for t in config.data.tiers if t not in supported]
    if unsupported:
        raise ConfigError(f"data.tiers: {unsupported} are not available for {what} "
                          f"(model {config.model_name}); use {list(supported)}")


def training_subset(config, size: int) -> list[int] | None:
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


def training_loader(dataset, groups: np.ndarray, config, collate) -> DataLoader:
    """The training DataLoader of ``data.batch_sampler``: seeded shuffled batches (``random``),
    or batches of same-music groups (``grouped``; ``groups`` is each item's music id)."""
    cfg = config.data
    if cfg.batch_sampler == "grouped":
        sampler = GroupedBatchSampler(groups, cfg.batch_size, cfg.group_size, config.seed)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
    generator = torch.Generator().manual_seed(config.seed)
    return DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, generator=generator, collate_fn=collate)
