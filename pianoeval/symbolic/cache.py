"""Pre-processing of the symbolic corpus into tokens, graphs or curves, cached on disk.

The same pattern as the note features (``pianoeval.data.cache``): work runs in a
process pool (a few MIDI files per task, so an ASAP performance is read once for all
its windows) with a progress bar; an item that fails (MIDI that does not parse, an
empty window, ...) is skipped with one warning line, counted by reason and listed in
the summary line; the result is written atomically to
``$PIANOEVAL_CACHE/symbolic/<kind>-<label>-<key>.npz``, where the key hashes the
representation kind, every input file's content and window bounds, the source code
of the modules that compute it, and the degradation tier (if any).

A store holds variable-length arrays per item (``RaggedStore``): each field is the
concatenation of every item's array along axis 0, plus offsets.
"""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pianoeval.errors import DataError
from pianoeval.io import atomic_write
from pianoeval.paths import cache_root
from pianoeval.symbolic.corpus import SymbolicItem
from pianoeval.symbolic.degradation import degrade
from pianoeval.data.midi import MidiError, RepresentationError, read_midi

KINDS = ("tokens", "graphs", "curves")
_MODULES = {  # modules whose source code determines each kind (all part of its cache key)
    "tokens": ("pianoeval.data.midi", "pianoeval.symbolic.tokens"),
    "graphs": ("pianoeval.data.midi", "pianoeval.symbolic.graphs"),
    "curves": ("pianoeval.data.midi", "pianoeval.data.curves", "pianoeval.symbolic.curves"),
}
FILES_PER_TASK = 8


def _kind_module(kind: str):
    if kind not in KINDS:
        raise ValueError(f"unknown representation {kind!r} (kinds: {', '.join(KINDS)})")
    import importlib

    return importlib.import_module(f"pianoeval.symbolic.{kind}")


def code_version(kind: str, tier: str | None = None) -> str:
    """Hash of the source code that computes ``kind`` (and the degradation, if used)."""
    import importlib

    digest = hashlib.sha256()
    names = [*_MODULES[kind], __name__]
    if tier is not None:
        names.append("pianoeval.symbolic.degradation")
    for name in names:
        digest.update(Path(importlib.import_module(name).__file__).read_bytes())
    return digest.hexdigest()[:16]


def data_fingerprint(items: list[SymbolicItem], roots: dict[str, Path]) -> str:
    """Hash of every item's id and window and of every input file's content."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.item_id}|{item.start!r}|{item.end!r}\n".encode())
    for source, path in sorted({(i.source, i.path) for i in items}):
        file = Path(roots[source]) / path
        digest.update(path.encode())
        digest.update(file.read_bytes() if file.is_file() else b"<missing>")
    return digest.hexdigest()[:16]


@dataclass
class RaggedStore:
    """Per-item variable-length arrays of one representation, concatenated."""

    kind: str
    item_ids: list[str]
    values: dict[str, np.ndarray]  # field -> concatenation over items along axis 0
    offsets: dict[str, np.ndarray]  # field -> [n + 1] int64
    skipped: dict[str, list[tuple[str, str]]]  # reason -> [(item id, message)]
    key: str

    def __post_init__(self):
        self._position = {item_id: i for i, item_id in enumerate(self.item_ids)}

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._position

    def __len__(self) -> int:
        return len(self.item_ids)

    def get(self, item_id: str) -> dict[str, np.ndarray]:
        """Every field of one item (views into the store)."""
        i = self._position[item_id]
        return {name: self.values[name][self.offsets[name][i]:self.offsets[name][i + 1]] for name in self.values}

    def lengths(self, field: str) -> np.ndarray:
        return np.diff(self.offsets[field])

    def skipped_count(self) -> int:
        return sum(len(v) for v in self.skipped.values())


def _represent_files(kind: str, tier: str | None, seed: int, tasks: list[tuple[str, list[tuple[str, float, float | None]]]]):
    """Worker: read each MIDI file once, then represent each of its items (windows)."""
    module = _kind_module(kind)
    results = []
    for path, windows in tasks:
        try:
            performance = read_midi(path)
        except MidiError as err:
            results += [(item_id, None, "midi_unusable", str(err)) for item_id, _, _ in windows]
            continue
        for item_id, start, end in windows:
            seq = performance.window(start, end) if (start > 0 or end is not None) else performance
            try:
                if tier is not None:
                    seq = degrade(seq, tier, item_id, seed)
                results.append((item_id, module.represent(seq), None, None))
            except RepresentationError as err:
                results.append((item_id, None, "no_representation", f"{Path(path).name}: {err}"))
    return results


def build_store(kind: str, items: list[SymbolicItem], roots: dict[str, Path], label: str, tier: str | None = None,
                seed: int = 0, workers: int | None = None, progress: bool = True, force: bool = False,
                warn=print) -> RaggedStore:
    """Load the cached ``kind`` representation of ``items``, or compute and cache it.

    ``roots`` maps each item source to its folder; ``label`` names the cache file
    (e.g. ``"asap"``); ``tier`` degrades every item first (``pianoeval.symbolic.degradation``),
    seeded by item id and ``seed``."""
    _kind_module(kind)
    if not items:
        raise DataError(f"no items to represent as {kind} ({label})")
    key = hashlib.sha256(f"{kind}|{data_fingerprint(items, roots)}|{code_version(kind, tier)}|{tier}|{seed}"
                         .encode()).hexdigest()[:20]
    tag = f"{kind}-{label}" + (f"-{tier}-s{seed}" if tier else "")
    path = cache_root() / "symbolic" / f"{tag}-{key}.npz"
    if path.is_file() and not force:
        return _read(path, kind, key)

    by_file: dict[str, list[tuple[str, float, float | None]]] = {}
    for item in items:
        by_file.setdefault(str(Path(roots[item.source]) / item.path), []).append((item.item_id, item.start, item.end))
    files = list(by_file.items())
    tasks = [files[i:i + FILES_PER_TASK] for i in range(0, len(files), FILES_PER_TASK)]
    workers = workers or min(len(tasks), os.cpu_count() or 1)
    started = time.time()
    from tqdm.auto import tqdm

    bar = tqdm(total=len(items), desc=f"{kind} ({tag})", disable=not progress, unit="item", leave=False)
    results = {}
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_represent_files, kind, tier, seed, task) for task in tasks]
            for future in as_completed(futures):
                for res in future.result():
                    results[res[0]] = res
                    bar.update(1)
    else:
        for task in tasks:
            for res in _represent_files(kind, tier, seed, task):
                results[res[0]] = res
                bar.update(1)
    bar.close()

    skipped: dict[str, list[tuple[str, str]]] = {}
    for item in items:
        item_id, fields, reason, message = results[item.item_id]
        if fields is None:
            warn(f"[symbolic] skip {item_id}: {message}")
            skipped.setdefault(reason, []).append((item_id, message))
    ok = [item.item_id for item in items if results[item.item_id][1] is not None]
    if not ok:
        raise DataError(f"{kind} ({tag}): every item failed; see the warnings above")
    store = _assemble(kind, ok, {i: results[i][1] for i in ok}, skipped, key)
    warn(f"[symbolic] {kind} ({tag}): {len(ok)} items, {store.skipped_count()} skipped "
         f"({', '.join(f'{k}: {len(v)}' for k, v in skipped.items()) or 'none'}) in {time.time() - started:.1f}s")
    _write(path, store)
    return store


def _assemble(kind, ids, fields, skipped, key) -> RaggedStore:
    names = list(fields[ids[0]])
    values, offsets = {}, {}
    for name in names:
        parts = [fields[i][name] for i in ids]
        values[name] = np.concatenate(parts)
        offsets[name] = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
    return RaggedStore(kind, list(ids), values, offsets, skipped, key)


def _write(path: Path, store: RaggedStore) -> None:
    skipped = [(reason, item_id, msg) for reason, entries in store.skipped.items() for item_id, msg in entries]
    payload = {"item_ids": np.array(store.item_ids),
               "skipped": np.array(skipped if skipped else np.zeros((0, 3)), dtype=str).reshape(-1, 3)}
    for name in store.values:
        payload[f"values/{name}"] = store.values[name]
        payload[f"offsets/{name}"] = store.offsets[name]
    atomic_write(path, lambda tmp: np.savez(open(tmp, "wb"), **payload))


def _read(path: Path, kind: str, key: str) -> RaggedStore:
    with np.load(path) as data:
        skipped: dict[str, list[tuple[str, str]]] = {}
        for reason, item_id, msg in data["skipped"]:
            skipped.setdefault(str(reason), []).append((str(item_id), str(msg)))
        names = [k.split("/", 1)[1] for k in data.files if k.startswith("values/")]
        return RaggedStore(kind, [str(i) for i in data["item_ids"]], {n: data[f"values/{n}"] for n in names},
                           {n: data[f"offsets/{n}"] for n in names}, skipped, key)
