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
    reference_baselines: [global_mean, music_mean]   # the default; [] for none

Reference baselines are closed-form predictors fitted on each fold the space judges after
the trials finish, beside them and never among them (``pianoeval.sweep.references``).

Every entry becomes a typed distribution object once, at load time
(``FloatRange``, ``IntRange``, ``Categorical``); bad input is a one-line
``ConfigError`` naming the file and the key, e.g. ``search_spaces/han.yaml:
parameters.train.lr: loguniform needs low > 0, got 0.0``. The reference for every
key is docs/search_spaces.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pydantic

from pianoeval.config import (Folds, StrictInt, StrictModel, deep_merge, find_spec, load_spec_yaml, load_yaml,
                              route_overrides, spec_names, validate)
from pianoeval.data.folds import folds_of_split
from pianoeval.errors import ConfigError
from pianoeval.experiment import DEFAULT_REFERENCES, ExperimentConfig, monitor_mode, reference_configs
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

    def edges(self) -> tuple:
        """The values to check at load: both ends of the range."""
        return (self.low, self.high)


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

    def edges(self) -> tuple:
        return (self.low, self.high)

    def grid(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))

    def takes(self, value) -> bool:
        """Whether a trial can sample ``value`` (a condition on this parameter can hold)."""
        return (isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high
                and (value - self.low) % self.step == 0)


@dataclass(frozen=True)
class Categorical:
    values: tuple

    def suggest(self, trial, name: str):
        return trial.suggest_categorical(name, list(self.values))

    def representative(self):
        return self.values[0]

    def edges(self) -> tuple:
        return self.values

    def grid(self) -> list:
        return list(self.values)

    def takes(self, value) -> bool:
        return value in self.values


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
            for i, value in enumerate(self.values):  # a repeat would be sampled twice as often (a grid: run twice)
                if value in self.values[:i]:
                    raise ValueError(f"{value!r} is listed twice in 'values'; list each value once")
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
            if value.startswith(("diag/", "grad_norm/")):
                if not value.partition("/")[2]:
                    raise ValueError(f"{value!r}: name the diagnostic, e.g. diag/logits_std or grad_norm/total")
            else:
                monitor_mode(value)
        return values


class SamplerSpec(StrictModel):
    name: Literal["tpe", "random", "cmaes", "gp", "grid"] = "tpe"
    seed: StrictInt = pydantic.Field(0, ge=0)


#: The space file's own keys a ``--set`` changes; any other key changes the base config.
SWEEP_KEYS = ("budget", "sampler", "resources", "objective", "reference_baselines")

RAY_RESOURCE_RESOLUTION = 1e-4  # Ray rounds resource amounts to 4 decimals


class BudgetSpec(StrictModel):
    """How much each trial may train. ``folds``: the folds a trial trains its config on (None:
    the base config's ``data.fold`` alone); with several, the trial's score is the mean over
    its finished folds, and ``fold_max_gap`` stops a trial after a fold when the mean of its
    finished folds is behind the incumbent's mean on the same folds by more than the gap
    (None: no fold-level pruning)."""

    max_epochs: int = pydantic.Field(10, ge=1)
    grace_period: int = pydantic.Field(1, ge=1)
    reduction_factor: float = pydantic.Field(3.0, gt=1)
    num_samples: int = pydantic.Field(8, ge=1)
    folds: Folds | None = None
    fold_max_gap: float | None = pydantic.Field(0.02, ge=0)

    @pydantic.model_validator(mode="after")
    def _grace(self) -> "BudgetSpec":
        if self.grace_period > self.max_epochs:
            raise ValueError(f"grace_period {self.grace_period} > max_epochs {self.max_epochs}")
        return self


class ResourcesSpec(StrictModel):
    """Ray resources of one trial (search spaces and ablations share it).

    ``cpu``: CPUs, also the trial's torch threads. ``gpu``: 0, a share of one GPU
    (0 < gpu <= 1; ``0.25`` packs four trials on each GPU) or a whole number of GPUs (Ray
    gives a trial a share of one GPU or whole GPUs, never 1.5). A share that does not
    divide 1 is allowed: ``0.3`` packs three trials per GPU and leaves a tenth of it idle
    (``packing``)."""

    cpu: float = pydantic.Field(1.0, gt=0)
    gpu: float = pydantic.Field(0.0, ge=0)

    @pydantic.field_validator("gpu")
    @classmethod
    def _share_or_whole(cls, value: float) -> float:
        if value > 1 and not float(value).is_integer():
            raise ValueError("more than one GPU per trial must be a whole number (2, 3, ...); "
                             "a share of one GPU is 0 < gpu <= 1")
        if 0 < value < RAY_RESOURCE_RESOLUTION:
            raise ValueError(f"below Ray's resource resolution {RAY_RESOURCE_RESOLUTION:g}")
        return value

    def packing(self) -> str:
        """How trials share GPUs, in words (empty without GPUs)."""
        if self.gpu == 0:
            return ""
        if self.gpu >= 1:
            if self.gpu == 1:
                return "one whole GPU per trial"
            return f"{self.gpu:g} whole GPUs per trial, of which its training uses one (no multi-GPU training)"
        per_gpu = math.floor(1 / self.gpu + 1e-9)
        idle = 1 - per_gpu * self.gpu
        note = f"; {self.gpu:g} does not divide 1: {idle:.2g} of each GPU stays idle" if idle > 1e-9 else ""
        return f"{per_gpu} trials per GPU{note}"


class SpaceFile(StrictModel):
    """The keys a space file may have (after ``extends`` is merged)."""

    description: str = ""
    extends: str | None = None
    model: dict[str, Any]
    data: dict[str, Any] = {}
    train: dict[str, Any] = {}
    seed: StrictInt = pydantic.Field(7, ge=0)
    parameters: dict[str, ParameterSpec | None] = {}
    objective: ObjectiveSpec = ObjectiveSpec()
    sampler: SamplerSpec = SamplerSpec()
    budget: BudgetSpec = BudgetSpec()
    resources: ResourcesSpec = ResourcesSpec()
    reference_baselines: list[str] = list(DEFAULT_REFERENCES)


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
    fixed_model: dict[str, Any] = None  # the model fields the space file fixes (every variant gets them)
    reference_baselines: tuple[str, ...] = DEFAULT_REFERENCES  # closed-form models fitted beside the trials

    @property
    def folds(self) -> tuple[int, ...]:
        """The folds each trial trains on (``budget.folds``, else the base config's fold)."""
        return tuple(self.budget.folds) if self.budget.folds else (self.base.data.fold,)

    @property
    def cross_validated(self) -> bool:
        return len(self.folds) > 1

    def references(self, source: str | None = None) -> dict[str, ExperimentConfig]:
        """Each reference baseline's run config on the base config's data (``reference_configs``);
        each fold of ``folds`` is fitted. ``source``: where the names came from, for errors."""
        return reference_configs(self.reference_baselines, self.base, source or spec_source(self.path),
                                 trained_fix="drop it from reference_baselines; to compare it, sweep or ablate it")

    def with_overrides(self, overrides: dict[str, Any], source: str = "--set") -> "SearchSpace":
        """Apply ``--set`` overrides: ``budget.*``, ``sampler.*``, ``resources.*``,
        ``objective.*``, ``reference_baselines`` change the sweep; other keys change the fixed
        base config."""
        from dataclasses import replace

        sweep_sections = {"budget": BudgetSpec, "sampler": SamplerSpec, "resources": ResourcesSpec}
        changes: dict[str, Any] = {}
        edited: dict[str, dict[str, Any]] = {}
        sweep_part, config_overrides = route_overrides(overrides, SWEEP_KEYS)
        for key, value in sweep_part.items():
            section, _, field = key.partition(".")
            if section in sweep_sections:
                edited.setdefault(section, getattr(self, section).model_dump())[field] = value
            elif key == "objective.metric":
                try:
                    changes["metric"], changes["mode"] = value, monitor_mode(value)
                except ValueError as err:
                    raise ConfigError(f"{source}: objective.metric: {err}") from None
            elif key == "objective.mode":
                if value not in ("max", "min"):
                    raise ConfigError(f"{source}: objective.mode: got {value!r}, expected max or min")
                changes["mode"] = value
            elif key == "objective.record":
                values = value if isinstance(value, list) else [value]
                validate(ObjectiveSpec, {"metric": self.metric, "record": values}, source, prefix="objective")
                changes["record"] = tuple(values)
            elif key == "reference_baselines":
                values = value if isinstance(value, list) else [value]
                if not all(isinstance(v, str) for v in values):
                    raise ConfigError(f"{source}: reference_baselines: expected a list of model names, got {value!r} "
                                      "(e.g. reference_baselines=[global_mean] or reference_baselines=[])")
                changes["reference_baselines"] = tuple(values)
            elif section == "reference_baselines":
                raise ConfigError(f"{source}: {key}: unknown key (give the whole list: reference_baselines=[...])")
        if "objective.mode" in overrides:  # an explicit mode wins over the metric's natural one
            changes["mode"] = overrides["objective.mode"]
        unknown = [k for k in overrides if k.startswith("objective.") and k not in
                   ("objective.metric", "objective.mode", "objective.record")]
        if unknown:
            raise ConfigError(f"{source}: {unknown[0]}: unknown key (objective keys: metric, mode, record)")
        for section, values in edited.items():  # validated together: max_epochs and grace_period agree
            changes[section] = validate(sweep_sections[section], values, source, prefix=section)
        base = (self.base.with_overrides(config_overrides, source, keep_model=self.fixed_model)
                if config_overrides else self.base)
        budget = changes.get("budget", self.budget)
        base = base.with_overrides({"train.max_epochs": budget.max_epochs}, source)
        if "objective.mode" in overrides:
            check_mode(changes.get("metric", self.metric), changes["mode"], source)
        return replace(self, base=base, **changes)


def check_mode(metric: str, mode: str, source: str) -> None:
    """An explicit ``objective.mode`` must be the metric's own direction (a loss minimised,
    R2 and accuracies maximised): the other one would make the sampler chase the worst trials."""
    natural = monitor_mode(metric)
    if mode != natural:
        raise ConfigError(f"{source}: objective.mode: {mode} for {metric}, which is {natural}imised; leave mode "
                          "out (it follows the metric) or set it to {natural}".replace("{natural}", natural))


def available_spaces() -> list[str]:
    return spec_names(SPACES_DIR)


def spec_source(path: Path) -> str:
    """A space file as errors name it: relative to the repository when inside it."""
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _space_path(name_or_path: str | Path) -> Path:
    return find_spec(name_or_path, SPACES_DIR, "search space", prefix="--space ")


def _raw_with_parents(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in seen:
        raise ConfigError(f"{path}: extends: cycle ({' -> '.join(p.stem for p in (*seen, path))})")
    raw = load_spec_yaml(path, "docs/search_spaces.md")
    parent = raw.get("extends")
    if parent is None:
        _check_removals(raw, {}, path, None)
        return raw
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: extends: expected a space name, got {parent!r}")
    try:  # a file path is read from the extending file's folder; a bare name from search_spaces/
        beside = path.parent / parent
        parent_path = (beside if beside.suffix in (".yaml", ".yml") and beside.is_file()
                       else find_spec(parent, SPACES_DIR, "search space"))  # named as extends, not --space
    except ConfigError as err:
        raise ConfigError(f"{path}: extends: {err}") from None
    merged = _raw_with_parents(parent_path, (*seen, path))
    merged.pop("description", None)
    _check_removals(raw, merged.get("parameters") or {}, path, parent)
    child = dict(raw)
    objective = child.get("objective")
    if isinstance(objective, dict) and "metric" in objective and "mode" not in objective \
            and isinstance(merged.get("objective"), dict):
        merged["objective"].pop("mode", None)  # the parent's mode went with the parent's metric
    params = {**(merged.pop("parameters", None) or {}), **(child.pop("parameters", None) or {})}
    merged = deep_merge(merged, child)
    merged["parameters"] = params
    return merged


def _check_removals(raw: dict[str, Any], inherited: dict[str, Any], path: Path, parent: str | None) -> None:
    """``parameters.<key>: null`` removes a parameter the space inherits; one that removes
    nothing (a typo of the key, or no ``extends``) is an error, not a line silently ignored."""
    params = raw.get("parameters")
    if not isinstance(params, dict):
        return  # not a mapping: the schema says so
    for key, entry in params.items():
        if entry is not None:
            continue
        where = f"{spec_source(path)}: parameters.{key}: null removes an inherited parameter"
        if parent is None:
            raise ConfigError(f"{where}, but this space extends none; give a distribution or delete the line")
        if inherited.get(key) is None:
            have = ", ".join(k for k, v in inherited.items() if v is not None) or "none"
            raise ConfigError(f"{where}, but {parent} has no parameter {key} (its parameters: {have}); "
                              "fix the key or delete the line")


def load_space(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> SearchSpace:
    """Load, merge (``extends``), validate and resolve a search space."""
    path = _space_path(name_or_path)
    source = spec_source(path)
    spec = validate(SpaceFile, _raw_with_parents(path), source)
    base_raw = {"model": spec.model, "data": spec.data, "train": {**spec.train, "max_epochs": spec.budget.max_epochs},
                "seed": spec.seed}
    base = ExperimentConfig.resolve(base_raw, source)
    fixed_model = {k: v for k, v in spec.model.items() if k != "name"}
    parameters = [Parameter(key, entry.to_distribution(), entry.when)
                  for key, entry in spec.parameters.items() if entry is not None]  # None: a child removed it
    ordered = _parents_first(parameters, source)
    _check_every_value(base, fixed_model, ordered, source)
    mode = spec.objective.mode or monitor_mode(spec.objective.metric)
    check_mode(spec.objective.metric, mode, source)
    space = SearchSpace(path.stem, path, spec.description, base, tuple(ordered), spec.objective.metric, mode,
                        tuple(spec.objective.record), spec.sampler, spec.budget, spec.resources, fixed_model,
                        tuple(spec.reference_baselines))
    space = space.with_overrides(overrides, "--set") if overrides else space
    _check_grid(space, "--set" if "sampler.name" in (overrides or {}) else source)
    space.base.require_inputs(source)
    check_folds(space, "--set" if {"budget.folds", "data.split"} & set(overrides or {}) else source)
    space.references("--set" if "reference_baselines" in (overrides or {}) else source)  # bad names stop here
    return space


def _check_grid(space: "SearchSpace", source: str) -> None:
    """The grid sampler enumerates values: every parameter must be categorical or int (checked
    after ``--set``, which may choose the grid)."""
    if space.sampler.name != "grid":
        return
    floats = [p.key for p in space.parameters if isinstance(p.distribution, FloatRange)]
    if floats:
        raise ConfigError(f"{source}: sampler.name: grid needs categorical or int parameters, "
                          f"but {floats[0]} is continuous (use tpe, random, cmaes or gp)")


def check_folds(space: "SearchSpace", source: str) -> None:
    """``budget.folds`` against the base split's folds (4 built-in, a folds file's length)."""
    if space.budget.folds is None:
        return
    if not space.budget.folds:
        raise ConfigError(f"{source}: budget.folds: the list is empty; give the folds to train on (e.g. [0, 1, 2, 3]) "
                          "or leave it out to train on data.fold alone")
    split = space.base.data.split
    total = folds_of_split(split)
    bad = [k for k in space.budget.folds if k >= total]
    if bad:
        where = f"the folds of {split}" if split.endswith(".json") else f"the {split} split"
        raise ConfigError(f"{source}: budget.folds: fold {bad[0]} is out of range (allowed: 0-{total - 1}, {where})")


def model_variants(space: "SearchSpace") -> list[str]:
    """The model variants a space trains: the sampled ``model.name`` values, else its one model."""
    for p in space.parameters:
        if p.key == "model.name" and isinstance(p.distribution, Categorical):
            return [str(v) for v in p.distribution.values]
    return [space.base.model_name]


def variant_config(base: ExperimentConfig, fixed_model: dict[str, Any], name: str, source: str) -> ExperimentConfig:
    """``base`` with another model variant: the space's fixed model fields apply to it (a
    fixed field the variant does not have is an error naming both)."""
    if name == base.model_name:
        return base
    try:
        return base.with_overrides({"model.name": name}, source, keep_model=fixed_model)
    except ConfigError as err:
        raise ConfigError(f"{source}: model: the fixed model fields do not fit the sampled variant {name!r}: "
                          f"{str(err).split(': ', 2)[-1]} (fix only the fields every sampled variant has, "
                          "or sample the field with a condition on model.name)") from None


def _check_every_value(base: ExperimentConfig, fixed_model: dict[str, Any], parameters: list[Parameter],
                       source: str) -> None:
    """Every value a trial can sample is checked now, not after compute is spent: both ends of
    a range and every categorical value, against each model variant the parameter is active
    for (a ``model.*`` parameter conditioned on ``model.name`` only against those variants)."""
    names = next((p.distribution.values for p in parameters if p.key == "model.name"), (base.model_name,))
    variants = {}
    for name in names:
        try:
            variants[name] = variant_config(base, fixed_model, str(name), source)
        except ConfigError as err:
            raise ConfigError(f"{source}: parameters.model.name: {str(err).split(': ', 1)[-1]}") from None
    for p in parameters:
        if p.key == "model.name":
            continue
        wanted = (p.when or {}).get("model.name")
        active = [n for n in names if wanted is None or n in (wanted if isinstance(wanted, list) else [wanted])]
        for name in active:
            for value in p.distribution.edges():
                try:
                    variants[name].with_overrides({p.key: value}, source)
                except ConfigError as err:
                    detail = str(err).split(": ", 2)[-1]
                    where = f" (model {name})" if len(names) > 1 else ""
                    what = "" if detail.startswith("unknown key") else f"value {value!r}"  # a typo, whatever the value
                    context = f"{what}{where}".strip()
                    raise ConfigError(f"{source}: parameters.{p.key}: " + (f"{context}: " if context else "")
                                      + detail) from None


def _parents_first(parameters: list[Parameter], source: str) -> list[Parameter]:
    by_key = {p.key: p for p in parameters}
    for p in parameters:
        for parent, wanted in (p.when or {}).items():
            if parent not in by_key:
                raise ConfigError(f"{source}: parameters.{p.key}.when: {parent!r} is not a parameter of this "
                                  f"space (parameters: {', '.join(by_key)})")
            dist = by_key[parent].distribution
            if isinstance(dist, FloatRange):  # a sampled float equals a given value almost never
                raise ConfigError(f"{source}: parameters.{p.key}.when: {parent} is continuous, so the condition "
                                  "would almost never hold; condition on a categorical or int parameter")
            for value in wanted if isinstance(wanted, list) else [wanted]:
                if not dist.takes(value):
                    shown = list(dist.values) if isinstance(dist, Categorical) else f"{dist.low}..{dist.high}"
                    raise ConfigError(f"{source}: parameters.{p.key}.when: {parent} never takes {value!r} "
                                      f"(values: {shown})")
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
