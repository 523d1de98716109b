"""Frozen encoders' frames, computed once and cached: what every fusion model trains on.

A fusion model never runs its encoders while it trains: each encoder's ``encode`` runs
once over every PercePiano segment (audio: per soundfont and augmented view; symbolic:
the performance MIDI, and the score MIDI for score-conditioned fusion), and the frame
sequences are stored, float16, as a ``FrameTable`` (the storage of every frames input,
``pianoeval.data.frames``) at

    cache_root()/fusion/<modality>-<encoder name>-<key>/

The key hashes the encoder's resolved config, the content of the checkpoint it loads,
the items (split, fold, subsets, views) and the source code of the encoders and of this
module: a changed weight, config or code is a new file, never a stale read. Concurrent
trials that need the same file wait on a lock while the first computes it.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pianoeval.audio.data import AudioBatch, AudioDataModule, stack_frames
from pianoeval.config import load_yaml
from pianoeval.data import SPLIT_NAMES, collate_notes, input_files
from pianoeval.data.dataset import percepiano
from pianoeval.data.frames import FrameTable, locked
from pianoeval.data.labels import DEFAULT_LABELS, label_dimensions
from pianoeval.errors import ConfigError, DataError
from pianoeval.experiment import ExperimentConfig
from pianoeval.models.registry import get_model
from pianoeval.paths import REPO_ROOT, cache_root
from pianoeval.symbolic.batches import ItemMeta, SymbolicDataset, collate_for
from pianoeval.symbolic.cache import build_store
from pianoeval.symbolic.corpus import PERCEPIANO, SymbolicItem
from pianoeval.symbolic.datamodule import DATA_MODULES
from pianoeval.symbolic.sources import corpus_store, input_dim_of, percepiano_data, source_roots

ENCODE_BATCH = 16


def code_version() -> str:
    """Hash of the code that turns inputs into encoder frames (encoders, data, this module)."""
    root = Path(__file__).resolve().parents[1]  # the pianoeval package
    digest = hashlib.sha256()
    for folder in ("models", "models/configs", "audio", "symbolic"):
        for path in sorted((root / folder).glob("*.py")):
            if path.name != "fusion.py":  # the fusion model itself does not make frames
                digest.update(path.read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:12]


def checkpoint_path(template: str | None, fold: int, seed: int, key: str) -> Path | None:
    """The ``model.pt`` a ``*_checkpoint`` setting names (``{fold}`` / ``{seed}`` filled in)."""
    if template is None:
        return None
    path = Path(template.format(fold=fold, seed=seed))
    if not path.is_absolute():
        path = REPO_ROOT / path
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise DataError(f"model.{key}: {path} does not exist; name a training run's folder (it holds model.pt), "
                        f"e.g. one written by runners/train.py")
    return path


def _file_hash(path: Path | None) -> str | None:
    return None if path is None else hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def load_encoder_weights(model: torch.nn.Module, path: Path | None, name: str, key: str, announce=print) -> None:
    """Load a training run's ``model.pt`` (weights_only) into the registered model ``model``."""
    if path is None:
        return
    resolved = path.parent / "resolved.yaml"
    if resolved.is_file():
        made = (load_yaml(resolved).get("model") or {}).get("name")
        if made and made != name:
            raise ConfigError(f"model.{key}: {path} holds a {made!r} model, but the encoder is {name!r}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[1].strip() if len(str(error).splitlines()) > 1 else str(error)
        raise ConfigError(f"model.{key}: {path} does not fit the encoder config ({first}); "
                          f"use the same model settings as the run that wrote it") from None
    announce(f"[fusion] {name}: loaded {path}")


def _fold_keys(data) -> dict[str, Any]:
    """The ``data.*`` keys that decide a fold's segments, for an encoder's own config."""
    return {key: getattr(data, key) for key in ("split", "fold", "labels", "pieces", "allow_piece_leakage")}


def _input_keys(data) -> dict[str, Any]:
    """Cache-key fields of the fold's file inputs (a label set leaves unlabelled segments
    out of a fold); none for the built-in label set and splits, so their keys stay as they were."""
    if data.labels == DEFAULT_LABELS and data.split in SPLIT_NAMES:
        return {}
    files = input_files(data.labels, data.split, data.pieces)
    return {"inputs": {key: value["sha256"] for key, value in files.items()}, "labels": data.labels}


def checkpoint_labels(path: Path | None) -> int:
    """The label count of the run that wrote ``path`` (its resolved.yaml's data.labels), so
    its heads load; 19 without a checkpoint (the heads are not used for frames)."""
    resolved = path.parent / "resolved.yaml" if path is not None else None
    labels = DEFAULT_LABELS
    if resolved is not None and resolved.is_file():
        labels = (load_yaml(resolved).get("data") or {}).get("labels") or DEFAULT_LABELS
    return len(label_dimensions(labels))


def cached_table(modality: str, name: str, key_fields: dict[str, Any], compute, warn=print) -> FrameTable:
    """The table for ``key_fields`` from the cache, or ``compute()``d, saved and returned."""
    key = hashlib.sha256(json.dumps({**key_fields, "code": code_version()}, sort_keys=True, default=str)
                         .encode()).hexdigest()[:20]
    path = cache_root() / "fusion" / f"{modality}-{name}-{key}"
    with locked(path):
        if FrameTable.exists(path):
            return FrameTable.load(path)
        started = time.time()
        table = compute()
        table.save(path, {"modality": modality, "encoder": name})
        warn(f"[fusion] {modality} frames of {len(table)} items ({table.width} wide) cached in "
             f"{time.time() - started:.0f} s: {path}")
        return table


def _encode_all(model, batches, total: int, progress: bool | None, label: str) -> dict:
    """Run ``model.encoder.encode`` over ``(batch, keys)`` pairs: key -> frames [T, C] float16."""
    from tqdm.auto import tqdm

    out = {}
    model.eval()
    with torch.no_grad():
        for batch, keys in tqdm(batches, total=total, desc=f"fusion frames ({label})", unit="batch", leave=False,
                                disable=None if progress is None else not progress):
            frames, mask = getattr(model, "encoder", model).encode(batch)  # the HAN family encodes itself
            for i, key in enumerate(keys):
                out[key] = frames[i][mask[i]].float().numpy().astype(np.float16)
    return out


# --- audio ----------------------------------------------------------------------------
def encode_hidden(model, hidden: dict[tuple, Any], level: int, progress, name=lambda key: key) -> dict:
    """An audio encoder's frames of backbone hidden states ``{(segment id, ...): [T, D]}`` at
    ``level``, in batches of similar length; keyed by ``name(key)``."""
    order = sorted(hidden, key=lambda k: hidden[k].shape[0])
    chunks = [order[i:i + ENCODE_BATCH] for i in range(0, len(order), ENCODE_BATCH)]

    def batches():
        for chunk in chunks:
            frames, lengths = stack_frames([hidden[k] for k in chunk])
            n = len(chunk)
            yield AudioBatch(labels=torch.zeros(n, 1), label_std=torch.zeros(n, 1),  # unused by the encoder
                             group=torch.full((n,), -1), segment_ids=[k[0] for k in chunk], frames=frames,
                             lengths=lengths, level=level), [name(k) for k in chunk]

    return _encode_all(model, batches(), len(chunks), progress, "audio")


def audio_frames(encoder: dict[str, Any], checkpoint: str | None, experiment, views: int, progress=None,
                 warn=print) -> tuple[FrameTable, Any]:
    """Audio frames keyed ``(segment id, soundfont, view)`` for the fold of ``experiment``
    (training segments in every training soundfont, validation / test in the evaluation
    soundfont; view 0 = clean, 1..``views`` = augmented), and the encoder's ``audio`` block
    (soundfonts, evaluation soundfont, robustness views) that the fusion batches follow."""
    data = experiment.data
    enc_config = ExperimentConfig.resolve({
        "model": encoder, "seed": experiment.seed,
        "data": {**_fold_keys(data), "max_train_segments": data.max_train_segments,
                 "tiers": ["T1", "T4"] if views else ["T1"]},
        "train": {"lambda_invariance": 1.0 if views else 0.0}}, "model.audio_encoder")
    spec = enc_config.model_spec()
    ckpt = checkpoint_path(checkpoint, data.fold, experiment.seed, "audio_checkpoint")
    subsets = data.max_train_segments is not None or spec.audio.max_eval_segments is not None
    fields = {"encoder": enc_config.model, "checkpoint": _file_hash(ckpt), "split": data.split, "fold": data.fold,
              "views": views, "max_train_segments": data.max_train_segments,
              "seed": experiment.seed if subsets else None, **_input_keys(data)}
    module = AudioDataModule(enc_config, progress=progress, warn=warn)

    def compute() -> FrameTable:
        module.setup()
        model = get_model(encoder["name"]).build(spec, module.input_dim, checkpoint_labels(ckpt))
        load_encoder_weights(model, ckpt, encoder["name"], "audio_checkpoint", announce=warn)
        tables = {**module.train_set.frames, **module.val_set.frames}
        return FrameTable.from_arrays(encode_hidden(model, tables, module.layer, progress))

    return cached_table("audio", encoder["name"], fields, compute, warn), spec.audio


# --- symbolic --------------------------------------------------------------------------
def score_items(data) -> dict[str, Any]:
    """segment id -> the SymbolicItem of its score MIDI (PercePiano's ``score_midi/``)."""
    items = {}
    for seg in data.segments:
        rel = seg.score_midi(Path(".")).as_posix()
        items[seg.segment_id] = SymbolicItem(f"score:{Path(rel).stem}", PERCEPIANO, rel, 0.0, None, seg.score_key,
                                             seg.piece, "score")
    return items


def symbolic_frames(encoder: dict[str, Any], checkpoint: str | None, experiment, scores: bool, progress=None,
                    warn=print, only: frozenset[str] | None = None) -> FrameTable:
    """Symbolic frames of every PercePiano performance (key: segment id) and, with
    ``scores``, of every score MIDI (key: ``score:<file stem>``); ``only``: of these
    segment ids alone (exports of a subset)."""
    entry = get_model(encoder["name"])
    data = experiment.data
    enc_config = ExperimentConfig.resolve({"model": encoder, "seed": experiment.seed, "data": _fold_keys(data)},
                                          "model.symbolic_encoder")
    ckpt = checkpoint_path(checkpoint, data.fold, experiment.seed, "symbolic_checkpoint")
    if entry.input_kind == "notes":  # FusionConfig refuses a score for these
        return _note_frames(entry, enc_config, ckpt, progress, warn, only)
    data_module = DATA_MODULES[entry.input_kind]
    stores = [corpus_store(data_module.kind, PERCEPIANO)]
    if scores:
        items = list({i.item_id: i for i in score_items(percepiano_data()).values()}.values())
        stores.append(build_store(data_module.kind, items, source_roots((PERCEPIANO,)), "percepiano-scores",
                                  warn=warn, progress=progress is not False))
    fields = {"encoder": enc_config.model, "checkpoint": _file_hash(ckpt), "scores": scores,
              "stores": [s.key for s in stores], "only": _subset_key(only)}

    def compute() -> FrameTable:
        model = entry.build(enc_config.model_spec(), input_dim_of(data_module.kind), checkpoint_labels(ckpt))
        load_encoder_weights(model, ckpt, encoder["name"], "symbolic_checkpoint", announce=warn)
        zeros = (0.0,)  # labels are not read by the encoder
        arrays = {}
        collate = collate_for(data_module.kind, data_module.edge_names)
        for store in stores:
            metas = [ItemMeta(i, zeros, zeros, -1, labelled=True) for i in store.item_ids
                     if only is None or i in only or i.startswith("score:")]
            loader = torch.utils.data.DataLoader(SymbolicDataset(store, metas), batch_size=ENCODE_BATCH,
                                                 collate_fn=collate)
            arrays.update(_encode_all(model, ((b, b.segment_ids) for b in loader), len(loader), progress,
                                      data_module.kind))
        return FrameTable.from_arrays(arrays)

    return cached_table("symbolic", encoder["name"], fields, compute, warn)


def _subset_key(only: frozenset[str] | None) -> str | None:
    return None if only is None else hashlib.sha256("|".join(sorted(only)).encode()).hexdigest()[:16]


def _note_frames(entry, enc_config, ckpt: Path | None, progress, warn,
                 only: frozenset[str] | None = None) -> FrameTable:
    """Readout frames of a HAN-family model over the score-aligned note features of the fold
    (their normalisation is fitted on the fold's training set, so the key names the fold)."""
    data = enc_config.data
    feature_set = data.feature_set
    fields = {"encoder": enc_config.model, "checkpoint": _file_hash(ckpt), "split": data.split, "fold": data.fold,
              "feature_set": feature_set, "only": _subset_key(only), **_input_keys(data)}

    def compute() -> FrameTable:
        sets = percepiano(data.labels).note_datasets(data.split, data.fold, feature_set, data.pieces,
                                                     data.allow_piece_leakage)[:3]
        model = entry.build(enc_config.model_spec(), sets[0].input_dim, checkpoint_labels(ckpt))
        load_encoder_weights(model, ckpt, entry.name, "symbolic_checkpoint", announce=warn)
        arrays = {}
        for dataset in sets:
            if only is not None:
                dataset = torch.utils.data.Subset(dataset, [i for i, s in enumerate(dataset.segment_ids) if s in only])
            loader = torch.utils.data.DataLoader(dataset, batch_size=ENCODE_BATCH, collate_fn=collate_notes)
            arrays.update(_encode_all(model, ((b, b.segment_ids) for b in loader), len(loader), progress, "notes"))
        return FrameTable.from_arrays(arrays)

    return cached_table("symbolic", entry.name, fields, compute, warn)
