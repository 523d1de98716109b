"""The model registry: every model variant is a name -> (config class, builder, data module, defaults).

The trainer never branches on model names: it asks the registry for the entry,
validates ``model:`` against the entry's config class (with the variant's
defaults filled in), calls ``entry.build`` and builds the data module the entry names.
Variants are listed explicitly by each family's config module in a ``VARIANTS`` tuple
(``pianoeval.models.configs``) and collected here, by name, with no import side effects;
``tests/models/test_registry.py`` runs every registered name and every spec under
``search_spaces/`` and ``ablations/`` forward on a real batch of two, and checks that every
trained model is used by some spec.

Lookups are lazy: the config modules are torch-free and an entry names its builder and
data module by import path, so resolving a config (and reporting its errors) imports no
model code, torch, Lightning or the audio stack. ``tests/models/test_registry_lazy.py`` checks
that every path resolves and that resolving every registered config imports none of them.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from pianoeval.models.configs import audio, frames, fusion, han, reference, symbolic
from pianoeval.models.entry import ModelEntry, find

__all__ = ["ModelEntry", "get_model", "list_models"]


@lru_cache(maxsize=1)
def _table() -> dict[str, ModelEntry]:
    # Explicit list of model families; adding a family means adding it here.
    table: dict[str, ModelEntry] = {}
    for family in (han, symbolic, audio, fusion, frames, reference):
        for entry in family.VARIANTS:
            if entry.name in table:
                raise RuntimeError(f"model name registered twice: {entry.name}")
            table[entry.name] = entry
    for name, entry in table.items():
        if entry.encoders:  # a model composed of registered encoders resolves them in this table
            table[name] = replace(entry, models=table)
    return table


def list_models() -> list[str]:
    """All registered model names, sorted."""
    return sorted(_table())


def get_model(name: str, source: str = "<config>") -> ModelEntry:
    """The entry for ``name``; an unknown name is a ConfigError listing the known ones."""
    return find(_table(), name, source)
