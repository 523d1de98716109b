"""The model registry: every model variant is a name -> (config class, builder, defaults).

The trainer never branches on model names: it asks the registry for the entry,
validates ``model:`` against the entry's config class (with the variant's
defaults filled in) and calls ``entry.build``. Variants are listed explicitly
by each model module in a ``VARIANTS`` tuple and collected here, by name, with
no import side effects. ``tests/models/test_registry.py`` runs every registered
name and every spec under ``search_spaces/`` and ``ablations/`` forward on a real
batch of two, and checks that every trained model is used by some spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Literal, Mapping

from pianoeval.config import StrictModel, validate
from pianoeval.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    """One registered model variant.

    Attributes:
        name: the registry name used in YAML (``model: {name: han}``).
        config_cls: the pydantic config of the model family.
        build: ``build(config, input_dim, num_labels) -> nn.Module``; the module's
            ``forward(batch)`` returns a ``ModelOutput``. For ``fit="closed_form"``
            it returns a ``pianoeval.models.reference.ReferencePredictor`` instead.
        input_kind: which data pipeline feeds it (``"notes"`` for the HAN family,
            ``"labels"`` for predictors that read only the training labels).
        defaults: this variant's values for ``config_cls`` fields.
        data_defaults: values for ``data:`` keys the user left unset (e.g. the
            feature set the variant was defined on).
        required_data: ``data:`` keys the variant cannot run without, each with a hint
            (what to give it); ``ExperimentConfig.require_inputs`` refuses a config that
            leaves one unset, once every override is in.
        description: one line for listings and reports.
        fit: how ``train_run`` fits it: ``gradient`` (Lightning epochs on the module) or
            ``closed_form`` (one ``fit`` on the training items, seconds, no epochs).
    """

    name: str
    config_cls: type[StrictModel]
    build: Callable[[Any, int, int], Any]
    input_kind: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    data_defaults: Mapping[str, Any] = field(default_factory=dict)
    required_data: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    fit: Literal["gradient", "closed_form"] = "gradient"

    def make_config(self, overrides: Mapping[str, Any], source: str = "<config>") -> StrictModel:
        """The variant's config: class defaults <- variant defaults <- overrides."""
        values = {**self.defaults, **{k: v for k, v in overrides.items() if k != "name"}}
        return validate(self.config_cls, values, source, prefix="model")


@lru_cache(maxsize=1)
def _table() -> dict[str, ModelEntry]:
    # Explicit list of model modules; adding a family means adding it here.
    from pianoeval.models import audio, frames, fusion, han, reference, symbolic

    table: dict[str, ModelEntry] = {}
    for module in (han, symbolic, audio, fusion, frames, reference):
        for entry in module.VARIANTS:
            if entry.name in table:
                raise RuntimeError(f"model name registered twice: {entry.name}")
            table[entry.name] = entry
    return table


def list_models() -> list[str]:
    """All registered model names, sorted."""
    return sorted(_table())


def get_model(name: str, source: str = "<config>") -> ModelEntry:
    """The entry for ``name``; an unknown name is a ConfigError listing the known ones."""
    table = _table()
    if name not in table:
        raise ConfigError(
            f"{source}: model.name: unknown model {name!r} (available: {', '.join(sorted(table))})"
        )
    return table[name]
