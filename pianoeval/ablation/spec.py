"""Ablation specs: ``ablations/<name>.yaml`` -> a validated ``AblationSpec`` -> a trial set.

An ablation is a diff over a named baseline, never a copy::

    description: incremental build of the HAN
    base:                               # a run config, or {from_sweep: han} / {file: path/best.yaml}
      model: {name: bilstm_baseline}
      data: {split: performer}
    variants:                           # name -> overrides of base (a nested mapping)
      bilstm_baseline: {}
      han: {model: {name: han}}
    baseline: bilstm_baseline
    folds: [0, 1, 2, 3]
    seeds: [7]                          # paired: every variant gets the same folds and seeds
    metrics: [test/r2, test/pairwise_acc, val/r2]   # the first is the headline
    budget: {max_epochs: 100, early_stopping_patience: 20}
    resources: {cpu: 1, gpu: 0}
    eval_only:                          # no training: a trained variant's checkpoints, evaluated differently
      han_total_cat_beat_zeroed_at_eval:
        source: han_total_cat
        overrides: {model: {zero_levels: [beat], zero_mode: eval_only}}
    reference_baselines: [global_mean, music_mean]   # the default; [] for none

Reference baselines are closed-form predictors (registry ``fit: closed_form``) fitted on
every fold and seed of the trial set, on the baseline variant's data (its split or folds
file, label set, pieces map and ``data.max_train_segments``, so a smoke run's references see
the same training subset), with no other setting of it; they take seconds, run in the driver after the trained trials, and
are reference rows of the comparison tables, never competitors in the paired tests.

Every variant is resolved at load time (unknown keys, unknown models, bad values are
one-line ``ConfigError``s naming the file and the variant), as are the baseline, the
folds and the eval-only sources; nothing starts on bad input.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pydantic

from pianoeval.config import (Folds, Seeds, StrictModel, plain, deep_merge, distinct, find_spec, flatten,
                              load_spec_yaml, load_yaml, route_overrides, set_path, spec_names, validate)
from pianoeval.data.folds import fold_count
from pianoeval.data.inputs import check_test_metrics
from pianoeval.data.splits import NUM_FOLDS, SPLIT_NAMES
from pianoeval.errors import ConfigError
from pianoeval.experiment import DEFAULT_REFERENCES, ExperimentConfig, monitor_mode, reference_configs
from pianoeval.io import is_safe_name
from pianoeval.models.registry import get_model, list_models
from pianoeval.paths import REPO_ROOT, results_root
from pianoeval.sweep.space import ResourcesSpec  # one resources format for sweeps and ablations

ABLATIONS_DIR = REPO_ROOT / "ablations"


class BudgetSpec(StrictModel):
    """Training budget of every trial (``train.*`` overrides) and, optionally, ASHA."""

    max_epochs: int = pydantic.Field(100, ge=1)
    early_stopping_patience: int | None = pydantic.Field(None, ge=1)
    asha_grace_period: int | None = pydantic.Field(None, ge=1)  # set: hopeless trials stop at the first rung
    asha_reduction_factor: float = pydantic.Field(3.0, gt=1)
    asha_metric: str = "val/pairwise_acc"

    @pydantic.field_validator("asha_metric")
    @classmethod
    def _asha_metric(cls, value: str) -> str:
        monitor_mode(value)
        return value

    @pydantic.model_validator(mode="after")
    def _grace(self) -> "BudgetSpec":  # as a sweep's budget: a first rung past the last epoch prunes nothing
        if self.asha_grace_period is not None and self.asha_grace_period > self.max_epochs:
            raise ValueError(f"asha_grace_period {self.asha_grace_period} > max_epochs {self.max_epochs}")
        return self


class EvalOnlySpec(StrictModel):
    source: str
    overrides: dict[str, Any] = {}


class AblationFile(StrictModel):
    description: str = ""
    base: dict[str, Any]
    variants: dict[str, dict[str, Any] | None]
    baseline: str
    folds: Folds = [0, 1, 2, 3]
    seeds: Seeds = [7]
    metrics: list[str] = ["test/r2", "test/pairwise_acc"]
    budget: BudgetSpec = BudgetSpec()
    resources: ResourcesSpec = ResourcesSpec()
    eval_only: dict[str, EvalOnlySpec] = {}
    reference_baselines: list[str] = list(DEFAULT_REFERENCES)

    @pydantic.field_validator("variants", "eval_only")
    @classmethod
    def _names(cls, entries: dict[str, Any]) -> dict[str, Any]:
        for name in entries:  # each names the folders of its runs (trial_<id>-<variant>-fold<k>-seed<s>)
            check_name(name, "variant")
        return entries

    @pydantic.field_validator("metrics")
    @classmethod
    def _metrics(cls, values: list[str]) -> list[str]:
        distinct(values, "metric")
        if not values:
            raise ValueError("list at least one metric (e.g. test/r2)")
        for value in values:
            stage, _, rest = value.partition("/")
            if stage not in ("val", "test"):
                raise ValueError(f"{value!r}: metrics are val/<metric> or test/<metric>")
            monitor_mode(f"val/{rest}")
        return values


def check_name(name: str, what: str) -> str:
    """A variant, candidate or stage name becomes part of a folder name: one safe file name
    (``is_safe_name``), else a ValueError."""
    if not is_safe_name(name):
        raise ValueError(f"{what} name {name!r}: use letters, digits, '.', '_' and '-', not starting with '.' "
                         "(it names a folder)")
    return name


def check_folds_in_range(folds, split: str, where: str) -> None:
    """Folds against the split's (4 built-in, a folds file's own count); ``where``: file and key."""
    count = NUM_FOLDS if split in SPLIT_NAMES else fold_count(split)
    bad_folds = [f for f in folds if not 0 <= f < count]
    if bad_folds:
        raise ConfigError(f"{where}: {bad_folds[0]} is out of range (allowed: 0-{count - 1}"
                          + (f", the folds of {split})" if split not in SPLIT_NAMES else ")"))


@dataclass(frozen=True)
class Trial:
    """One run of the trial set."""

    variant: str
    fold: int
    seed: int
    config: ExperimentConfig  # fully resolved (fold, seed and budget applied)
    eval_only_source: str | None = None  # set: evaluate this variant's trained weights, no training
    reference: bool = False  # a reference baseline: fitted in closed form, a reference row of the tables

    @property
    def key(self) -> str:
        return f"{self.variant}/fold{self.fold}/seed{self.seed}"


@dataclass(frozen=True)
class AblationSpec:
    name: str
    path: Path
    description: str
    variants: dict[str, ExperimentConfig]  # trained variants, budget applied (fold/seed not yet)
    eval_only: dict[str, tuple[str, ExperimentConfig]]  # name -> (source variant, config)
    baseline: str
    folds: tuple[int, ...]
    seeds: tuple[int, ...]
    metrics: tuple[str, ...]
    budget: BudgetSpec
    resources: ResourcesSpec
    source: str = ""
    trials: tuple[Trial, ...] = field(default=())
    references: dict[str, ExperimentConfig] = field(default_factory=dict)  # name -> config (fold/seed not yet)

    def only(self, names: list[str]) -> "AblationSpec":
        """Restrict to some variants (``--only``); the baseline and eval-only sources stay."""
        unknown = [n for n in names if n not in self.variants and n not in self.eval_only]
        if unknown:
            raise ConfigError(f"--only {unknown[0]}: not a variant of {self.name} "
                              f"(variants: {', '.join([*self.variants, *self.eval_only])})")
        keep_eval = {n: v for n, v in self.eval_only.items() if n in names}
        keep = {n for n in names if n in self.variants} | {self.baseline} | {src for src, _ in keep_eval.values()}
        variants = {n: c for n, c in self.variants.items() if n in keep}
        return with_trials(replace(self, variants=variants, eval_only=keep_eval))


def trial_record(trial: Trial) -> dict[str, Any]:
    """A run as ``ablation.yaml`` records it under ``trials.<variant>/fold<k>/seed<s>``."""
    return {**trial.config.to_dict(), "eval_only_source": trial.eval_only_source, "reference": trial.reference}


def check_resumed_run(spec: AblationSpec, run_dir: Path) -> None:
    """``--resume`` continues the runs a run recorded: a run of ``spec`` whose config differs
    from its record in ``run_dir/ablation.yaml`` (a ``--set`` or an edit of the spec since) is a
    ConfigError. Tune would restore the recorded runs as they were while eval-only runs and
    references took the new config: one table over two configs."""
    record = run_dir / "ablation.yaml"
    recorded = (load_yaml(record).get("trials") or {}) if record.is_file() else {}
    new = [t.key for t in spec.trials if recorded and t.key not in recorded and not t.reference
           and t.eval_only_source is None]
    if new:  # Tune restores the runs it has: these would never train, and each resume would stop again
        raise ConfigError(f"--resume: {new[0]} is not a run of {record} ({len(new)} such runs): a resumed run "
                          "trains the runs it recorded; train more folds, seeds or variants in a new run "
                          "(leave out --resume)")
    for trial in spec.trials:
        then = recorded.get(trial.key)
        if then is None:
            continue
        now, was = flatten(plain(trial_record(trial))), flatten(then)
        for key in sorted(set(now) | set(was)):
            if now.get(key) != was.get(key):
                raise ConfigError(f"--resume: {trial.key}: {key} is {now.get(key)!r} now but {was.get(key)!r} in "
                                  f"{record}; resume with the spec and --set as they were, or start a new run "
                                  "(leave out --resume)")


def available_ablations() -> list[str]:
    return spec_names(ABLATIONS_DIR)


def _ablation_path(name_or_path: str | Path) -> Path:
    return find_spec(name_or_path, ABLATIONS_DIR, "ablation")


def _resolve_base(base: dict[str, Any], source: str, folder: Path) -> dict[str, Any]:
    """An inline run config, ``{from_sweep: <space>}`` (its latest best.yaml) or ``{file: path}``
    (a relative path is read from the spec file's ``folder``)."""
    if "from_sweep" in base or "file" in base:
        if len(base) != 1:
            raise ConfigError(f"{source}: base: from_sweep / file stand alone (got {', '.join(base)})")
        if "file" in base:
            path = Path(str(base["file"]))
            path = path if path.is_absolute() else folder / path
        else:
            if not is_safe_name(base["from_sweep"]):
                raise ConfigError(f"{source}: base.from_sweep: {base['from_sweep']!r} is not a space name "
                                  "(a name such as han, as in results/sweeps/<space>/)")
            runs = sorted((results_root() / "sweeps" / str(base["from_sweep"])).glob("*/best.yaml"))
            if not runs:
                raise ConfigError(f"{source}: base.from_sweep: no finished sweep of space {base['from_sweep']!r} "
                                  f"under {results_root() / 'sweeps'} (run `python runners/sweep.py --space "
                                  f"{base['from_sweep']}` first, or give base: {{file: path/to/best.yaml}})")
            path = runs[-1]
        if not path.is_file():
            raise ConfigError(f"{source}: base.file: {path} not found")
        loaded = load_yaml(path)
        loaded.pop("provenance", None)
        return loaded
    return base


def _resolve_variant(base: dict[str, Any], overrides: dict[str, Any] | None, budget: BudgetSpec,
                     where: str, extra: dict[str, Any] | None = None) -> ExperimentConfig:
    """base <- the variant's overrides <- the budget <- ``--set`` overrides (``extra``)."""
    overrides = dict(overrides or {})
    merged = deep_merge(_copy(base), {})
    model = overrides.get("model") or {}
    base_model = base.get("model") or {}
    if isinstance(model, dict) and "name" in model and model["name"] != base_model.get("name"):
        # another model: its own defaults, not the base model's fields -- unless it is of the
        # same family (same config class), whose fields the base set for all (e.g. fusion encoders)
        if not _same_family(model["name"], base_model.get("name")):
            merged["model"] = {}
    merged = deep_merge(merged, overrides)
    merged.setdefault("train", {})
    merged["train"] = {**merged["train"], "max_epochs": budget.max_epochs}
    if budget.early_stopping_patience:
        merged["train"]["early_stopping_patience"] = budget.early_stopping_patience
    config = ExperimentConfig.resolve(merged, where)
    return config.with_overrides(extra, "--set") if extra else config


def _same_family(name: str, other: str | None) -> bool:
    known = set(list_models())
    return other in known and name in known and get_model(name).config_cls is get_model(other).config_cls


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def with_trials(spec: AblationSpec) -> AblationSpec:
    trials = []
    for name, config in spec.variants.items():
        for fold in spec.folds:
            for seed in spec.seeds:
                trials.append(Trial(name, fold, seed, config.with_overrides({"data.fold": fold, "seed": seed})))
    for name, (source, config) in spec.eval_only.items():
        for fold in spec.folds:
            for seed in spec.seeds:
                trials.append(Trial(name, fold, seed, config.with_overrides({"data.fold": fold, "seed": seed}), source))
    for name, config in spec.references.items():
        for fold in spec.folds:
            for seed in spec.seeds:
                trials.append(Trial(name, fold, seed, config.with_overrides({"data.fold": fold, "seed": seed}),
                                    reference=True))
    return replace(spec, trials=tuple(trials))


def _resolve_references(names: list[str], base: ExperimentConfig, taken: set[str], source: str
                        ) -> dict[str, ExperimentConfig]:
    """Each reference baseline's run config on the base's split (``reference_configs``, which
    sweeps share); a reference may not also be a variant of the ablation."""
    references = reference_configs(names, base, source, trained_fix="list it under variants")
    for i, name in enumerate(names):
        if name in taken:
            raise ConfigError(f"{source}: reference_baselines[{i}]: {name} is also a variant of this ablation; drop "
                              "it from one of the two (reference_baselines: [] turns the references off)")
    return references


def load_ablation(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> AblationSpec:
    """Load, validate and resolve an ablation spec; ``overrides`` are ``--set`` items:
    ``folds``, ``seeds``, ``metrics``, ``budget.*``, ``resources.*`` change the trial set,
    any other dotted key (``train.lr``, ``model.hidden_size``) is applied on top of every variant."""
    path = _ablation_path(name_or_path)
    source = str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)
    raw = load_spec_yaml(path, "docs/ablations.md")
    spec_part, config_overrides = route_overrides(overrides or {}, set(AblationFile.model_fields) - {"base"})
    for key, value in spec_part.items():
        set_path(raw, key, value)
    spec = validate(AblationFile, raw, source)
    if not spec.folds:
        raise ConfigError(f"{source}: folds: the list is empty; give at least one fold (0-3)")
    if not spec.seeds:
        raise ConfigError(f"{source}: seeds: the list is empty; give at least one seed")
    if not spec.variants:
        raise ConfigError(f"{source}: variants: no variants")
    if spec.baseline not in spec.variants:
        raise ConfigError(f"{source}: baseline: {spec.baseline!r} is not a variant "
                          f"(variants: {', '.join(spec.variants)})")
    base = _resolve_base(spec.base, source, path.parent)
    variants = {name: _resolve_variant(base, overrides, spec.budget, f"{source}: variants.{name}", config_overrides)
                .require_inputs(f"{source}: variants.{name}") for name, overrides in spec.variants.items()}
    # a folds file has its own number of folds
    check_folds_in_range(spec.folds, variants[spec.baseline].data.split, f"{source}: folds")
    for config in variants.values():
        check_test_metrics(spec.metrics, config.data.split, spec.folds, source)
    eval_only = {}
    for name, entry in spec.eval_only.items():
        if name in variants:
            raise ConfigError(f"{source}: eval_only.{name}: the name is already a trained variant")
        if entry.source not in variants:
            raise ConfigError(f"{source}: eval_only.{name}.source: {entry.source!r} is not a trained variant "
                              f"of this ablation (variants: {', '.join(variants)})")
        config = variants[entry.source].with_overrides(flatten(entry.overrides), f"{source}: eval_only.{name}")
        eval_only[name] = (entry.source, config)
    references = _resolve_references(spec.reference_baselines, variants[spec.baseline], {*variants, *eval_only},
                                     source)
    resolved = AblationSpec(path.stem, path, spec.description, variants, eval_only, spec.baseline,
                            tuple(spec.folds), tuple(spec.seeds), tuple(spec.metrics), spec.budget,
                            spec.resources, source, references=references)
    return with_trials(resolved)
