"""Atomic file writes: a crash never leaves a half-written table or config."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Callable

from pianoeval.errors import ConfigError


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temp file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o644)  # mkstemp creates 0600 files
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_parquet(df, path: Path) -> None:
    """Write a pandas DataFrame to parquet atomically."""
    atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def latest_run(folder: str | Path, marker: str) -> str | None:
    """The newest run folder in ``folder`` (run ids sort by time), recognised by its ``marker``
    file; None when there is none, or ``folder`` is not a local folder (e.g. ``s3://...``)."""
    folder = Path(folder)
    runs = sorted(p.name for p in folder.iterdir() if (p / marker).is_file()) if folder.is_dir() else []
    return runs[-1] if runs else None


def run_id_for(folder: str | Path, resume: bool, run_id: str | None, marker: str, what: str) -> str:
    """The run id: the given one; with ``resume``, else the latest run in ``folder``;
    otherwise a new timestamp. A resume with no earlier run is a ConfigError."""
    if resume:
        run_id = run_id or latest_run(folder, marker)
        if run_id is None:
            raise ConfigError(f"--resume: no earlier run of {what} under {folder} (name one with --run-id)")
        return run_id
    return run_id or datetime.now().strftime("%Y%m%d-%H%M%S")
