"""Where a result came from: git commit, package versions, machine, and the input files read.

``input_record(config)`` is what ``resolved.yaml`` keeps under ``provenance.inputs``: each data
input that is a file (label set, folds file, pieces map, frames) with its path and content
hash. ``changed_inputs`` compares such a record with the files as they are now, so that a
resumed run, or a rerun of a saved ``resolved.yaml``, says when a file changed in between.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

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


def provenance(device: str = "cpu", threads: int | None = None, inputs: Mapping[str, Mapping] | None = None) -> dict:
    """A dict to save next to every result; ``inputs``: an ``input_record`` of the run's config."""
    # lazy: torch when a record is written; the sweep engine imports this module at start-up
    # for git_commit, before any config is checked
    import torch

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
        record["inputs"] = {key: dict(value) for key, value in inputs.items()}
    return record


def input_record(config) -> dict[str, dict[str, str]]:
    """``{config key: {"path": absolute path, "sha256": content hash}}`` for every data input of
    ``config`` (an ``ExperimentConfig``) that is a file: ``data.labels`` (a labels JSON or a
    taxonomy), ``data.split`` (a folds file), ``data.pieces``, ``data.frames``."""
    # lazy: the data readers load numpy and torch; this module stays light for config errors
    from pianoeval.data.frames import file_identity
    from pianoeval.data.inputs import input_files

    data = config.data
    record = input_files(data.labels, data.split, data.pieces)
    record.update({key: file_identity(path) for key, path in config.input_files().items()})
    return record


def recorded_inputs(where: str | Path) -> list[dict]:
    """The ``provenance.inputs`` blocks recorded in ``where``: a ``resolved.yaml`` (or any run
    config file), or a folder holding them (a run folder, or a sweep's or an ablation's, with
    one per trial). Files without the block, or that cannot be read, give none."""
    where = Path(where)
    files = sorted(where.rglob("resolved.yaml")) if where.is_dir() else [where] if where.is_file() else []
    blocks = []
    for file in files:
        try:
            raw = yaml.safe_load(file.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # a half-written record; the run's own loading reports a bad config
        inputs = ((raw or {}).get("provenance") or {}).get("inputs") if isinstance(raw, dict) else None
        if isinstance(inputs, dict):
            blocks.append(inputs)
    return blocks


def changed_inputs(where: str | Path, configs: Iterable[Any]) -> list[str]:
    """One WARNING line per input file that ``configs`` read now and whose content hash
    differs from the one recorded in ``where`` (see ``recorded_inputs``): the line names the
    file, the hash recorded then and the hash now. Files are matched by absolute path, so an
    input the configs no longer read (an override pointed elsewhere) is not reported.

    Used where a run continues or repeats one that already read its inputs:
    ``train_run(resume_from=...)``, ``runners/train.py --config RUN/resolved.yaml``, and
    ``--resume`` of sweeps and ablations. A changed file is reported, never refused: editing
    a labels file between runs can be deliberate, but it should never go unnoticed."""
    now: dict[str, tuple[str, str]] = {}  # path -> (config key, sha256 now)
    seen_data = set()
    for config in configs:
        data = config.data
        inputs = (data.labels, data.split, data.pieces, tuple(sorted(config.input_files().items())))
        if inputs in seen_data:  # an ablation's trials share their inputs: hash each once
            continue
        seen_data.add(inputs)
        now.update({entry["path"]: (key, entry["sha256"]) for key, entry in input_record(config).items()})
    lines, reported = [], set()
    for block in recorded_inputs(where):
        for key, entry in block.items():
            path, then = (entry or {}).get("path"), (entry or {}).get("sha256")
            if path not in now or now[path][1] == then or (path, then) in reported:
                continue
            reported.add((path, then))
            lines.append(f"WARNING: {key} {path} changed since {where} recorded it: sha256 {_short(then)} then, "
                         f"{_short(now[path][1])} now; this run reads the file as it is now")
    return lines


def _short(digest: str | None) -> str:
    """The first 16 hex digits of a recorded hash (``sha256:`` prefix or not): enough to tell
    two versions apart; the full one is in ``resolved.yaml``."""
    return str(digest).removeprefix("sha256:")[:16]
