"""Atomic file writes: a crash never leaves a half-written table or config."""

from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Callable

from pianoeval.errors import ConfigError, DataError


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


_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def is_safe_name(name: object) -> bool:
    """One file name of letters, digits, '.', '_', '-', not starting with '.': a user-given name
    that becomes part of a path can then never climb out of, or nest inside, its folder."""
    return isinstance(name, str) and len(name) <= 128 and _SAFE_NAME.fullmatch(name) is not None


def check_run_id(run_id: str) -> str:
    """A run id is one safe file name (``is_safe_name``); else a one-line ConfigError."""
    if not is_safe_name(run_id):
        raise ConfigError(f"--run-id {run_id!r}: a run id is one name of letters, digits, '.', '_' and '-', "
                          "not starting with '.' (e.g. --run-id lr-sweep-2)")
    return run_id


def existing_runs(folder: str | Path, marker: str) -> list[str]:
    """Run folders in ``folder`` recognised by their ``marker`` file, oldest first (run ids
    sort by time); empty when there is none, or ``folder`` is not a local folder (``s3://``)."""
    folder = Path(folder)
    return sorted(p.name for p in folder.iterdir() if (p / marker).is_file()) if folder.is_dir() else []


def latest_run(folder: str | Path, marker: str) -> str | None:
    """The newest run folder in ``folder`` (see ``existing_runs``), or None."""
    runs = existing_runs(folder, marker)
    return runs[-1] if runs else None


def _listing(runs: list[str]) -> str:
    shown = ", ".join(runs[-8:])
    return f"existing runs: {'..., ' if len(runs) > 8 else ''}{shown}" if runs else "there are no runs yet"


def run_id_for(folder: str | Path, resume: bool, run_id: str | None, marker: str, what: str,
               remote: bool = False) -> str:
    """The run id of a sweep or ablation run in ``folder``.

    * with ``resume``: the given run (it must exist) or the latest one;
    * without: the given id (it must not exist: nothing is overwritten) or a new timestamp.

    Every problem is a one-line ConfigError that lists the existing runs. ``remote``: the
    folder is a URI (``s3://``) that cannot be listed here; the checks are left to Ray."""
    if run_id is not None:
        check_run_id(run_id)
    if remote:
        if resume and run_id is None:
            raise ConfigError(f"--resume: name the run of {what} to continue with --run-id (remote storage "
                              "is not listed)")
        return run_id or datetime.now().strftime("%Y%m%d-%H%M%S")
    runs = existing_runs(folder, marker)
    if resume:
        if run_id is None:
            if not runs:
                raise ConfigError(f"--resume: no earlier run of {what} under {folder} (start one without --resume)")
            return runs[-1]
        if run_id not in runs:
            raise ConfigError(f"--resume --run-id {run_id}: no run {run_id!r} of {what} under {folder} "
                              f"({_listing(runs)})")
        return run_id
    if run_id is None:
        run_id = datetime.now().strftime("%Y%m%d-%H%M%S")
        while (Path(folder) / run_id).exists():  # two runs started in the same second
            run_id = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        return run_id
    if (Path(folder) / run_id).exists():
        raise ConfigError(f"--run-id {run_id}: run {run_id!r} of {what} exists under {folder}: add --resume to "
                          "continue it, or choose another --run-id")
    return run_id


def check_output_root(path: str | Path, what: str) -> Path:
    """A folder results may be written under: it exists as a folder or can be created
    (its nearest existing parent is a writable folder). One-line ConfigError otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path}: is a file, not a folder (give a folder for results)")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{what} {path}: {parent} is a file, not a folder (give a folder for results)")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"{what} {path}: {parent} is not writable (give a folder you can write to)")
    return path


def check_output_file(path: str | Path, what: str, suffix: str) -> Path:
    """A file a runner writes, checked before any work: not a folder, named ``*<suffix>`` (so a
    slip never replaces a run's metrics.json or config), in a folder that exists or can be created."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path}: is a folder; give the {suffix} file to write, e.g. {path / ('out' + suffix)}")
    if path.suffix != suffix:
        raise ConfigError(f"{what} {path}: the file written is {suffix}; give a name ending in {suffix}")
    check_output_root(path.parent, what)
    return path


#: What to do about a results table that cannot be read: the run writes it again.
RESUME_FIX = "continue that run with --resume, which writes the table again from the trial folders"


def read_table(path: str | Path, fix: str = "", columns: tuple[str, ...] = ()) -> "pandas.DataFrame":
    """``pandas.read_parquet`` whose failure (a truncated or foreign file) is one line
    naming the file and ``fix`` instead of a pyarrow traceback; with ``columns``, a table
    that has no rows or lacks one of them (emptied, or another table) is such a line too."""
    import pyarrow.parquet as pq  # lazy: io is imported by every config path; tables are read after it

    path = Path(path)
    try:
        # one file, read on the calling thread: in a driver where Ray Tune had run, pandas'
        # threaded dataset read was seen to wait forever on arrow's thread pool; tables are small
        table = pq.ParquetFile(path).read(use_threads=False, use_pandas_metadata=True).to_pandas(use_threads=False)
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing{'; ' + fix if fix else ''}") from None
    except Exception as err:  # pyarrow's ArrowInvalid, OSError, ...: the file is not a readable table
        reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{path}: not a readable parquet table ({reason}){'; ' + fix if fix else ''}") from None
    missing = [c for c in columns if c not in table.columns]
    if columns and (missing or table.empty):
        problem = f"lacks the column {missing[0]}" if missing else "holds no rows"
        raise ConfigError(f"{path}: {problem}{'; ' + fix if fix else ''}")
    return table


def read_user_text(path: str | Path) -> str:
    """A user's input file as text: UTF-8, else one line naming the file (a DataError)."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise DataError(f"{path}: not UTF-8 text (byte {err.start}, line {line}); save the file as UTF-8") from None


class _DuplicateJsonKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object's pairs as a dict; a key given twice is an error (``json`` keeps the last)."""
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateJsonKey(key)
        seen[key] = value
    return seen


def read_user_json(path: str | Path):
    """A user's JSON input file (labels, folds, pieces): UTF-8 and valid, else one line naming it.
    A key that appears twice in one object is an error: the ``json`` module would silently keep
    the last value (a label, a fold side), which is rarely what the file's writer meant."""
    try:
        return json.loads(read_user_text(path), object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    except _DuplicateJsonKey as err:
        raise DataError(f"{path}: key {err.args[0]!r} appears twice in one JSON object; keep one") from None


def read_history(trial_dir: Path | None, prefer: str = "history") -> tuple["pd.DataFrame | None", str]:
    """One trial's per-epoch numeric scalars with an ``epoch`` column from 1, and which file they came from.

    ``prefer="history"`` reads ``run/history.csv`` first (the trainer's own record), then
    ``progress.csv``; ``prefer="progress"`` the other way round. Returns ``(None, why)``
    when neither file is there or readable. A resumed trial repeats the epochs after its
    last checkpoint in ``progress.csv``; the last report of each epoch is kept."""
    import pandas as pd  # lazy: io is imported by every config path; histories are read after it

    if trial_dir is None:
        return None, "no trial folder recorded"
    base = trial_dir.parent if trial_dir.name == "run" else trial_dir
    files = {"history": base / "run" / "history.csv", "progress": base / "progress.csv"}
    order = ["history", "progress"] if prefer == "history" else ["progress", "history"]
    tried = []
    for name in order:
        path = files[name]
        if not path.is_file():
            tried.append(f"{path.name}: missing")
            continue
        try:
            frame = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            tried.append(f"{path}: unreadable ({type(err).__name__})")
            continue
        if name == "history":
            epoch = frame["epoch"] if "epoch" in frame else None
        else:
            # Tune counts reports, not epochs: an ablation trial's extra final report (final_eval = 1,
            # the best checkpoint's metrics) is no epoch. Our reports carry the epoch themselves.
            if "final_eval" in frame:
                frame = frame[frame["final_eval"].fillna(0) != 1]
            epoch = frame["epoch"] if "epoch" in frame else frame.get("training_iteration")
        if epoch is None or epoch.isna().all() or frame.empty:
            tried.append(f"{path}: no epochs")
            continue
        # numbers only, in one consolidated block (read_csv gives one block per column)
        frame = frame.select_dtypes("number").assign(epoch=epoch).dropna(subset=["epoch"]).copy()
        frame["epoch"] = frame["epoch"].astype(int)
        frame = frame.drop_duplicates("epoch", keep="last").sort_values("epoch").reset_index(drop=True)
        return frame, str(path.relative_to(base.parent))
    return None, "; ".join(tried)
