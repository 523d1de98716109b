"""``ModelEntry``: what the registry knows of one model variant, without importing its code.

An entry names its builder and its data module by import path (``"pianoeval.models.han:build_han"``);
they are imported when a run builds the model or its data, never to validate a config. So the
registry, the config classes (``pianoeval.models.configs``) and ``ExperimentConfig`` import no torch,
and a config error is reported in well under a second.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from pianoeval.config import StrictModel, validate
from pianoeval.errors import ConfigError


def resolve_path(path: str) -> Any:
    """The object an import path ``"package.module:name"`` names."""
    module, _, name = path.partition(":")
    # lazy: the model and data code (torch, Lightning, the audio stack) is imported when a run
    # needs it; importlib, because the registry only knows the path (no import cycle is dodged)
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class ModelEntry:
    """One registered model variant.

    Attributes:
        name: the registry name used in YAML (``model: {name: han}``).
        config_cls: the pydantic config of the model family (torch-free,
            ``pianoeval.models.configs``).
        builder: import path of ``build(config, input_dim, num_labels) -> nn.Module``; the
            module's ``forward(batch)`` returns a ``ModelOutput``. For ``fit="closed_form"`` it
            returns a ``pianoeval.models.reference.ReferencePredictor`` instead.
        input_kind: which data pipeline feeds it (``"notes"`` for the HAN family,
            ``"labels"`` for predictors that read only the training labels).
        datamodule: import path of the LightningDataModule of ``input_kind``; it is built
            from the run config (``datamodule_class()(config)``).
        tiers: the data tiers (``data.tiers``) that data module provides, its
            ``SUPPORTED_TIERS`` (``tests/models/test_registry.py`` checks that they agree).
        defaults: this variant's values for ``config_cls`` fields.
        data_defaults: values for ``data:`` keys the user left unset (e.g. the
            feature set the variant was defined on).
        required_data: ``data:`` keys the variant cannot run without, each with a hint
            (what to give it); ``ExperimentConfig.require_inputs`` refuses a config that
            leaves one unset, once every override is in.
        description: one line for listings and reports.
        fit: how ``train_run`` fits it: ``gradient`` (Lightning epochs on the module) or
            ``closed_form`` (one ``fit`` on the training items, seconds, no epochs).
        encoders: config fields that hold another registered model's config (fusion's
            ``audio_encoder: {name: a1_lora}``), each with the input kinds it accepts; they are
            resolved (every default filled in) before the config is validated.
        models: the registry's table, given to entries with ``encoders`` when the registry
            builds it (``pianoeval.models.registry``).
    """

    name: str
    config_cls: type[StrictModel]
    builder: str
    input_kind: str
    datamodule: str
    tiers: tuple[str, ...] = ("T1",)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    data_defaults: Mapping[str, Any] = field(default_factory=dict)
    required_data: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    fit: Literal["gradient", "closed_form"] = "gradient"
    encoders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    models: Mapping[str, "ModelEntry"] | None = field(default=None, repr=False, compare=False)

    def make_config(self, overrides: Mapping[str, Any], source: str = "<config>") -> StrictModel:
        """The variant's config: class defaults <- variant defaults <- overrides."""
        values = {**self.defaults, **{k: v for k, v in overrides.items() if k != "name"}}
        for key, kinds in self.encoders.items():
            raw = values.get(key, self.config_cls.model_fields[key].default)
            values[key] = self._resolved_encoder(raw, key, kinds, source)
        return validate(self.config_cls, values, source, prefix="model")

    def build(self, config: StrictModel, input_dim: Any, num_labels: int) -> Any:
        """The model (or closed-form predictor) for a validated ``config``."""
        return resolve_path(self.builder)(config, input_dim, num_labels)

    def datamodule_class(self) -> type:
        """The LightningDataModule class that feeds this model."""
        return resolve_path(self.datamodule)

    def _resolved_encoder(self, raw: Any, key: str, kinds: tuple[str, ...], source: str) -> Any:
        """An encoder's full config (every default filled in), checked to be of the right track."""
        where = f"{source}: model.{key}"
        if not isinstance(raw, Mapping) or "name" not in raw:
            example = "a1_lora" if "audio" in kinds else "s2_gnn"
            raise ConfigError(f"{where}: needs a registered model name, e.g. {{name: {example}}}")
        if self.models is None:
            raise RuntimeError(f"model {self.name}: {key} names a registered model; take the entry from "
                               "pianoeval.models.registry.get_model, which resolves it")
        entry = find(self.models, str(raw["name"]), where)
        if entry.input_kind not in kinds:
            fitting = [name for name in sorted(self.models) if self.models[name].input_kind in kinds]
            raise ConfigError(f"{where}: {entry.name} reads {entry.input_kind} input; use one of {', '.join(fitting)}")
        return {"name": entry.name, **entry.make_config(raw, where).model_dump(mode="json")}


def find(models: Mapping[str, ModelEntry], name: str, source: str = "<config>") -> ModelEntry:
    """``models[name]``; an unknown name is a ConfigError listing the known ones."""
    if name not in models:
        raise ConfigError(f"{source}: model.name: unknown model {name!r} (available: {', '.join(sorted(models))})")
    return models[name]
