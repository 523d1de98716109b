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

from pianoeval.config import load_yaml
from pianoeval.data.frames import FrameTable, write_frames
from pianoeval.errors import ConfigError
from pianoeval.experiment import ExperimentConfig
from pianoeval.fusion.frames import checkpoint_labels, encode_hidden, load_encoder_weights, symbolic_frames
from pianoeval.models.fusion import SYMBOLIC_KINDS
from pianoeval.models.registry import get_model, list_models

EXPORTABLE_KINDS = (*SYMBOLIC_KINDS, "audio")


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


def exportable_models() -> list[str]:
    return [n for n in list_models() if get_model(n).input_kind in EXPORTABLE_KINDS]


def _run_model_pt(checkpoint: str) -> Path:
    path = Path(checkpoint)
    path = path / "model.pt" if path.is_dir() else path
    if not path.is_file():
        raise ConfigError(f"--checkpoint: {path} does not exist; name a training run's folder (it holds model.pt)")
    return path


def export_config(model: str, checkpoint: str | None, overrides: Mapping[str, Any] | None = None,
                  warn=print) -> tuple[ExperimentConfig, Path | None]:
    """The encoder's run config (a checkpoint's ``resolved.yaml``, else the model's defaults,
    then ``overrides``) and the weights to load; a model without frames is a ConfigError."""
    entry = get_model(model, "--model")
    if entry.input_kind not in EXPORTABLE_KINDS:
        raise ConfigError(f"--model: {model} reads {entry.input_kind} input and makes no frames of its own; "
                          f"export one of {', '.join(exportable_models())}")
    weights = _run_model_pt(checkpoint) if checkpoint else None
    resolved = weights.parent / "resolved.yaml" if weights is not None else None
    if resolved is not None and resolved.is_file():
        raw = load_yaml(resolved)
        raw.pop("provenance", None)
        made = (raw.get("model") or {}).get("name")
        if made != model:
            raise ConfigError(f"--checkpoint: {weights} holds a {made!r} model, not {model!r}; use --model {made}")
        config = ExperimentConfig.resolve(raw, str(resolved))
    else:
        config = ExperimentConfig.resolve({"model": {"name": model}}, "--model")
    config = config.with_overrides(overrides) if overrides else config
    if weights is None:
        pretrained = config.model.get("pretrained") not in (None, False) or config.model.get("backbone") is not None
        what = "its config's pre-trained weights where it names them, random init elsewhere" if pretrained \
            else "random-init weights"
        warn(f"[export] {model}: no --checkpoint: {what} (seed {config.seed}); frames of an encoder not trained "
             f"on PercePiano")
    elif not (resolved and resolved.is_file()):
        warn(f"[export] {weights}: no resolved.yaml beside it; the weights must fit {model}'s default config")
    return config, weights


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
    from pianoeval.audio.features import AudioItem, Frontend, build_mels
    from pianoeval.audio.hidden_cache import build_hidden
    from pianoeval.data import load_percepiano

    spec = config.model_spec()
    source = spec.backbone_source()
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
    from pianoeval.data import load_percepiano

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
