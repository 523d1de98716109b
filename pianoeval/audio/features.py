"""Log-mel features of rendered audio, clean and augmented, cached per item.

An *item* is a piece of music to hear: a PercePiano segment (its whole performance
MIDI) or an ASAP window (an excerpt of a performance). For each (item, soundfont,
variant) the store holds the power mel spectrogram in dB, ``[n_mels, T]`` float16,
computed by the backbone's front end (``MelFrontend``) from the render cropped to
``max_seconds``. Variant 0 is the clean render; variant v >= 1 is the render through
the augmentation suite with a seed derived from (render key, v): K augmented views per
item, drawn once and reused (the frozen layers above them run once too, see
``hidden_cache``). Normalisation (``db_mean``/``db_std``) belongs to the backbone and is
applied there, so backbones with the same front end share this cache.

Cache: ``cache_root()/audio/mel/<frontend key>/<soundfont>/<item key>-v<variant>.npy``;
the item key hashes the render key, the crop, the augmentation config and
``FEATURE_VERSION``. Building runs in a process pool with a progress bar; an item that
fails (render missing or unreadable, silent) is skipped with one warning line.
"""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pianoeval.audio.augment import AudioAugmentor, augment_key
from pianoeval.audio.backbones import BackboneSpec, MelFrontend
from pianoeval.audio.render import RenderError, RenderJob, load_render, render_many
from pianoeval.io import atomic_write
from pianoeval.models.configs.audio import AugmentConfig
from pianoeval.paths import cache_root

#: Bump when the feature code changes what it produces.
FEATURE_VERSION = "1"


@dataclass(frozen=True)
class Frontend:
    """The part of a backbone spec that shapes its input features."""

    sample_rate: int
    n_fft: int
    hop_length: int
    n_mels: int

    @classmethod
    def of(cls, spec) -> "Frontend":
        return cls(spec.sample_rate, spec.n_fft, spec.hop_length, spec.n_mels)

    def key(self) -> str:
        return f"sr{self.sample_rate}-fft{self.n_fft}-hop{self.hop_length}-mel{self.n_mels}"


@dataclass(frozen=True)
class AudioItem:
    """Something to render: a whole MIDI file, or the excerpt [start, start + duration)."""

    item_id: str
    midi: Path
    start: float = 0.0
    duration: float | None = None

    def render_job(self, soundfont: str) -> RenderJob:
        return RenderJob(self.midi, soundfont, self.start, self.duration)


def feature_key(item: AudioItem, soundfont: str, variant: int, max_seconds: float | None,
                augment: AugmentConfig) -> str:
    parts = [item.render_job(soundfont).key(), f"crop{max_seconds}", f"v{variant}",
             augment_key(augment) if variant else "clean", FEATURE_VERSION]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def _variant_seed(key: str) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)


_FRONTENDS: dict = {}


def _mel_db(audio: np.ndarray, frontend: Frontend) -> np.ndarray:
    torch.set_num_threads(1)
    if frontend not in _FRONTENDS:
        spec = BackboneSpec(sample_rate=frontend.sample_rate, n_fft=frontend.n_fft, hop_length=frontend.hop_length,
                            n_mels=frontend.n_mels)  # db_mean 0, db_std 1: raw dB
        _FRONTENDS[frontend] = MelFrontend(spec)
    return _FRONTENDS[frontend](torch.from_numpy(audio)).numpy().astype(np.float16)


def _build_batch(tasks, frontend: Frontend, augment: AugmentConfig, max_seconds):
    """Worker: (render path, out path, variant, seed) -> error or None, each."""
    augmentor = AudioAugmentor(augment, frontend.sample_rate)
    results = []
    for render_path, out_path, variant, seed in tasks:
        try:
            audio = load_render(Path(render_path))
            if max_seconds is not None:
                audio = audio[: int(max_seconds * frontend.sample_rate)]
            if variant:
                audio, _ = augmentor(audio, seed)
            mel = _mel_db(audio, frontend)
            if mel.shape[1] < 8:
                raise RenderError(f"too short ({audio.size / frontend.sample_rate:.2f} s)")
            atomic_write(Path(out_path), lambda tmp: np.save(open(tmp, "wb"), mel))
            results.append((out_path, None))
        except RenderError as err:
            results.append((out_path, str(err)))
    return results


@dataclass
class MelStore:
    """(item id, soundfont, variant) -> cached log-mel path (and its key)."""

    frontend: Frontend
    paths: dict[tuple[str, str, int], Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def __contains__(self, key: tuple[str, str, int]) -> bool:
        return key in self.paths

    def load(self, item_id: str, soundfont: str, variant: int = 0) -> np.ndarray:
        return np.load(self.paths[(item_id, soundfont, variant)])

    def key(self, item_id: str, soundfont: str, variant: int = 0) -> str:
        return self.paths[(item_id, soundfont, variant)].stem


def build_mels(items: list[AudioItem], soundfonts: list[str], variants: int, frontend: Frontend,
               augment: AugmentConfig, max_seconds: float | None, workers: int | None = None,
               progress: bool | None = None, warn=print, label: str = "items") -> MelStore:
    """Render (if needed) and featurise every item x soundfont x variant 0..``variants``."""
    from tqdm.auto import tqdm

    renders, report = render_many([item.render_job(sf) for item in items for sf in soundfonts],
                                  workers=workers, progress=progress, warn=warn)
    if report.rendered:
        warn(report.line())
    store = MelStore(frontend, skipped={k: v for k, v in report.skipped.items()})
    folder = cache_root() / "audio" / "mel" / frontend.key()
    todo = []
    for item in items:
        for sf in soundfonts:
            job = item.render_job(sf)
            if job not in renders:
                continue
            for variant in range(variants + 1):
                key = feature_key(item, sf, variant, max_seconds, augment)
                path = folder / sf / f"{key}.npy"
                store.paths[(item.item_id, sf, variant)] = path
                if not path.is_file():
                    todo.append((str(renders[job]), str(path), variant, _variant_seed(key)))
    if todo:
        started = time.time()
        workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
        chunks = [todo[i:i + 16] for i in range(0, len(todo), 16)]
        bar = tqdm(total=len(todo), desc=f"log-mel features ({label})", unit="item", disable=None if progress is None else not progress,
                   leave=False)
        failed = {}
        if workers == 1:
            outcomes = (_build_batch(c, frontend, augment, max_seconds) for c in chunks)
            for batch in outcomes:
                for out_path, error in batch:
                    bar.update(1)
                    if error:
                        failed[out_path] = error
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(_build_batch, c, frontend, augment, max_seconds) for c in chunks]
                for future in as_completed(futures):
                    for out_path, error in future.result():
                        bar.update(1)
                        if error:
                            failed[out_path] = error
        bar.close()
        for key, path in list(store.paths.items()):
            if str(path) in failed:
                del store.paths[key]
                name = f"{key[0]}@{key[1]}/v{key[2]}"
                warn(f"[audio] skip {name}: {failed[str(path)]}")
                store.skipped[name] = failed[str(path)]
        warn(f"[audio] log-mel features ({label}): {len(todo) - len(failed)} computed in "
             f"{time.time() - started:.1f}s, {len(store.paths) - len(todo) + len(failed)} cached, "
             f"{len(store.skipped)} skipped")
    return store
