"""Finding and reading run directories: which kind a folder is, and each trial's epoch history.

A run directory is one of:

* a **sweep** (``results/sweeps/<space>/<run-id>/``): ``sweep.yaml`` + ``trials.parquet``;
* an **ablation** (``results/ablations/<name>/<run-id>/``): ``ablation.yaml`` + ``trials.parquet``;
* a **staged elimination** (``results/ablations/staged_elimination/<run-id>/``): ``stages.json``
  and one ablation run directory per stage.

Per-epoch histories come from two files in a trial's folder: Ray Tune's
``progress.csv`` (every trial, pruned ones included; ``epoch`` counts from 1, as does
``training_iteration`` in runs made before ``epoch`` was reported) and the trainer's
``run/history.csv`` (``epoch`` counts from 1 too). Both are returned with one ``epoch``
column counting from 1, the way the plots label it.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd

from pianoeval.config import load_yaml
from pianoeval.errors import ConfigError
from pianoeval.io import read_history  # re-exported: reports read trial histories with it
from pianoeval.paths import REPO_ROOT, results_root
from pianoeval.sweep.rows import present

def run_kind(run_dir: str | Path) -> str:
    """``"sweep"``, ``"ablation"`` or ``"staged"``; a ConfigError naming the fix otherwise."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "a file, not a run folder" if run_dir.exists() else "no such directory"  # e.g. the spec given
        raise ConfigError(f"{run_dir}: {what} (give a run folder such as "
                          "results/sweeps/<space>/<run-id> or results/ablations/<name>/<run-id>)")
    if (run_dir / "stages.json").is_file():
        return "staged"
    for kind, marker in (("sweep", "sweep.yaml"), ("ablation", "ablation.yaml")):
        if (run_dir / marker).is_file():
            if not (run_dir / "trials.parquet").is_file():
                raise ConfigError(f"{run_dir}: trials.parquet: missing, the {kind} has not finished "
                                  f"(finish it with `{resume_hint(run_dir, kind)}`, then report)")
            return kind
    raise ConfigError(f"{run_dir}: not a sweep or ablation run (expected sweep.yaml or ablation.yaml with "
                      "trials.parquet, or stages.json)")


def resume_hint(run_dir: Path, kind: str) -> str:
    """The command that finishes an unfinished run: the spec as the run recorded it (a shipped
    name, or the path it was given) and, when the run is not under the default results
    folder, the ``--storage`` it was written to."""
    run = run_dir.parent if (run_dir.parent / "stages.json").is_file() else run_dir  # a stage's folder
    try:
        recorded = load_yaml(run_dir / ("sweep.yaml" if kind == "sweep" else "ablation.yaml"))
    except ConfigError:
        recorded = {}
    name = run.parent.name
    shipped = REPO_ROOT / ("search_spaces" if kind == "sweep" else "ablations") / f"{name}.yaml"
    source = Path(str(recorded.get("source") or shipped))
    found = [c.resolve() for c in (source, REPO_ROOT / source) if c.is_file()]
    # a shipped spec by its name; a user's spec file by its full path (it works from any folder)
    spec = name if not found or found[0] == shipped.resolve() else str(found[0])
    storage = run.parent.parent.parent
    args = ["--storage", str(storage)] if storage.resolve() != results_root().resolve() else []
    command = (["python", "runners/sweep.py", "--space", spec] if kind == "sweep" and run is run_dir
               else ["python", "runners/ablate.py", spec if run is run_dir else name])
    return shlex.join([*command, *args, "--resume", "--run-id", run.name])


def latest_run(kind: str) -> Path:
    """The newest finished run of ``kind`` (``"sweep"`` or ``"ablation"``) under results/."""
    folder = results_root() / ("sweeps" if kind == "sweep" else "ablations")
    marker = "sweep.yaml" if kind == "sweep" else "ablation.yaml"
    runs = [p.parent for p in folder.glob(f"*/*/{marker}") if (p.parent / "trials.parquet").is_file()]
    if kind != "sweep":
        runs += [p.parent for p in folder.glob("*/*/stages.json")]
    if not runs:
        raise ConfigError(f"{folder}: no finished {kind} run yet (run one, or set run_dir to a run folder)")
    return max(runs, key=lambda p: (p / ("stages.json" if (p / "stages.json").is_file() else
                                         "trials.parquet")).stat().st_mtime)


def find_run(run_dir: str | Path | None, kind: str) -> Path:
    """The run folder a notebook or script was given: ``None`` means the newest finished
    run of ``kind``; a relative path is tried from the working directory, then from the
    repository root (a notebook runs in ``results/notebooks/``)."""
    if run_dir is None or str(run_dir) == "":
        return latest_run(kind)
    path = Path(run_dir).expanduser()
    if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path
    run_kind(path)  # a clear error now rather than a KeyError later
    return path


def trial_folder(trial_dir: str | None, run_dir: Path) -> Path | None:
    """A trial's folder as recorded, or beside ``run_dir`` when the run was moved or copied.

    ``trials.parquet`` records absolute paths; a run synced from a cluster keeps its
    layout but not its location, so the folder's own name is looked up in ``run_dir``."""
    if not present(trial_dir):  # None, or NaN: a missing value of the str column
        return None
    recorded = Path(trial_dir)
    if recorded.is_dir():
        return recorded
    for parent in (run_dir, run_dir / recorded.parent.name):  # eval-only rows point at <trial>/run
        moved = parent / recorded.name
        if moved.is_dir():
            return moved
    return None


