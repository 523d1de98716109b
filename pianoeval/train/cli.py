"""``runners/train.py``: train one config on one fold, print a line per epoch and a final table."""

from __future__ import annotations

from pathlib import Path

import yaml

from pianoeval.config import ConfigError, load_yaml, parse_set
from pianoeval.experiment import ExperimentConfig
from pianoeval.io import check_output_root
from pianoeval.models.registry import get_model
from pianoeval.provenance import changed_inputs

#: Files whose presence means a folder holds a run (a later run must not overwrite them).
RUN_FILES = ("resolved.yaml", "metrics.json", "history.csv", "checkpoints")


def build_config(model: str | None, config_path: str | None, split: str | None, fold: int | None,
                 seed: int | None, sets: list[str]) -> ExperimentConfig:
    """The run config: a file (e.g. a saved ``resolved.yaml``) or a model name, then flags, then --set."""
    if config_path:
        raw, source = load_yaml(config_path), config_path
        raw.pop("provenance", None)
        if model:
            raw["model"] = {"name": model}
    else:
        raw, source = {"model": {"name": model or "han"}}, "--model"
    config = ExperimentConfig.resolve(raw, source)
    overrides = parse_set(sets)
    for key, value in (("data.split", split), ("data.fold", fold), ("seed", seed)):
        if value is not None:
            overrides[key] = value
    return (config.with_overrides(overrides) if overrides else config).require_inputs(source)


def main(args) -> int:
    config = build_config(args.model, args.config, args.split, args.fold, args.seed, args.set or [])
    if getattr(args, "dry_run", False):
        print(yaml.safe_dump(config.to_dict(), sort_keys=False).rstrip())
        return 0
    if args.config and not args.resume:  # a rerun of a saved run (a resumed one is checked by train_run)
        for line in changed_inputs(args.config, [config]):
            print(f"[train] {line}")
    if args.evaluate_stopped:
        if not args.out:
            raise ConfigError("--evaluate-stopped needs --out: the run directory whose best checkpoint to evaluate")
        # lazy: Lightning and torch load once the config is valid (keeps config errors under 1 s)
        from pianoeval.train.run import evaluate_stopped_run, final_table

        result = evaluate_stopped_run(config, Path(args.out), threads=args.threads)
        print(final_table(result.metrics, result.warnings))
        print(f"[train] evaluated the best checkpoint (epoch {result.best_epoch} of {result.epochs_run} run) "
              f"of the stopped run {result.out_dir}")
        return 0
    out_dir = check_output_root(Path(args.out), "--out") if args.out else None
    if out_dir is not None and not args.resume and any((out_dir / f).exists() for f in RUN_FILES):
        raise ConfigError(f"--out {out_dir}: holds a run already: add --resume to continue it, or choose "
                          "another --out (nothing there is overwritten)")
    closed_form = get_model(config.model_name).fit == "closed_form"
    print(f"[train] {config.model_name} on {config.data.split} fold {config.data.fold} "
          f"({config.input_label()}, labels {config.data.labels}), seed {config.seed}, "
          + ("fitted in closed form" if closed_form else f"{config.train.max_epochs} epochs"))
    resume_from = None
    if args.resume:
        if out_dir is None:
            raise ConfigError("--resume needs --out: the run directory to continue")
        resume_from = out_dir / "checkpoints" / "last.ckpt"
        if not resume_from.is_file():
            raise ConfigError(f"{resume_from}: no checkpoint to resume from; run without --resume to start afresh")
        print(f"[train] resuming from {resume_from}")
    # lazy: Lightning and torch load once the config is valid (keeps config errors under 1 s)
    from pianoeval.train.run import final_table, train_run

    result = train_run(config, out_dir=out_dir, threads=args.threads, progress=args.progress,
                       resume_from=resume_from)
    if result.metrics:
        print(final_table(result.metrics, result.warnings))
    if result.fit:
        print("[train] fit: " + ", ".join(f"{k} {v:g}" for k, v in result.fit.items()))
    print(f"[train] {result.status}: best epoch {result.best_epoch}, {result.epochs_run} epochs in "
          f"{result.wall_seconds / 60:.1f} min; results in {result.out_dir}")
    if result.error:
        print(f"[train] {result.error}")
    return 0 if result.status == "completed" else 1
