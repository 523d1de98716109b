"""Hidden-state cache: the frozen layers below the first adapted layer run once.

An encoder that adapts layers ``k+1..L`` of a backbone (LoRA, gradual unfreezing)
trains on hidden state ``k``: the output of the frozen front end and layers ``1..k``,
which never change. They run once per (item, soundfont, augmentation variant) and the
result ``[T', C]`` (float16) is stored at

    cache_root()/audio/hidden/<backbone key>-L<k>-<code version>/<feature key>.npy

The backbone key is the checkpoint's content hash (``BackboneSource.key``), the feature
key covers the render (MIDI, soundfont, synth settings), the crop and the augmentation
(see ``features``), and the code version hashes the backbone and cache source: any
change to weights, layer, audio or code gives a new path, so a stale entry is never
read. ``k = 0`` needs no cache (the batch carries log-mel frames).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import torch

from pianoeval.audio import backbones
from pianoeval.audio.features import MelStore
from pianoeval.audio.source import BackboneSource
from pianoeval.io import atomic_write
from pianoeval.paths import cache_root

Key = tuple[str, str, int]  # (item id, soundfont, variant)


def code_version() -> str:
    digest = hashlib.sha256()
    for path in (Path(backbones.__file__), Path(__file__)):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def cache_dir(source: BackboneSource, layer: int) -> Path:
    return cache_root() / "audio" / "hidden" / f"{source.key()}-L{layer}-{code_version()}"


def build_hidden(source: BackboneSource, layer: int, mels: MelStore, keys: list[Key], batch_size: int = 16,
                 progress: bool | None = None, warn=print, label: str = "items") -> dict[Key, np.ndarray]:
    """Hidden state ``layer`` of every key (computed for the missing ones, then loaded)."""
    from tqdm.auto import tqdm

    folder = cache_dir(source, layer)
    paths = {key: folder / f"{mels.key(*key)}.npy" for key in keys}
    missing = [key for key, path in paths.items() if not path.is_file()]
    if missing:
        started = time.time()
        model = source.load(0, announce=warn).eval()
        missing.sort(key=lambda k: np.load(mels.paths[k], mmap_mode="r").shape[1])
        bar = tqdm(total=len(missing), desc=f"hidden states L{layer} ({label})", unit="item",
                   disable=None if progress is None else not progress, leave=False)
        with torch.no_grad():
            for i in range(0, len(missing), batch_size):
                chunk = missing[i:i + batch_size]
                mel_list = [torch.from_numpy(mels.load(*key).astype(np.float32)) for key in chunk]
                lengths = torch.tensor([m.shape[1] for m in mel_list])
                padded = torch.zeros(len(chunk), mel_list[0].shape[0], int(lengths.max()))
                for j, m in enumerate(mel_list):
                    padded[j, :, : m.shape[1]] = m
                h, mask = model.embed(padded, lengths)
                if layer:
                    h = model.run_layers(h, mask, 0, layer)
                for j, key in enumerate(chunk):
                    state = h[j, : int(mask[j].sum())].numpy().astype(np.float16)
                    atomic_write(paths[key], lambda tmp, s=state: np.save(open(tmp, "wb"), s))
                bar.update(len(chunk))
        bar.close()
        warn(f"[audio] hidden states L{layer} ({label}): {len(missing)} computed in {time.time() - started:.1f}s, "
             f"{len(keys) - len(missing)} cached ({folder.name})")
    return {key: np.load(path) for key, path in paths.items()}
