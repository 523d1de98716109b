"""Where a result came from: git commit, package versions, machine."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from functools import lru_cache
from typing import Mapping

from pianoeval.paths import REPO_ROOT

PACKAGES = ("pianoeval", "torch", "lightning", "ray", "optuna", "numpy", "pandas", "partitura", "parangonar",
            "miditok", "torch-geometric", "peft", "transformers")


@lru_cache(maxsize=1)
def git_commit() -> str:
    """HEAD's sha, with ``+dirty`` when tracked files have uncommitted changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def provenance(device: str = "cpu", threads: int | None = None, inputs: Mapping[str, str] | None = None) -> dict:
    """A dict to save next to every result; ``inputs`` (config key -> input file, e.g.
    ``{"data.frames": path}``) are recorded with their content hash."""
    # lazy: torch (and the frames reader, which loads it) when a record is written; the sweep
    # engine imports this module at start-up for git_commit, before any config is checked
    import torch

    from pianoeval.data.frames import file_identity

    record = {
        "git_commit": git_commit(),
        "versions": versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "torch_threads": threads if threads is not None else torch.get_num_threads(),
        "dtype": "float32",
    }
    if inputs:
        record["inputs"] = {key: file_identity(path) for key, path in inputs.items()}
    return record
