"""Frames files: pre-extracted encoder frames ``{segment key: [T, D]}`` as an input kind.

A frames input (``data.frames: PATH``) is either

* one ``.pt`` file holding a dict ``{key: tensor [T, D]}`` (read with
  ``torch.load(weights_only=True)``; what ``runners/export_frames.py`` writes), or
* a folder of per-key files, ``<key>.pt`` (a tensor), ``<key>.npy`` or
  ``<key>.safetensors`` (one tensor), the key being the file stem.

Keys are compared with surrounding spaces stripped (one PercePiano file name starts with
a space; its label key does not). D is inferred once (the width most keys have) and every
key is checked against it (no width held by more than half the keys is an error); float16,
float32 and float64 are accepted (float64 is stored as float32, and the summary says so),
and an all-float16 input stays float16 in memory (batches are cast to float32). A key
whose frames are not a finite ``[T, D]`` float array is skipped, counted and reported by
name; when no key is usable the load is an error.

Loading is fast after the first time: the checked frames are stored once as one
contiguous array plus offsets (a ``FrameTable``) under ``cache_root()/frames/<content
hash>/``, and the content hash of a file is remembered by its path, size and
modification time, so a warm load reads no frames file at all. ``FrameTable`` is also
the storage of the fusion track's frozen-encoder frames (``pianoeval.fusion.frames``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Hashable, Iterable, Mapping

import numpy as np
import torch

from pianoeval.data.labels import apply_label_set, load_label_set
from pianoeval.data.percepiano import load_segments
from pianoeval.errors import DataError
from pianoeval.io import atomic_write, atomic_write_text
from pianoeval.paths import cache_root, percepiano_root

FRAME_SUFFIXES = (".pt", ".npy", ".safetensors")
FLOAT_DTYPES = (np.float16, np.float32, np.float64)  # float64 (numpy's default) is stored as float32
EXPORT_HINT = "write one with e.g. `python runners/export_frames.py --model note_sa --out frames.pt`"


# --- the contiguous store -------------------------------------------------------------------
@dataclass
class FrameTable:
    """Variable-length frame sequences [T, C] by key: one concatenated array plus offsets."""

    keys: list[Hashable]
    offsets: np.ndarray  # [N + 1] int64
    frames: np.ndarray  # [sum T, C] float16 or float32
    meta: dict = field(default_factory=dict)  # what ``save`` stored beside the arrays

    def __post_init__(self):
        self.index = {k: i for i, k in enumerate(self.keys)}

    def __contains__(self, key) -> bool:
        return key in self.index

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def width(self) -> int:
        return int(self.frames.shape[1])

    def get(self, key) -> np.ndarray:
        i = self.index[key]
        return self.frames[self.offsets[i]:self.offsets[i + 1]]

    def length(self, key) -> int:
        i = self.index[key]
        return int(self.offsets[i + 1] - self.offsets[i])

    @classmethod
    def from_arrays(cls, arrays: Mapping[Hashable, np.ndarray], dtype=np.float16) -> "FrameTable":
        keys = list(arrays)
        lengths = [arrays[k].shape[0] for k in keys]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        frames = np.concatenate([np.asarray(arrays[k], dtype=dtype) for k in keys]) if keys else np.zeros((0, 0), dtype)
        return cls(keys, offsets, frames)

    def subset(self, keys: Iterable[Hashable]) -> "FrameTable":
        return FrameTable.from_arrays({k: self.get(k) for k in keys}, dtype=self.frames.dtype)

    def save(self, folder: Path, meta: Mapping | None = None) -> None:
        """Write ``folder/{keys.json, offsets.npy, frames.npy}`` (+ ``meta``), all or nothing."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            keys = [list(k) if isinstance(k, tuple) else k for k in self.keys]
            (tmp / "keys.json").write_text(json.dumps({"keys": keys, "meta": dict(meta or {})}))
            np.save(tmp / "offsets.npy", self.offsets)
            np.save(tmp / "frames.npy", self.frames)
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)

    @classmethod
    def load(cls, folder: Path, mmap: bool = False) -> "FrameTable":
        """Read a table written by ``save`` (``mmap``: frames stay on disk until read)."""
        folder = Path(folder)
        stored = json.loads((folder / "keys.json").read_text())
        keys = [tuple(k) if isinstance(k, list) else k for k in stored["keys"]]
        frames = np.load(folder / "frames.npy", mmap_mode="r" if mmap else None)
        return cls(keys, np.load(folder / "offsets.npy"), frames, stored.get("meta", {}))

    @staticmethod
    def exists(folder: Path) -> bool:
        return all((Path(folder) / name).is_file() for name in ("keys.json", "offsets.npy", "frames.npy"))


@contextmanager
def locked(path: Path):
    """An exclusive lock beside ``path`` (concurrent trials wait while the first one writes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- the exchange format ---------------------------------------------------------------------
def write_frames(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``{key: [T, D]}`` as one ``.pt`` dict of tensors (dtype kept), atomically."""
    tensors = {str(k): torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    atomic_write(Path(path), lambda tmp: torch.save(tensors, tmp))


# --- content hashes --------------------------------------------------------------------------
def _frame_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(frame files, other entries) of a frames folder, sorted by name."""
    entries = sorted(folder.iterdir(), key=lambda p: p.name)
    frames = [p for p in entries if p.is_file() and p.suffix in FRAME_SUFFIXES and not p.name.startswith(".")]
    return frames, [p for p in entries if p not in frames]


def _stat_key(path: Path) -> str:
    """Identifies a file's or folder's current content without reading it (path, sizes, mtimes)."""
    if path.is_dir():
        files, _ = _frame_files(path)
        parts = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
        return hashlib.sha256(f"{path.resolve()}|{'|'.join(parts)}".encode()).hexdigest()
    stat = path.stat()
    return hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()


def _hash_now(path: Path) -> str:
    digest = hashlib.sha256()
    files = _frame_files(path)[0] if path.is_dir() else [path]
    for file in files:
        digest.update(file.name.encode() if path.is_dir() else b"")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 24), b""):
                digest.update(block)
    return digest.hexdigest()


def content_hash(path: str | Path) -> str:
    """sha256 of a frames file (or of a folder's frame files, names included).

    Remembered by path, size and modification time under ``cache_root()/frames/hashes``, so
    a file that did not change is hashed once."""
    path = Path(path)
    memo = cache_root() / "frames" / "hashes" / _stat_key(path)
    if memo.is_file():
        return memo.read_text().strip()
    value = _hash_now(path)
    atomic_write_text(memo, value)
    return value


def file_identity(path: str | Path) -> dict[str, str]:
    """``{path, sha256}`` of an input file, for ``resolved.yaml``."""
    return {"path": str(Path(path).resolve()), "sha256": content_hash(path)}


# --- reading and checking --------------------------------------------------------------------
def _code_version() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def _first_line(error: Exception, limit: int) -> str:
    """An exception's first line for a one-line message (its type when it has no text)."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__


def _as_array(value, where: str) -> np.ndarray | str:
    """A 2-D numpy array, or the reason it is not one."""
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bfloat16:
            return f"{where}: dtype bfloat16 (use float16, float32 or float64)"
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        return f"{where}: holds a {type(value).__name__}, not a [T, D] tensor"
    if value.ndim != 2 or value.shape[0] < 1 or value.shape[1] < 1:
        return f"{where}: shape {list(value.shape)}, expected [T, D] with T, D >= 1"
    if value.dtype not in FLOAT_DTYPES:
        return f"{where}: dtype {value.dtype} (use float16, float32 or float64)"
    return value


def _read_pt_dict(path: Path) -> dict:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle that weights_only refuses, a truncated file, not a .pt at all
        raise DataError(f"{path}: not a readable .pt frames file ({_first_line(error, 160)}); "
                        f"expected torch.save({{key: tensor [T, D]}})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: holds a {type(data).__name__}, expected a dict {{key: tensor [T, D]}}")
    return data


def _read_one(path: Path):
    """The array in one per-key file, or the reason it cannot be read."""
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if path.suffix == ".pt":
            return torch.load(path, map_location="cpu", weights_only=True)
        from safetensors.numpy import load_file

        tensors = load_file(str(path))
        if len(tensors) != 1:
            return f"{path.name}: holds {len(tensors)} tensors ({', '.join(sorted(tensors)[:3])}), expected one"
        return next(iter(tensors.values()))
    except Exception as error:
        return f"{path.name}: unreadable ({_first_line(error, 120)})"


def _raw_items(path: Path, warn) -> list[tuple[str, object, str]]:
    """(key, value or reason, where) for every entry of a frames file or folder."""
    if path.is_dir():
        files, others = _frame_files(path)
        if others:
            warn(f"[frames] {path}: {len(others)} entries are not {'/'.join(FRAME_SUFFIXES)} files and were "
                 f"ignored (e.g. {others[0].name})")
        if not files:
            raise DataError(f"{path}: no {', '.join(FRAME_SUFFIXES)} files in this folder; a frames folder holds one "
                            f"file per segment key (<key>.pt / .npy / .safetensors), or {EXPORT_HINT}")
        stems = Counter(p.stem.strip() for p in files)
        twice = sorted(k for k, n in stems.items() if n > 1)
        if twice:
            names = [p.name for p in files if p.stem.strip() == twice[0]]
            raise DataError(f"{path}: key {twice[0]!r} has {len(names)} files ({', '.join(names)}); keep one per key")
        return [(p.stem, _read_one(p), p.name) for p in files]
    if path.suffix != ".pt":
        raise DataError(f"{path}: a frames file must be a .pt dict (or a folder of per-key "
                        f"{'/'.join(FRAME_SUFFIXES)} files)")
    data = _read_pt_dict(path)
    if not data:
        raise DataError(f"{path}: the dict is empty; {EXPORT_HINT}")
    return [(str(k), v, f"key {str(k)!r}") for k, v in data.items()]


SKIP_LINES = 10  # skipped keys named one per line, per reason; the rest are counted


def _check(path: Path, warn) -> tuple[FrameTable, dict[str, list[str]]]:
    """Read ``path``, check every key and build the table; skipped keys by reason."""
    arrays: dict[str, np.ndarray] = {}
    skipped: dict[str, list[str]] = {}
    first: list[str] = []  # the first skip, so that an error stands on its own (a quiet check prints no skips)

    def skip(reason: str, key: str, message: str) -> None:
        skipped.setdefault(reason, []).append(key)
        if not first:
            first.append(message if key in message else f"{key!r}: {message}")
        if len(skipped[reason]) <= SKIP_LINES:
            warn(f"[frames] skip {key!r}: {message}")

    def unlisted() -> None:  # a file of 1,000 bad keys is 10 lines a reason and a count, not 1,000 lines
        for reason, keys in skipped.items():
            if len(keys) > SKIP_LINES:
                warn(f"[frames] skip: {len(keys) - SKIP_LINES} more keys ({reason}) not listed")

    for raw_key, value, where in _raw_items(path, warn):
        key = raw_key.strip()
        if key in arrays or any(key in keys for keys in skipped.values()):
            raise DataError(f"{path}: keys {raw_key!r} and {key!r} are the same key once spaces are stripped; "
                            f"keep one")
        array = _as_array(value, where) if not isinstance(value, str) else value
        if isinstance(array, str):
            skip("not_frames", key, array)
            continue
        arrays[key] = array
    if not arrays:
        unlisted()
        raise DataError(f"{path}: no key holds usable frames ({sum(map(len, skipped.values()))} skipped, "
                        f"e.g. {first[0]}); each must be a float tensor [T, D]")
    width, held = Counter(a.shape[1] for a in arrays.values()).most_common(1)[0]
    if 2 * held <= len(arrays):  # no width most keys share: skipping the rest would train on a minority
        rows = {a.shape[0] for a in arrays.values()}
        hint = (f"every key has {rows.pop()} rows, so the frames look like [D, T]: save them as [T, D] (tensor.T)"
                if len(rows) == 1 else "frames must be [T, D] with one D for every key")
        raise DataError(f"{path}: the keys' widths disagree: the most common, {width}, is held by {held} of "
                        f"{len(arrays)} keys; {hint}")
    for key in list(arrays):
        array = arrays[key]
        if array.shape[1] != width:
            skip("wrong_width", key, f"width {array.shape[1]}, but the frames are {width} wide")
            del arrays[key]
        elif not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).any(axis=1).sum())
            skip("not_finite", key, f"{bad} of {array.shape[0]} frames hold NaN or Inf")
            del arrays[key]
    unlisted()
    if not arrays:
        raise DataError(f"{path}: every key's frames are unusable ({sum(map(len, skipped.values()))} "
                        f"skipped, e.g. {first[0]})")
    dtype = np.float16 if all(a.dtype == np.float16 for a in arrays.values()) else np.float32
    table = FrameTable.from_arrays(dict(sorted(arrays.items())), dtype=dtype)
    table.meta["float64_keys"] = sum(a.dtype == np.float64 for a in arrays.values())  # said in every summary
    return table, skipped


@dataclass
class LoadedFrames:
    """A checked frames input: the table (every usable key), its source and what was skipped."""

    path: Path
    sha256: str
    table: FrameTable
    skipped: dict[str, list[str]] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return self.table.width

    def summary(self) -> str:
        skipped = sum(len(v) for v in self.skipped.values())
        reasons = ", ".join(f"{k}: {len(v)}" for k, v in self.skipped.items())
        wide = self.table.meta.get("float64_keys", 0)
        return (f"[frames] {self.path}: {len(self.table)} keys, {self.width} wide, {self.table.frames.dtype}, "
                f"{len(self.table.frames):,} frames" + (f" ({wide} float64 keys stored as float32)" if wide else "")
                + (f"; {skipped} keys skipped ({reasons})" if skipped else ""))


def load_frames(path: str | Path, warn=print, mmap: bool = True) -> LoadedFrames:
    """Read and check a frames input (see the module docstring), through the cache."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: frames file or folder not found; {EXPORT_HINT}")
    sha = content_hash(path)
    folder = cache_root() / "frames" / f"{sha[:20]}-{_code_version()}"
    with locked(folder):
        if not FrameTable.exists(folder):
            started = time.time()
            table, skipped = _check(path, warn)
            table.save(folder, {"source": str(path.resolve()), "sha256": sha, "skipped": skipped, **table.meta})
            warn(f"[frames] {path}: {len(table)} keys checked and cached in {time.time() - started:.1f} s")
        table = FrameTable.load(folder, mmap=mmap)
    skipped = table.meta.get("skipped", {})
    for reason, keys in skipped.items():  # reported on every load, not only the first
        warn(f"[frames] {path}: {len(keys)} keys skipped ({reason}), e.g. {keys[0]!r}")
    return LoadedFrames(path, sha, table, skipped)


def match_keys(frames: LoadedFrames, label_keys: Iterable[str], labels_source: str, warn=print) -> set[str]:
    """The label keys that have frames. No overlap at all is an error naming both files;
    frames whose key has no label are counted and reported."""
    label_keys = set(label_keys)
    found = label_keys & set(frames.table.keys)
    if not found:
        example = frames.table.keys[0]
        raise DataError(f"{frames.path}: none of its {len(frames.table)} keys (e.g. {example!r}) is a segment key of "
                        f"{labels_source} (e.g. {sorted(label_keys)[0]!r}); keys must be the label file's segment keys")
    unlabelled = sorted(set(frames.table.keys) - label_keys)
    if unlabelled:
        warn(f"[frames] {len(unlabelled)} frame keys have no label in {labels_source} and are not used "
             f"(e.g. {unlabelled[0]!r})")
    return found


def pad_frames(arrays: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded float32 ``[B, T_max, D]`` and lengths ``[B]`` (float16 is cast here, per batch)."""
    lengths = torch.tensor([a.shape[0] for a in arrays], dtype=torch.int64)
    out = torch.zeros(len(arrays), int(lengths.max()), arrays[0].shape[1], dtype=torch.float32)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = torch.from_numpy(np.asarray(a, dtype=np.float32))
    return out, lengths


def check_frames_inputs(configs) -> None:
    """Each distinct ``data.frames`` of ``configs`` read (through the frames cache) and matched
    against its label set's keys, quietly: a sweep or an ablation whose frames input is unusable
    stops with one line before a run starts, instead of every trial failing on it. The runs
    then read the cached frames and report their skips themselves."""
    quiet = lambda message: None  # noqa: E731
    for frames, labels in dict.fromkeys((c.data.frames, c.data.labels) for c in configs if c.data.frames):
        segments, _ = load_segments(percepiano_root(), warn=quiet)
        labelled, _ = apply_label_set(segments, load_label_set(labels, segments), quiet)
        match_keys(load_frames(frames, warn=quiet), {s.segment_id for s in labelled}, labels, quiet)
