"""A few training steps on one repeated real batch, with a run's own Trainer settings.

``repeated_batch_steps(config, steps)`` builds the config's data module (its real data),
takes the first training batch and fits the run's ``PerformanceModule`` on that batch
``steps`` times, with the Trainer settings ``train_run`` uses (``train.accelerator``,
``train.precision``, ``train.deterministic``; see ``pianoeval.train.hardware``). It
answers whether a model trains on a device, at a precision, under a determinism mode:
the losses must be finite and, on a repeated batch, go down; the same seed must give the
same losses under ``deterministic: true``. ``tests/train/test_precision.py`` and
``benchmarks/gpu_check.py`` use it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import lightning as L
import torch
from torch.utils.data import DataLoader

from pianoeval.experiment import ExperimentConfig
from pianoeval.train import hardware
from pianoeval.train.data import build_datamodule
from pianoeval.train.module import PerformanceModule


@dataclass
class StepCheck:
    losses: list[float]  # training loss of every step, in order
    seconds_per_step: float  # wall time per step, the first (warm-up) step left out
    compute: dict  # what took effect (hardware.compute_provenance)
    peak_memory_mib: float | None = None  # CUDA's peak allocated memory; None on CPU

    @property
    def finite(self) -> bool:
        return all(torch.isfinite(torch.tensor(self.losses)).tolist())


class _StepLog(L.Callback):
    def __init__(self, device: str):
        self.device = device
        self.losses: list[float] = []
        self.started: float | None = None
        self.ended = 0.0

    def _now(self) -> float:
        if self.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 1:
            self.started = self._now()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))
        self.ended = self._now()


def first_train_batch(config: ExperimentConfig):
    """(data module, its first training batch) for ``config``, on the CPU."""
    datamodule = build_datamodule(config)
    datamodule.setup()
    return datamodule, next(iter(datamodule.train_dataloader()))


def repeated_batch_steps(config: ExperimentConfig, steps: int = 4, prepared=None) -> StepCheck:
    """Fit ``config``'s model on one real training batch ``steps`` times (see the module
    docstring). ``prepared``: a ``first_train_batch(config)`` result to reuse."""
    if steps < 2:
        raise ValueError("steps must be >= 2 (the first step is a warm-up)")
    device = hardware.resolve_device(config.train)
    settings = hardware.trainer_settings(config.train, device)
    datamodule, batch = prepared or first_train_batch(config)
    L.seed_everything(config.seed, workers=True, verbose=False)
    module = PerformanceModule(config, datamodule.input_dim, steps_per_epoch=steps)
    log = _StepLog(device)
    trainer = L.Trainer(**settings, max_steps=steps, gradient_clip_val=config.train.grad_clip, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=0, callbacks=[log])
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    loader = DataLoader(range(steps), batch_size=None, collate_fn=lambda _: batch)
    trainer.fit(module, train_dataloaders=loader)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    return StepCheck(log.losses, (log.ended - log.started) / (steps - 1), hardware.compute_provenance(config.train, device),
                     peak)
