"""Which registered encoders make frames, and the run config an export of one reads.

Torch-free on purpose: ``runners/export_frames.py`` checks ``--model``, ``--checkpoint`` and
``--set`` with ``export_config`` before the encoders load (``pianoeval.fusion.export``), so a
typo is a one-line error in well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from pianoeval.config import load_yaml
from pianoeval.errors import ConfigError
from pianoeval.experiment import ExperimentConfig
from pianoeval.models.configs.fusion import SYMBOLIC_KINDS
from pianoeval.models.registry import get_model, list_models

EXPORTABLE_KINDS = (*SYMBOLIC_KINDS, "audio")


def exportable_models() -> list[str]:
    return [n for n in list_models() if get_model(n).input_kind in EXPORTABLE_KINDS]


def _run_model_pt(checkpoint: str) -> Path:
    path = Path(checkpoint)
    path = path / "model.pt" if path.is_dir() else path
    if not path.is_file():
        raise ConfigError(f"--checkpoint: {path} does not exist; name a training run's folder (it holds model.pt)")
    return path.resolve()  # from the working directory (a relative *_checkpoint setting is read from the repository)


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
