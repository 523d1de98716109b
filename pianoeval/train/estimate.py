"""Cost estimates for dry runs: time one real training step and one evaluation batch."""

from __future__ import annotations

import math
import time

import torch

from pianoeval.experiment import ExperimentConfig
from pianoeval.train.data import build_datamodule
from pianoeval.train.module import PerformanceModule


def epoch_seconds(config: ExperimentConfig, threads: int = 1) -> float:
    """Seconds one epoch of ``config`` takes here: one timed training step on a real
    batch times the steps per epoch, plus one timed evaluation batch times the
    validation batches. A rough guide (batches differ in length), not a promise."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        datamodule = build_datamodule(config)
        datamodule.setup()
        module = PerformanceModule(config, datamodule.input_dim)
        optimizer = torch.optim.Adam(module.parameters(), lr=config.train.lr)
        batches = iter(datamodule.train_dataloader())
        for _ in range(2):  # the first step pays one-off costs; time the second
            batch = next(batches)
            started = time.perf_counter()
            loss, _ = module._loss(module(batch), batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            train_step = time.perf_counter() - started
        module.eval()
        val_batch = next(iter(datamodule.val_dataloader()))
        started = time.perf_counter()
        with torch.no_grad():
            module(val_batch)
        eval_step = time.perf_counter() - started
        val_batches = math.ceil(len(datamodule.val_set) / config.data.eval_batch_size)
        return datamodule.steps_per_epoch() * train_step + val_batches * eval_step
    finally:
        torch.set_num_threads(previous)
