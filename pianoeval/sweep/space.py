"""Search spaces: ``search_spaces/<name>.yaml`` -> a validated ``SearchSpace``.

A space file::

    description: the PercePiano HAN
    extends: smoke                      # optional: start from another space
    model: {name: han}                  # a registered model and its fixed config
    data: {split: performer, fold: 0}   # fixed data config (feature set: the model's default)
    train: {optimizer: adam}            # fixed training config
    seed: 7
    parameters:                         # dotted config keys -> distributions
      train.lr: {distribution: loguniform, low: 1.0e-5, high: 1.0e-3}
      model.hidden_size: {distribution: categorical, values: [64, 128, 256]}
      model.note_layers: {distribution: int, low: 1, high: 3}
      model.dropout: {distribution: uniform, low: 0.0, high: 0.4}
      data.batch_sampler: {distribution: categorical, values: [random, grouped]}
      train.lambda_rank:                # exists only when its condition holds
        {distribution: loguniform, low: 0.01, high: 1.0, when: {data.batch_sampler: grouped}}
    objective: {metric: val/pairwise_acc, mode: max, record: [val/r2]}
    sampler: {name: tpe, seed: 0}       # tpe | random | cmaes | gp | grid
    budget: {max_epochs: 20, grace_period: 2, reduction_factor: 3, num_samples: 32}
    resources: {cpu: 1, gpu: 0.25}      # per trial; fractional GPUs pack trials

Every entry becomes a typed distribution object once, at load time
(``FloatRange``, ``IntRange``, ``Categorical``); bad input is a one-line
``ConfigError`` naming the file and the key, e.g. ``search_spaces/han.yaml:
parameters.train.lr: loguniform needs low > 0, got 0.0``. The reference for every
key is docs/search_spaces.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pydantic

from pianoeval.config import StrictModel, deep_merge, find_spec, load_yaml, spec_names, validate
from pianoeval.errors import ConfigError
from pianoeval.experiment import ExperimentConfig, monitor_mode
from pianoeval.paths import REPO_ROOT

SPACES_DIR = REPO_ROOT / "search_spaces"


# --- typed distributions ---------------------------------------------------------------
@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    log: bool = False

    def suggest(self, trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def representative(self) -> float:
        return self.low


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    step: int = 1
    log: bool = False

    def suggest(self, trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def representative(self) -> int:
        return self.low

    def grid(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))


@dataclass(frozen=True)
class Categorical:
    values: tuple

    def suggest(self, trial, name: str):
        return trial.suggest_categorical(name, list(self.values))

    def representative(self):
        return self.values[0]

    def grid(self) -> list:
        return list(self.values)


Distribution = FloatRange | IntRange | Categorical


class ParameterSpec(StrictModel):
    """One entry of ``parameters:``; see the module docstring and docs/search_spaces.md."""

    distribution: Literal["uniform", "loguniform", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    values: list[Any] | None = None
    when: dict[str, Any] | None = None

    @pydantic.model_validator(mode="after")
    def _check(self) -> "ParameterSpec":
        kind = self.distribution
        if kind == "categorical":
            if not self.values:
                raise ValueError("categorical needs a non-empty 'values' list")
            extra = [k for k in ("low", "high", "step") if getattr(self, k) is not None]
            if extra or self.log:
                raise ValueError(f"categorical takes 'values' only, not {extra or ['log']}")
            return self
        if self.values is not None:
            raise ValueError(f"{kind} takes low/high, not 'values' (use distribution: categorical)")
        if self.low is None or self.high is None:
            raise ValueError(f"{kind} needs both 'low' and 'high'")
        if self.low > self.high:
            raise ValueError(f"low > high ({self.low} > {self.high})")
        if kind == "loguniform" and self.low <= 0:
            raise ValueError(f"loguniform needs low > 0, got {self.low}")
        if kind == "int":
            if self.low != int(self.low) or self.high != int(self.high):
                raise ValueError(f"int needs integer bounds, got {self.low}..{self.high}")
            if self.step is not None and (self.step <= 0 or self.step != int(self.step)):
                raise ValueError(f"int needs a positive integer step, got {self.step}")
            if self.log and (self.low < 1 or (self.step or 1) != 1):
                raise ValueError("int with log: true needs low >= 1 and step 1")
        elif self.step is not None:
            raise ValueError(f"{kind} does not take 'step' (int does)")
        if kind == "uniform" and self.log:
            raise ValueError("uniform with log: true is loguniform; write distribution: loguniform")
        return self

    def to_distribution(self) -> Distribution:
        if self.distribution == "categorical":
            return Categorical(tuple(self.values))
        if self.distribution == "int":
            return IntRange(int(self.low), int(self.high), int(self.step or 1), self.log)
        return FloatRange(float(self.low), float(self.high), self.distribution == "loguniform")


class ObjectiveSpec(StrictModel):
    metric: str = "val/pairwise_acc"
    mode: Literal["max", "min"] | None = None
    record: list[str] = []

    @pydantic.field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        monitor_mode(value)
        return value

    @pydantic.field_validator("record")
    @classmethod
    def _record(cls, values: list[str]) -> list[str]:
        for value in values:
            if not value.startswith(("diag/", "grad_norm/")):
                monitor_mode(value)
        return values


class SamplerSpec(StrictModel):
    name: Literal["tpe", "random", "cmaes", "gp", "grid"] = "tpe"
    seed: int = 0


class BudgetSpec(StrictModel):
    max_epochs: int = pydantic.Field(10, ge=1)
    grace_period: int = pydantic.Field(1, ge=1)
    reduction_factor: float = pydantic.Field(3.0, gt=1)
    num_samples: int = pydantic.Field(8, ge=1)

    @pydantic.model_validator(mode="after")
    def _grace(self) -> "BudgetSpec":
        if self.grace_period > self.max_epochs:
            raise ValueError(f"grace_period {self.grace_period} > max_epochs {self.max_epochs}")
        return self


class ResourcesSpec(StrictModel):
    cpu: float = pydantic.Field(1.0, gt=0)
    gpu: float = pydantic.Field(0.0, ge=0)


class SpaceFile(StrictModel):
    """The keys a space file may have (after ``extends`` is merged)."""

    description: str = ""
    extends: str | None = None
    model: dict[str, Any]
    data: dict[str, Any] = {}
    train: dict[str, Any] = {}
    seed: int = 7
    parameters: dict[str, ParameterSpec | None] = {}
    objective: ObjectiveSpec = ObjectiveSpec()
    sampler: SamplerSpec = SamplerSpec()
    budget: BudgetSpec = BudgetSpec()
    resources: ResourcesSpec = ResourcesSpec()


@dataclass(frozen=True)
class Parameter:
    key: str  # dotted config key, e.g. "train.lr"
    distribution: Distribution
    when: dict[str, Any] | None = None

    def active(self, chosen: dict[str, Any]) -> bool:
        """Whether the condition holds for the values chosen so far."""
        if not self.when:
            return True
        for parent, wanted in self.when.items():
            allowed = wanted if isinstance(wanted, list) else [wanted]
            if parent not in chosen or chosen[parent] not in allowed:
                return False
        return True


@dataclass(frozen=True)
class SearchSpace:
    name: str
    path: Path
    description: str
    base: ExperimentConfig  # fixed config; budget.max_epochs already applied
    parameters: tuple[Parameter, ...]  # parents before the parameters conditioned on them
    metric: str
    mode: str
    record: tuple[str, ...]
    sampler: SamplerSpec
    budget: BudgetSpec
    resources: ResourcesSpec

    def with_overrides(self, overrides: dict[str, Any], source: str = "--set") -> "SearchSpace":
        """Apply ``--set`` overrides: ``budget.*``, ``sampler.*``, ``resources.*``,
        ``objective.*`` change the sweep; other keys change the fixed base config."""
        from dataclasses import replace

        sweep_sections = {"budget": BudgetSpec, "sampler": SamplerSpec, "resources": ResourcesSpec}
        changes: dict[str, Any] = {}
        edited: dict[str, dict[str, Any]] = {}
        config_overrides = {}
        for key, value in overrides.items():
            section, _, field = key.partition(".")
            if section in sweep_sections:
                edited.setdefault(section, getattr(self, section).model_dump())[field] = value
            elif key == "objective.metric":
                monitor_mode(value)
                changes["metric"], changes["mode"] = value, monitor_mode(value)
            else:
                config_overrides[key] = value
        for section, values in edited.items():  # validated together: max_epochs and grace_period agree
            changes[section] = validate(sweep_sections[section], values, source, prefix=section)
        base = self.base.with_overrides(config_overrides, source) if config_overrides else self.base
        budget = changes.get("budget", self.budget)
        base = base.with_overrides({"train.max_epochs": budget.max_epochs}, source)
        return replace(self, base=base, **changes)


def available_spaces() -> list[str]:
    return spec_names(SPACES_DIR)


def _space_path(name_or_path: str | Path) -> Path:
    return find_spec(name_or_path, SPACES_DIR, "search space", prefix="--space ")


def _raw_with_parents(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in seen:
        raise ConfigError(f"{path}: extends: cycle ({' -> '.join(p.stem for p in (*seen, path))})")
    raw = load_yaml(path)
    parent = raw.get("extends")
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: extends: expected a space name, got {parent!r}")
    try:
        parent_path = _space_path(parent)
    except ConfigError as err:
        raise ConfigError(f"{path}: extends: {err}") from None
    merged = _raw_with_parents(parent_path, (*seen, path))
    merged.pop("description", None)
    child = dict(raw)
    params = {**(merged.pop("parameters", None) or {}), **(child.pop("parameters", None) or {})}
    merged = deep_merge(merged, child)
    merged["parameters"] = params
    return merged


def load_space(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> SearchSpace:
    """Load, merge (``extends``), validate and resolve a search space."""
    path = _space_path(name_or_path)
    source = str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)
    spec = validate(SpaceFile, _raw_with_parents(path), source)
    base_raw = {"model": spec.model, "data": spec.data, "train": {**spec.train, "max_epochs": spec.budget.max_epochs},
                "seed": spec.seed}
    base = ExperimentConfig.resolve(base_raw, source)
    parameters = []
    for key, entry in spec.parameters.items():
        if entry is None:  # a child space removed a parent's parameter
            continue
        parameter = Parameter(key, entry.to_distribution(), entry.when)
        try:  # the key must be a real config key accepting this kind of value
            base.with_overrides({key: parameter.distribution.representative()}, source)
        except ConfigError as err:
            raise ConfigError(f"{source}: parameters.{key}: {str(err).split(': ', 2)[-1]}") from None
        parameters.append(parameter)
    ordered = _parents_first(parameters, source)
    mode = spec.objective.mode or monitor_mode(spec.objective.metric)
    if spec.sampler.name == "grid":
        floats = [p.key for p in ordered if isinstance(p.distribution, FloatRange)]
        if floats:
            raise ConfigError(f"{source}: sampler.name: grid needs categorical or int parameters, "
                              f"but {floats[0]} is continuous (use tpe, random, cmaes or gp)")
    space = SearchSpace(path.stem, path, spec.description, base, tuple(ordered), spec.objective.metric, mode,
                        tuple(spec.objective.record), spec.sampler, spec.budget, spec.resources)
    space = space.with_overrides(overrides, "--set") if overrides else space
    space.base.require_inputs(source)
    return space


def _parents_first(parameters: list[Parameter], source: str) -> list[Parameter]:
    by_key = {p.key: p for p in parameters}
    for p in parameters:
        for parent, wanted in (p.when or {}).items():
            if parent not in by_key:
                raise ConfigError(f"{source}: parameters.{p.key}.when: {parent!r} is not a parameter of this "
                                  f"space (parameters: {', '.join(by_key)})")
            dist = by_key[parent].distribution
            if isinstance(dist, Categorical):
                for value in wanted if isinstance(wanted, list) else [wanted]:
                    if value not in dist.values:
                        raise ConfigError(f"{source}: parameters.{p.key}.when: {parent} never takes {value!r} "
                                          f"(values: {list(dist.values)})")
    ordered, placed = [], set()
    pending = list(parameters)
    while pending:
        ready = [p for p in pending if all(parent in placed for parent in (p.when or {}))]
        if not ready:
            raise ConfigError(f"{source}: parameters: conditions form a cycle among {[p.key for p in pending]}")
        for p in ready:
            ordered.append(p)
            placed.add(p.key)
            pending.remove(p)
    return ordered


class DefineByRun:
    """Optuna define-by-run space: suggests each active parameter, parents first.

    A picklable object (Tune saves the searcher with the experiment, for ``--resume``)."""

    def __init__(self, parameters: tuple[Parameter, ...]):
        self.parameters = parameters

    def __call__(self, trial) -> None:
        chosen: dict[str, Any] = {}
        for p in self.parameters:
            if p.active(chosen):
                chosen[p.key] = p.distribution.suggest(trial, p.key)
        return None


def grid_size(space: SearchSpace) -> int:
    size = 1
    for p in space.parameters:
        size *= len(p.distribution.grid())
    return size
