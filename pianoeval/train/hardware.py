"""Where and how a run computes: accelerator, precision and torch's determinism.

``train.accelerator``, ``train.precision`` and ``train.deterministic`` (``TrainConfig``)
become Lightning's Trainer arguments here, at run time, once it is known whether torch
sees a CUDA device; what took effect is read back from torch afterwards and saved in the
run's ``resolved.yaml`` (``compute_provenance``).

* ``accelerator: auto`` is CUDA when torch sees a CUDA device, else the CPU; ``gpu`` /
  ``cuda`` without a visible CUDA device is an error, never a quiet CPU run.
* ``precision``: ``32``, ``bf16-mixed`` (autocast to bfloat16, float32 weights, on CPU
  or CUDA) or ``16-mixed`` (float16 autocast with loss scaling). Lightning would turn
  ``16-mixed`` on a CPU into ``bf16-mixed`` with a warning; here it is an error naming
  the key.
* ``deterministic: true`` is Lightning's ``deterministic=True``:
  ``torch.use_deterministic_algorithms(True)`` (every op that has a deterministic CUDA
  kernel uses it, cuDNN included; an op without one raises) and ``cudnn.benchmark`` off.
  ``warn`` is torch's warn-only mode: the same kernels, but an op without a deterministic
  kernel warns and runs anyway. ``false`` lets CUDA pick its fastest kernels. cuBLAS
  repeats its results only with a fixed workspace, so on CUDA with ``true`` or ``warn``
  the run sets ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` before the first CUDA call (the value
  Lightning sets too), says so and records it.

The reductions the models use, and their CUDA kernels under ``deterministic: true``
(torch's list is in the docstring of ``torch.use_deterministic_algorithms``):

* sums over segments, scattered: ``segments.segment_sum`` (``index_add``), the
  denominators of ``segments.segment_softmax`` (``scatter_add``), the backward of every
  gather by index (``index_put`` with accumulation), PyG's GATConv message sums, softmax
  denominators and self-loop edge means (``scatter_add_``): torch has a deterministic CUDA
  kernel for each and uses it under the flag;
* per-segment maxima and minima (``scatter_reduce`` with ``amax`` / ``amin`` in
  ``segment_softmax``, ``segment_parents`` and PyG's softmax): a maximum does not depend on
  the order in which it is taken, and each is taken on detached scores or integer ids, so
  nothing is differentiated through them; torch neither raises nor warns for them;
* ``bincount`` without weights and ``cumsum`` of integer counts: exact.

So no model needs a second, deterministic formulation. None of the ops torch raises for
(``cumsum`` of floats, ``nll_loss2d``, ``scatter_reduce`` with ``prod``, ``histc``,
weighted ``bincount``, interpolation and padding backwards, ...) is in any registered
model's training step: ``tests/train/test_precision.py`` records every op of every model
family's training step on the CPU and checks that list, so a change that brings one in
fails a CPU test before it fails a GPU sweep.
"""

from __future__ import annotations

import os

import torch

from pianoeval.errors import ConfigError

#: TrainConfig.precision -> Lightning's name for it.
LIGHTNING_PRECISION = {"32": "32-true", "bf16-mixed": "bf16-mixed", "16-mixed": "16-mixed"}
AUTOCAST_DTYPE = {"32": None, "bf16-mixed": "bfloat16", "16-mixed": "float16"}
#: cuBLAS's workspace setting for reproducible results (cuBLAS docs, "Results reproducibility").
CUBLAS_DETERMINISTIC = ":4096:8"


def resolve_device(train) -> str:
    """``"cuda"`` or ``"cpu"`` for ``train.accelerator`` (a ``TrainConfig``), here and now."""
    cuda = torch.cuda.is_available()
    if train.accelerator in ("gpu", "cuda"):
        if not cuda:
            raise ConfigError(f"train.accelerator: {train.accelerator} asked for, but torch {torch.__version__} sees no "
                              f"CUDA device (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); "
                              "use train.accelerator=auto or cpu")
        return "cuda"
    if train.accelerator == "cpu":
        return "cpu"
    return "cuda" if cuda else "cpu"


def trainer_settings(train, device: str, say=None) -> dict:
    """Lightning Trainer arguments (accelerator, devices, precision, deterministic) for
    ``train`` on ``device``; sets cuBLAS's workspace for a deterministic CUDA run (and says
    so through ``say`` when given). ``16-mixed`` off CUDA is a ConfigError."""
    if train.precision == "16-mixed" and device != "cuda":
        raise ConfigError(f"train.precision: 16-mixed needs a CUDA device, and this run is on {device} "
                          f"(train.accelerator {train.accelerator}); Lightning's CPU autocast is bfloat16 only: "
                          "use train.precision=bf16-mixed or 32")
    if device == "cuda" and train.deterministic and os.environ.get("CUBLAS_WORKSPACE_CONFIG") != CUBLAS_DETERMINISTIC:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_DETERMINISTIC
        if say is not None:
            say(f"[train] CUBLAS_WORKSPACE_CONFIG={CUBLAS_DETERMINISTIC}: cuBLAS repeats its results only with a "
                f"fixed workspace (train.deterministic {train.deterministic})")
    return {"accelerator": device, "devices": 1, "precision": LIGHTNING_PRECISION[train.precision],
            "deterministic": train.deterministic}


def deterministic_mode() -> bool | str:
    """torch's determinism setting as it is now: True, ``"warn"`` or False."""
    if not torch.are_deterministic_algorithms_enabled():
        return False
    return "warn" if torch.is_deterministic_algorithms_warn_only_enabled() else True


def compute_provenance(train, device: str) -> dict:
    """What took effect, read back from torch once the Trainer is built: for ``resolved.yaml``."""
    info = {
        "accelerator": device,
        "precision": train.precision,
        "autocast_dtype": AUTOCAST_DTYPE[train.precision],
        "deterministic": deterministic_mode(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }
    if device == "cuda":
        info.update({"cuda_device": torch.cuda.get_device_name(), "cuda_version": torch.version.cuda,
                     "cudnn_version": torch.backends.cudnn.version(),
                     "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")})
    return info
