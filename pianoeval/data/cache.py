"""Extraction of note features for every segment, once, into an on-disk cache.

Two layers:

1. **Alignments** (the slow, external step: parangonar, ~0.2-1.7 s a segment) are
   stored in ``bundled/alignments.npz`` (segment id -> [K, 2] score row / performed
   row pairs) and shipped with the repository, so a fresh clone does not realign.
   ``python runners/prepare_data.py --realign`` rebuilds them. A stored alignment is
   checked on use (every matched pair must have equal pitches); a stale one is
   realigned, with a warning.
2. **Feature rows** (score parsing + performance parsing + assembly, about a minute
   on two cores) are cached in ``$PIANOEVAL_CACHE`` (default ``.cache/``) under a key
   made of the data fingerprint, the alignment file and the source code of the
   feature modules: any change to data or code gives a new key.

Extraction runs in parallel (one task per score segment, so a score is parsed
once) with a progress bar; a segment that fails is skipped with one warning line,
counted by reason and listed in the summary. Nothing already computed is lost:
stored alignments are only replaced for segments that were realigned successfully.
"""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pianoeval.data import alignment as alignment_mod
from pianoeval.data import directions, features, performance, score
from pianoeval.data.percepiano import Segment, load_segments
from pianoeval.errors import DataError
from pianoeval.io import atomic_write
from pianoeval.paths import BUNDLED_PERCEPIANO, cache_root, percepiano_root

ALIGNMENTS_FILE = BUNDLED_PERCEPIANO.parent / "alignments.npz"
INDEX_COLUMNS = ("beat_index", "measure_index", "voice", "row_kind")
_CODE_MODULES = (score, directions, performance, alignment_mod, features)


def code_version() -> str:
    """Hash of the feature-extraction source code."""
    digest = hashlib.sha256()
    for module in _CODE_MODULES + (__import__(__name__, fromlist=["_"]),):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def data_fingerprint(root: Path, segments: list[Segment]) -> str:
    """Hash of every input file's content (MIDI, scores, labels)."""
    digest = hashlib.sha256()
    files = sorted({seg.performance_midi(root) for seg in segments} | {seg.score_musicxml(root) for seg in segments})
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
    for name in ("label_2round_mean_reg_19_with0_rm_highstd0.json", "label_2round_std_reg_19_with0_rm_highstd0.json"):
        digest.update((root / "labels" / name).read_bytes())
    return digest.hexdigest()[:16]


def load_alignments(path: Path = ALIGNMENTS_FILE) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def save_alignments(store: dict[str, np.ndarray], path: Path = ALIGNMENTS_FILE) -> None:
    atomic_write(path, lambda tmp: np.savez_compressed(open(tmp, "wb"), **dict(sorted(store.items()))))


@dataclass
class SegmentResult:
    segment_id: str
    rows: dict[str, np.ndarray] | None = None
    pairs: np.ndarray | None = None
    realigned: bool = False
    error: str | None = None
    reason: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


def _extract_group(root: str, items: list[tuple[str, str, str]], stored: dict[str, np.ndarray], realign: bool):
    """Worker: one score segment and all its performances."""
    results = []
    score_path = Path(root) / "score_mxl" / items[0][1]
    try:
        table = score.parse_score(score_path)
    except score.ScoreError as err:
        return [SegmentResult(seg_id, error=str(err), reason="score_unusable") for seg_id, _, _ in items]
    for seg_id, _, perf_name in items:
        try:
            perf = performance.parse_performance(Path(root) / "performance_midi" / perf_name)
        except performance.PerformanceError as err:
            results.append(SegmentResult(seg_id, error=str(err), reason="midi_unusable"))
            continue
        pairs = None if realign else stored.get(seg_id)
        realigned = False
        if pairs is not None:
            ok = (pairs[:, 0].max(initial=-1) < len(table.ids)) and (pairs[:, 1].max(initial=-1) < len(perf))
            if not ok or not np.array_equal(table.pitch[pairs[:, 0]], perf.pitch[pairs[:, 1]]):
                pairs = None  # stale: rows no longer line up with the stored alignment
        try:
            if pairs is None:
                pairs = alignment_mod.align(table, perf, seed_key=seg_id).to_pairs()
                realigned = True
            rows = features.build_rows(table, perf, alignment_mod.Alignment.from_pairs(pairs))
        except alignment_mod.AlignmentError as err:
            results.append(SegmentResult(seg_id, error=str(err), reason="alignment_failed"))
            continue
        except features.FeatureError as err:
            results.append(SegmentResult(seg_id, error=str(err), reason="features_failed"))
            continue
        counts = {"score_notes": len(table.ids), "performed_notes": len(perf), "matched": len(pairs)}
        results.append(SegmentResult(seg_id, rows=rows, pairs=pairs, realigned=realigned, counts=counts))
    return results


@dataclass
class NoteFeatureStore:
    """All segments' raw note rows, concatenated; per-segment views by id."""

    segment_ids: list[str]
    offsets: np.ndarray  # [S + 1]
    values: np.ndarray  # [R, C] float32, raw (unscaled) feature sources
    sources: list[str]  # names of the C columns of ``values``
    index: dict[str, np.ndarray]  # INDEX_COLUMNS -> [R] int64
    counts: dict[str, np.ndarray]  # per segment: score_notes, performed_notes, matched
    skipped: dict[str, list[tuple[str, str]]]  # reason -> [(segment id, message)]
    key: str

    def __post_init__(self):
        self._position = {sid: i for i, sid in enumerate(self.segment_ids)}
        self._source_col = {name: i for i, name in enumerate(self.sources)}

    def __contains__(self, segment_id: str) -> bool:
        return segment_id in self._position

    def rows(self, segment_id: str) -> slice:
        i = self._position[segment_id]
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def column(self, name: str) -> np.ndarray:
        """One raw source column over all rows."""
        return self.values[:, self._source_col[name]]

    def source_indices(self, names: list[str]) -> np.ndarray:
        return np.array([self._source_col[n] for n in names])

    def match_rate(self) -> dict[str, float]:
        """Performed notes matched to the score, per segment (0-1)."""
        return {sid: float(m / max(p, 1)) for sid, m, p in
                zip(self.segment_ids, self.counts["matched"], self.counts["performed_notes"])}


def _cache_path(key: str) -> Path:
    return cache_root() / "features" / f"note_features-{key}.npz"


def build_store(
    root: Path | None = None,
    segments: list[Segment] | None = None,
    workers: int | None = None,
    realign: bool = False,
    progress: bool = True,
    force: bool = False,
    warn=print,
    alignments_file: Path = ALIGNMENTS_FILE,
) -> NoteFeatureStore:
    """Load the cached features, or extract them (in parallel) and cache them.

    ``alignments_file`` holds the stored alignments (read, and updated with any
    segment that had to be realigned)."""
    root = Path(root) if root is not None else percepiano_root()
    if segments is None:
        segments, _ = load_segments(root, warn=warn)
    stored = load_alignments(alignments_file)
    fingerprint = data_fingerprint(root, segments)
    key = _store_key(fingerprint, alignments_file)
    path = _cache_path(key)
    if path.is_file() and not force and not realign:
        return _read_store(path, key)

    groups: dict[str, list[tuple[str, str, str]]] = {}
    for seg in segments:
        groups.setdefault(seg.score_key, []).append(
            (seg.segment_id, seg.score_musicxml(root).name, seg.performance_midi(root).name)
        )
    workers = workers or min(len(groups), os.cpu_count() or 1)
    results: dict[str, SegmentResult] = {}
    started = time.time()
    bar = _progress(len(segments), progress, "extracting note features")
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_extract_group, str(root), items, {i[0]: stored[i[0]] for i in items if i[0] in stored}, realign)
                       for items in groups.values()]
            for future in as_completed(futures):
                for res in future.result():
                    results[res.segment_id] = res
                    bar.update(1)
    else:
        for items in groups.values():
            for res in _extract_group(str(root), items, stored, realign):
                results[res.segment_id] = res
                bar.update(1)
    bar.close()

    skipped: dict[str, list[tuple[str, str]]] = {}
    realigned = {sid: r.pairs for sid, r in results.items() if r.realigned and r.pairs is not None}
    for sid in sorted(results):
        res = results[sid]
        if res.error:
            warn(f"[data] skip {sid}: {res.error}")
            skipped.setdefault(res.reason, []).append((sid, res.error))
    if realigned:
        if realign or not stored:
            warn(f"[data] aligned {len(realigned)} segments; storing them in {alignments_file}")
        else:
            warn(f"[data] {len(realigned)} stored alignments were missing or stale and were recomputed")
        save_alignments({**stored, **realigned}, alignments_file)
        key = _store_key(fingerprint, alignments_file)  # the alignments are part of the key
    ok = [sid for sid in sorted(results) if results[sid].rows is not None]
    store = _assemble(ok, results, skipped, key)
    n_skip = sum(len(v) for v in skipped.values())
    warn(f"[data] note features: {len(ok)} segments, {len(store.values)} rows, {n_skip} skipped "
         f"({', '.join(f'{k}: {len(v)}' for k, v in skipped.items()) or 'none'}) in {time.time() - started:.1f}s")
    _write_store(_cache_path(key), store)
    return store


def _store_key(fingerprint: str, alignments_file: Path) -> str:
    aligned = hashlib.sha256(alignments_file.read_bytes()).hexdigest() if alignments_file.is_file() else "none"
    return hashlib.sha256(f"{fingerprint}|{code_version()}|{aligned}".encode()).hexdigest()[:20]


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, unit="seg", leave=False)


def _assemble(ok: list[str], results: dict[str, SegmentResult], skipped, key: str) -> NoteFeatureStore:
    if not ok:
        raise DataError("note feature extraction failed for every segment; see the warnings above")
    sources = sorted(k for k in results[ok[0]].rows if k not in INDEX_COLUMNS)
    lengths = [len(results[sid].rows["beat_index"]) for sid in ok]
    values = np.concatenate([np.stack([results[sid].rows[s] for s in sources], axis=1) for sid in ok]).astype(np.float32)
    index = {c: np.concatenate([results[sid].rows[c] for sid in ok]).astype(np.int64) for c in INDEX_COLUMNS}
    counts = {k: np.array([results[sid].counts[k] for sid in ok]) for k in ("score_notes", "performed_notes", "matched")}
    return NoteFeatureStore(ok, np.concatenate([[0], np.cumsum(lengths)]), values, sources, index, counts, skipped, key)


def _write_store(path: Path, store: NoteFeatureStore) -> None:
    skipped = [(reason, sid, msg) for reason, items in store.skipped.items() for sid, msg in items]
    payload = {
        "segment_ids": np.array(store.segment_ids),
        "offsets": store.offsets,
        "values": store.values,
        "sources": np.array(store.sources),
        "skipped": np.array(skipped if skipped else np.zeros((0, 3)), dtype=str).reshape(-1, 3),
        **{f"index_{k}": v.astype(np.int32) for k, v in store.index.items()},
        **{f"count_{k}": v for k, v in store.counts.items()},
    }
    atomic_write(path, lambda tmp: np.savez(open(tmp, "wb"), **payload))


def _read_store(path: Path, key: str) -> NoteFeatureStore:
    with np.load(path) as data:
        skipped: dict[str, list[tuple[str, str]]] = {}
        for reason, sid, msg in data["skipped"]:
            skipped.setdefault(str(reason), []).append((str(sid), str(msg)))
        return NoteFeatureStore(
            segment_ids=[str(s) for s in data["segment_ids"]],
            offsets=data["offsets"],
            values=data["values"],
            sources=[str(s) for s in data["sources"]],
            index={k: data[f"index_{k}"].astype(np.int64) for k in INDEX_COLUMNS},
            counts={k: data[f"count_{k}"] for k in ("score_notes", "performed_notes", "matched")},
            skipped=skipped,
            key=key,
        )
