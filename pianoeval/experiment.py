"""The config of one training run: model + data + train + seed.

A run config is a YAML mapping::

    model: {name: han, attention_temperature: 0.5}   # a registered name + its fields
    data: {split: performer, fold: 0}                 # feature_set: the model's default
    train: {lr: 2.5e-5, max_epochs: 100}
    seed: 7

``ExperimentConfig.resolve`` validates it (unknown keys, wrong types and unknown
models are one-line ``ConfigError``s naming the file and key), fills every default
(the model variant's defaults, the feature set the variant was defined on) and
returns the *resolved* config: the dict saved as ``resolved.yaml`` with a run's
results, which alone reruns it. Defaults are the reference's (Adam 2.5e-5,
weight decay 1e-5, clipping 2.0, batch 8, StepLR 3000 iterations x 0.98, 100
epochs, best checkpoint by validation loss, seed 7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Mapping

import pydantic

from pianoeval.config import StrictInt, StrictModel, deep_merge, flatten, load_yaml, unflatten, validate
from pianoeval.data.inputs import check_inputs
from pianoeval.errors import ConfigError
from pianoeval.metrics import METRIC_NAMES, ROBUSTNESS_MODES, metric_mode
from pianoeval.models.registry import get_model, list_models


class DataConfig(StrictModel):
    """Which data, which fold, how it is batched.

    Attributes:
        dataset: the labelled dataset (PercePiano).
        split: ``performer`` (upstream), ``piece`` (score segments never cross) or the
            path of a folds JSON (``pianoeval.data.folds``; audited for piece leakage).
        fold: validation fold: 0-3 for the built-in splits, 0 to the file's length - 1
            for a folds file; the test set is shared by all folds of the built-in splits.
        feature_set: note feature set (``full`` / ``perf_only``); None = the model's.
        batch_size: training batch size (reference: 8).
        eval_batch_size: validation / test batch size (outputs do not depend on it:
            padding is masked).
        batch_sampler: ``random`` (reference) or ``grouped``: each batch holds
            ``group_size`` performances of the same music per group, so a ranking loss
            sees same-piece pairs in every batch.
        group_size: performances per music in a ``grouped`` batch.
        max_train_segments: use only the first N training segments of a seeded
            shuffle (small smoke runs on real data); None = all.
        tiers: data tiers of the v2 design in the training set: T1 labelled PercePiano,
            T2 competition placements, T3 cross-performer pairs (ASAP), T4 clean /
            augmented pairs. A data module refuses tiers it does not have. Also
            accepted as one string, ``"T1,T3"`` (what a search space's categorical samples).
        labels: the label set: ``percepiano19`` (the 19 dimensions), a shipped taxonomy
            name (``percepiano_categories``), a labels JSON ``{key: {dimension: value}}``
            or a taxonomy YAML (``pianoeval.data.labels``, docs/data.md). Files (here, in
            ``split`` and in ``pieces``) are stored as absolute paths.
        pieces: a ``{piece: [keys]}`` JSON naming each key's piece for the leakage check
            of a folds file; None = the music excerpt read from PercePiano's file names.
        allow_piece_leakage: accept a folds file whose folds put a piece on both sides
            (a performer-style protocol); every summary then carries a warning line.
        frames: a frames input (models on frames, e.g. ``frames_probe``): one ``.pt`` dict
            ``{segment key: [T, D]}`` or a folder of per-key files (docs/frames.md);
            a relative path is taken from the working directory and stored absolute.
    """

    dataset: Literal["percepiano"] = "percepiano"
    split: str = "performer"
    fold: StrictInt = pydantic.Field(0, ge=0)
    feature_set: Literal["full", "perf_only"] | None = None
    batch_size: int = pydantic.Field(8, ge=1)
    eval_batch_size: int = pydantic.Field(32, ge=1)
    batch_sampler: Literal["random", "grouped"] = "random"
    group_size: int = pydantic.Field(2, ge=2)
    max_train_segments: int | None = pydantic.Field(None, ge=2)
    tiers: list[Literal["T1", "T2", "T3", "T4"]] = ["T1"]
    # label set and fold file inputs, checked at resolve time (check_data_inputs)
    labels: str = "percepiano19"
    pieces: str | None = None
    allow_piece_leakage: bool = False

    @pydantic.field_validator("split")
    @classmethod
    def _split_name_or_file(cls, value: str) -> str:
        if value in ("performer", "piece"):
            return value
        if not value.endswith(".json"):
            raise ValueError(f"{value!r} is neither a built-in split (performer, piece) nor a folds .json file")
        return _absolute(value)

    @pydantic.field_validator("labels")
    @classmethod
    def _labels_file_absolute(cls, value: str) -> str:
        # a name (percepiano19, a shipped taxonomy) has no suffix; a file is stored absolute
        return _absolute(value) if Path(value).suffix in (".json", ".yaml", ".yml") else value

    @pydantic.field_validator("pieces")
    @classmethod
    def _pieces_file_absolute(cls, value: str | None) -> str | None:
        return None if value is None else _absolute(value)

    # input files
    frames: str | None = None

    @pydantic.field_validator("tiers", mode="before")
    @classmethod
    def _tiers_from_string(cls, value):
        return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value

    @pydantic.field_validator("frames")
    @classmethod
    def _frames_path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        path = Path(value).expanduser().resolve()
        if not path.exists():
            raise ValueError(f"{path} does not exist (a .pt dict or a folder of per-key frames; "
                             f"python runners/export_frames.py writes one)")
        return str(path)


def _absolute(path: str) -> str:
    """An input file's path, absolute: a relative one is taken from the working directory of
    the command, and a sweep's or ablation's trials run in folders of their own."""
    return str(Path(path).expanduser().resolve())


class TrainConfig(StrictModel):
    """Optimisation, objective, stopping.

    Attributes:
        optimizer: ``adam`` (L2 inside Adam, the reference) or ``adamw``.
        lr, weight_decay: optimiser settings.
        grad_clip: max gradient norm (None = no clipping).
        scheduler: ``step`` (StepLR stepped every iteration), ``cosine`` (with linear
            warm-up over ``warmup_fraction`` of the steps) or ``constant``.
        max_epochs: epoch budget.
        lambda_rank: weight of the pairwise ranking loss on same-piece pairs.
        rank_margin: margin of the ranking loss.
        lambda_contrastive: weight of the piece-based InfoNCE on the embedding z
            (positives: other performances of the same music in the batch).
        contrastive_temperature: InfoNCE temperature.
        lambda_invariance: weight of the MSE between clean and augmented embeddings
            (needs batches that carry an ``augmented`` view).
        monitor: validation metric for checkpoint selection and early stopping
            (``val/loss``, ``val/r2``, ``val/pairwise_acc``, ...); its direction is known.
        early_stopping_patience: epochs without improvement before stopping (None: off).
        limit_train_batches: fraction or number of training batches per epoch (1.0 = all).
        accelerator: ``auto`` (CUDA when torch sees a CUDA device, else CPU), ``cpu``, or
            ``gpu`` / ``cuda`` (a CUDA device; an error when none is visible).
        precision: ``32`` (float32), ``bf16-mixed`` (bfloat16 autocast, float32 weights; the
            design trains so on A100/H100, and Lightning's CPU autocast runs it too) or
            ``16-mixed`` (float16 autocast with loss scaling; CUDA only).
        deterministic: ``true`` (torch's deterministic algorithms: an op without a
            deterministic kernel raises), ``warn`` (the same kernels, but such an op only
            warns) or ``false`` (the fastest kernels, not bitwise reproducible on CUDA).
            See ``pianoeval.train.hardware``.
    """

    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = pydantic.Field(2.5e-5, gt=0)
    weight_decay: float = pydantic.Field(1e-5, ge=0)
    grad_clip: float | None = pydantic.Field(2.0, gt=0)
    scheduler: Literal["step", "cosine", "constant"] = "step"
    step_size: int = pydantic.Field(3000, ge=1)
    gamma: float = pydantic.Field(0.98, gt=0, le=1)
    warmup_fraction: float = pydantic.Field(0.05, ge=0, lt=1)
    max_epochs: int = pydantic.Field(100, ge=1)
    lambda_rank: float = pydantic.Field(0.0, ge=0)
    rank_margin: float = pydantic.Field(0.0, ge=0)
    lambda_contrastive: float = pydantic.Field(0.0, ge=0)
    contrastive_temperature: float = pydantic.Field(0.1, gt=0)
    lambda_invariance: float = pydantic.Field(0.0, ge=0)
    monitor: str = "val/loss"
    early_stopping_patience: int | None = pydantic.Field(None, ge=1)
    limit_train_batches: float | int = 1.0
    accelerator: Literal["auto", "cpu", "gpu", "cuda"] = "auto"
    precision: Literal["32", "bf16-mixed", "16-mixed"] = "32"
    deterministic: bool | Literal["warn"] = True

    @pydantic.field_validator("precision", mode="before")
    @classmethod
    def _precision_32(cls, value):
        # YAML reads `precision: 32` as a number; Lightning's spelling of it is "32-true"
        return "32" if value in (32, "32-true") else value

    @pydantic.field_validator("precision")
    @classmethod
    def _half_precision_needs_cuda(cls, value: str, info: pydantic.ValidationInfo) -> str:
        if value == "16-mixed" and info.data.get("accelerator") == "cpu":
            raise ValueError("16-mixed needs CUDA (CPU autocast is bfloat16 only): use bf16-mixed on CPU")
        return value

    @pydantic.field_validator("deterministic", mode="before")
    @classmethod
    def _deterministic_mode(cls, value):
        modes = {True: True, False: False, "true": True, "false": False, "warn": "warn"}
        if isinstance(value, (bool, str)) and value in modes:
            return modes[value]
        raise ValueError("expected true, warn or false")

    @pydantic.field_validator("monitor")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        monitor_mode(value)
        return value


def monitor_mode(name: str) -> str:
    """'min' or 'max' for a monitorable metric name; ValueError listing the choices."""
    stage, _, metric = name.partition("/")
    if stage not in ("val", "train") or not metric:
        raise ValueError(f"{name!r} is not a metric name: use val/<metric>, e.g. val/loss or val/r2 "
                         f"(metrics: loss, {', '.join(METRIC_NAMES)})")
    if metric == "loss":
        return "min"
    try:
        return metric_mode(metric)
    except ValueError:
        raise ValueError(f"unknown metric {name!r} (metrics: loss, {', '.join((*METRIC_NAMES, *ROBUSTNESS_MODES))})") from None


class ExperimentConfig(StrictModel):
    """One training run, fully resolved. Build it with ``ExperimentConfig.resolve``."""

    name: str = "run"
    seed: StrictInt = pydantic.Field(7, ge=0)
    model: dict[str, Any]
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    # Saved with results, ignored when rerunning: where the config came from.
    provenance: dict[str, Any] | None = None

    @classmethod
    def resolve(cls, raw: Mapping[str, Any], source: str = "<config>") -> "ExperimentConfig":
        """Validate ``raw`` and fill every default (see the module docstring)."""
        raw = dict(raw)
        model = raw.get("model")
        if not isinstance(model, Mapping) or "name" not in model:
            raise ConfigError(f"{source}: model.name: required key is missing (e.g. model: {{name: han}})")
        entry = get_model(str(model["name"]), source)
        model_config = entry.make_config(model, source)
        if not isinstance(raw.get("data") or {}, Mapping):
            raise ConfigError(f"{source}: data: expected a mapping, got {type(raw.get('data')).__name__}")
        data = dict(raw.get("data") or {})
        for key, value in entry.data_defaults.items():
            if data.get(key) is None:
                data[key] = value
        raw["data"] = data
        raw["model"] = {"name": entry.name, **model_config.model_dump(mode="json")}
        config = validate(cls, raw, source)
        check_data_inputs(config.data, source)
        return config

    @property
    def model_name(self) -> str:
        return self.model["name"]

    def input_files(self) -> dict[str, str]:
        """The input files this run reads, by config key (recorded with their content hash)."""
        files = {"data.frames": self.data.frames} if self.data.frames else {}
        return {**files, **self.model_spec().input_files()}

    def require_inputs(self, source: str = "<config>") -> "ExperimentConfig":
        """``self``, or a ConfigError when the model needs a ``data:`` input that is unset
        (``data.frames`` for the models on frames). Checked once every override is in."""
        for key, hint in get_model(self.model_name).required_data.items():
            if getattr(self.data, key) is None:
                raise ConfigError(f"{source}: data.{key}: required by model {self.model_name} ({hint}); "
                                  f"set it, e.g. --set data.{key}=PATH")
        return self

    def input_label(self) -> str:
        """What the model reads, for one-line summaries: ``full features``, ``midi_tokens input``."""
        if self.data.feature_set is not None:
            return f"{self.data.feature_set} features"
        return f"{get_model(self.model_name).input_kind} input"

    def model_spec(self):
        """The typed model config (the registry entry's class)."""
        return get_model(self.model_name).make_config(self.model)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"provenance"} if self.provenance is None else set())

    def flat(self) -> dict[str, Any]:
        """``{"model.name": "han", "train.lr": 2.5e-05, ...}``: the view sweeps use."""
        return flatten(self.model_dump(mode="json", exclude={"provenance"}))

    def with_overrides(self, overrides: Mapping[str, Any], source: str = "--set",
                       keep_model: Mapping[str, Any] | None = None) -> "ExperimentConfig":
        """A new resolved config with dotted-key overrides applied (``{"train.lr": 1e-4}``).

        When ``model.name`` changes, the new variant starts from its own defaults, plus
        ``keep_model``: the fields a search space fixes for every variant it samples."""
        base = self.model_dump(mode="json", exclude={"provenance"})
        if "model.name" in overrides and overrides["model.name"] != self.model_name:
            base["model"] = dict(keep_model or {})  # a different model: its own defaults + the space's fixed fields
        for key in overrides:
            if key.split(".")[0] not in base and key.split(".")[0] != "model":
                raise ConfigError(f"{source}: {key}: unknown key (top-level keys: {', '.join(base)})")
        return ExperimentConfig.resolve(deep_merge(base, unflatten(overrides)), source)


def check_data_inputs(data: DataConfig, source: str = "<config>") -> None:
    """The fold index against its split, and the label set and folds file read and
    checked in full (unknown keys, keys on two sides, piece leakage): bad input stops
    at resolve time, before a run or a sweep starts. Raises ConfigError / DataError."""
    try:
        check_inputs(data.labels, data.split, data.fold, data.pieces, data.allow_piece_leakage)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def load_experiment(path: str | Path, overrides: Mapping[str, Any] | None = None) -> ExperimentConfig:
    """Read and resolve a run config file, then apply ``--set`` overrides."""
    config = ExperimentConfig.resolve(load_yaml(path), str(path))
    return config.with_overrides(overrides) if overrides else config


#: The reference baselines an ablation or a sweep fits unless its ``reference_baselines`` says otherwise.
DEFAULT_REFERENCES = ("global_mean", "music_mean")
#: What a reference baseline's run takes from the config it is a reference for.
REFERENCE_DATA_KEYS = ("split", "labels", "pieces", "allow_piece_leakage", "max_train_segments")


def reference_configs(names: list[str] | tuple[str, ...], base: ExperimentConfig, source: str,
                      trained_fix: str = "drop it from the list") -> dict[str, ExperimentConfig]:
    """The run config of each reference baseline (``reference_baselines`` of an ablation or a
    search space): a registered closed-form predictor (``fit: closed_form``) on ``base``'s data
    (its split or folds file, label set, pieces map and ``data.max_train_segments``, so a smoke
    run's references see the same training subset) and seed, with no other setting of
    ``base``; the fold is set per fit. An unknown name, a trained model or a name listed
    twice is a ConfigError naming ``source: reference_baselines[i]`` (``trained_fix``: what to do
    with a trained model instead, in the caller's terms)."""
    references = {}
    for i, name in enumerate(names):
        where = f"{source}: reference_baselines[{i}]"
        if name in references:
            raise ConfigError(f"{where}: {name} is listed twice; list each reference baseline once")
        entry = get_model(name, where)
        if entry.fit != "closed_form":
            closed_form = ", ".join(n for n in list_models() if get_model(n).fit == "closed_form")
            raise ConfigError(f"{where}: {name} is trained, not fitted in closed form; {trained_fix} "
                              f"(reference baselines: registered models with fit closed_form: {closed_form})")
        data = {key: getattr(base.data, key) for key in REFERENCE_DATA_KEYS}
        references[name] = ExperimentConfig.resolve({"model": {"name": name}, "data": data, "seed": base.seed}, where)
    return references
