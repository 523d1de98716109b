"""Export a pianoeval encoder's frames for every PercePiano segment as a frames file.

    export_frames("note_sa", Path("frames.pt"))                        # random-init encoder (said so)
    export_frames("han", Path("frames.pt"), checkpoint="results/runs/<run>")   # a trained run's weights
    export_frames("s3_continuous", Path("frames.pt"), overrides={"model.pretrained": True})

The frames are what the encoder hands to its pooling (``encode(batch) -> (frames, mask)``),
computed by the same code and cache as the fusion track's frozen-encoder frames
(``pianoeval.fusion.frames``), and written in the frames format (``pianoeval.data.frames``:
one ``.pt`` dict ``{segment key: float16 tensor [T, D]}``), which ``data.frames`` reads:

* the HAN family: the readout frames (``note_sa``: one per note; ``note_beat``: one per
  beat; ``han``: one per measure); the note features are normalised with the training
  statistics of the run's split and fold (``data.split`` / ``data.fold``, performer 0 by
  default);
* the symbolic encoders (S1 REMI tokens, S2 / S2H graphs, S3 curves): the encoder's frames
  of the performance MIDI;
* the audio models: hidden state ``layer`` of the backbone (``layer=None``: the encoder's
  own output, adapters included) of each segment rendered with ``audio.eval_soundfont``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from pianoeval.audio.features import AudioItem, Frontend, build_mels
from pianoeval.audio.hidden_cache import build_hidden
from pianoeval.audio.source import source_of
from pianoeval.data.dataset import load_percepiano
from pianoeval.data.frames import FrameTable, write_frames
from pianoeval.errors import ConfigError
from pianoeval.experiment import ExperimentConfig
from pianoeval.fusion.exportable import export_config
from pianoeval.fusion.frames import checkpoint_labels, encode_hidden, load_encoder_weights, symbolic_frames
from pianoeval.models.registry import get_model


@dataclass
class ExportSummary:
    out: Path
    segments: int
    width: int
    frames: int
    seconds: float

    def line(self) -> str:
        return (f"[export] {self.segments} segments, {self.width} wide, {self.frames:,} frames "
                f"({self.frames / max(self.segments, 1):.0f} per segment) in {self.seconds:.0f} s -> {self.out}")


def select_segments(segments, limit: int | None, keys: list[str] | None) -> list[str]:
    """The ids of ``segments`` to export: all; the given ``keys`` (each must exist); or about
    ``limit`` of them as whole music groups (every performance of a score segment, so a
    small export still has same-music pairs to rank), groups in a seeded order."""
    ids = sorted(s.segment_id for s in segments)
    if keys:
        unknown = [k for k in keys if k not in set(ids)]
        if unknown:
            raise ConfigError(f"--keys: {unknown[0]!r} is not a PercePiano segment key ({len(unknown)} unknown)")
        ids = sorted(set(keys))
    if limit is None or limit >= len(ids):
        return ids
    groups: dict[str, list[str]] = {}
    for seg in segments:
        if seg.segment_id in ids:
            groups.setdefault(seg.score_key, []).append(seg.segment_id)
    chosen: list[str] = []
    for g in np.random.default_rng(0).permutation(sorted(groups)):
        if len(chosen) >= limit:
            break
        chosen += groups[str(g)]
    return sorted(chosen)


def _audio_table(config: ExperimentConfig, weights: Path | None, ids: list[str], layer: int | None,
                 progress, warn) -> FrameTable:
    spec = config.model_spec()
    source = source_of(spec)
    backbone = source.spec()
    if layer is not None and not 0 <= layer <= backbone.num_layers:
        raise ConfigError(f"--layer: {layer} is outside the backbone's hidden states 0-{backbone.num_layers}")
    if layer is not None and weights is not None:
        raise ConfigError("--layer reads the frozen backbone, which a training run does not change; drop --checkpoint "
                          "(or drop --layer for the trained encoder's own frames)")
    data = load_percepiano(warn=lambda msg: None)
    audio = spec.audio
    mels = build_mels([AudioItem(sid, data.by_id[sid].performance_midi(data.root)) for sid in ids],
                      [audio.eval_soundfont], 0, Frontend.of(backbone), audio.augment, audio.max_seconds,
                      audio.workers, progress, warn, label="export")
    start = layer if layer is not None else spec.cache_layer(backbone)
    keys = [(sid, audio.eval_soundfont, 0) for sid in ids if (sid, audio.eval_soundfont, 0) in mels]
    hidden = ({k: mels.load(*k).T for k in keys} if start == 0
              else build_hidden(source, start, mels, keys, progress=progress, warn=warn, label="export"))
    if layer is not None:
        return FrameTable.from_arrays({k[0]: v for k, v in hidden.items()})
    model = get_model(config.model_name).build(spec, 0, checkpoint_labels(weights))  # heads as the run trained them
    load_encoder_weights(model, weights, config.model_name, "checkpoint", announce=warn)
    return FrameTable.from_arrays(encode_hidden(model, hidden, start, progress, name=lambda key: key[0]))


def export_frames(model: str, out: Path, checkpoint: str | None = None, overrides: Mapping[str, Any] | None = None,
                  limit: int | None = None, keys: list[str] | None = None, layer: int | None = None,
                  progress: bool | None = None, warn=print) -> ExportSummary:
    """Write ``model``'s frames of every (or the selected) PercePiano segment to ``out``."""
    out = Path(out)
    if out.suffix != ".pt":
        raise ConfigError(f"--out: {out} must end in .pt (a torch.save dict {{key: tensor [T, D]}})")
    config, weights = export_config(model, checkpoint, overrides, warn)
    if layer is not None and get_model(model).input_kind != "audio":
        raise ConfigError(f"--layer: backbone hidden states exist for the audio models only, not {model}")
    ids = select_segments(load_percepiano(warn=lambda msg: None).segments, limit, keys)
    started = time.time()
    torch.manual_seed(config.seed)  # random-init encoders: the same frames for the same seed
    if get_model(model).input_kind == "audio":
        table = _audio_table(config, weights, ids, layer, progress, warn)
    else:
        table = symbolic_frames(config.model, str(weights) if weights else None, config, scores=False,
                                progress=progress, warn=warn, only=frozenset(ids))
    arrays = {k: table.get(k) for k in ids if k in table}
    if not arrays:
        raise ConfigError(f"--model {model}: no segment produced frames (see the skipped items above)")
    if len(arrays) < len(ids):
        warn(f"[export] {len(ids) - len(arrays)} of {len(ids)} segments have no frames (skipped while preparing "
             f"their input, see above)")
    write_frames(out, arrays)
    return ExportSummary(out, len(arrays), table.width, sum(a.shape[0] for a in arrays.values()),
                         time.time() - started)
