"""``runners/train.py``: train one config on one fold, print a line per epoch and a final table."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import yaml

from pianoeval.cli import EXIT_INTERRUPTED
from pianoeval.config import ConfigError, load_yaml, parse_set
from pianoeval.experiment import ExperimentConfig
from pianoeval.io import check_output_root
from pianoeval.models.registry import get_model
from pianoeval.provenance import changed_inputs

#: Files whose presence means a folder holds a run (a later run must not overwrite them).
RUN_FILES = ("resolved.yaml", "metrics.json", "history.csv", "checkpoints")
#: ``metrics.json`` statuses of a run that ended on its own: --resume and --evaluate-stopped leave it
#: as it is (``stopped``, written by --evaluate-stopped, is a run cut short: it may go on).
FINISHED = ("completed", "diverged")


def finished_status(out_dir: Path) -> str | None:
    """The status of the finished run in ``out_dir`` (``FINISHED``), or None."""
    try:
        status = json.loads((out_dir / "metrics.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):  # no summary yet, or one cut short: not finished
        return None
    return status if status in FINISHED else None


def refuse_finished(out_dir: Path, flag: str) -> None:
    """--resume and --evaluate-stopped on a finished run would rewrite its results: a one-line error."""
    status = finished_status(out_dir)
    if status:
        raise ConfigError(f"--out {out_dir}: the run finished ({status} in metrics.json); {flag} is for a run that "
                          "was stopped before it finished, and nothing there is overwritten: to train it again, "
                          f"use --config {out_dir / 'resolved.yaml'} with another --out")


def run_config_path(args) -> str | None:
    """--config, or for --resume / --evaluate-stopped the run's own ``resolved.yaml`` (said in a line)."""
    if args.config or not args.out or not (args.resume or args.evaluate_stopped):
        return args.config
    saved = Path(args.out) / "resolved.yaml"
    if not saved.is_file():
        return None
    print(f"[train] config: {saved} (the run's own; --config names another)")
    return str(saved)


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


def interrupted(out_dir: Path, threads: int | None) -> int:
    """A run stopped by Ctrl-C or SIGTERM: one line with the command that resumes it, exit 130."""
    if not (out_dir / "resolved.yaml").is_file():
        print(f"interrupted before the run started: nothing was written to {out_dir}", file=sys.stderr)
        return EXIT_INTERRUPTED
    command = ["python", sys.argv[0], "--config", str(out_dir / "resolved.yaml"), "--out", str(out_dir),
               "--resume", *(["--threads", str(threads)] if threads else [])]
    print(f"interrupted: the finished epochs are saved in {out_dir}; resume with: {shlex.join(command)}",
          file=sys.stderr)
    return EXIT_INTERRUPTED


def main(args) -> int:
    if args.out and (args.resume or args.evaluate_stopped):
        refuse_finished(Path(args.out), "--resume" if args.resume else "--evaluate-stopped")
    args.config = run_config_path(args)
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
    resume_from = None
    if args.resume:
        if out_dir is None:
            raise ConfigError("--resume needs --out: the run directory to continue")
        if not (out_dir / "resolved.yaml").is_file():
            raise ConfigError(f"--out {out_dir}: no run there to resume (no resolved.yaml); check the folder, "
                              "or run without --resume to start one")
        resume_from = out_dir / "checkpoints" / "last.ckpt"
        if not resume_from.is_file():  # stopped before its first epoch ended: nothing trained to keep
            print(f"[train] {out_dir}: no epoch finished before it stopped (no {resume_from.relative_to(out_dir)}): "
                  "it starts again from epoch 1")
            resume_from = None
    # lazy: Lightning and torch load once the config is valid (keeps config errors under 1 s)
    from pianoeval.train.run import default_run_dir, final_table, read_checkpoint, train_run

    if resume_from is not None:
        read_checkpoint(resume_from, f"evaluate the best checkpoint with --evaluate-stopped --out {out_dir}, "
                                     "or train afresh with another --out")
    closed_form = get_model(config.model_name).fit == "closed_form"
    print(f"[train] {config.model_name} on {config.data.split} fold {config.data.fold} "
          f"({config.input_label()}, labels {config.data.labels}), seed {config.seed}, "
          + ("fitted in closed form" if closed_form else f"{config.train.max_epochs} epochs"))
    if resume_from is not None:
        print(f"[train] resuming from {resume_from}")

    out_dir = out_dir or default_run_dir(config)
    try:
        result = train_run(config, out_dir=out_dir, threads=args.threads, progress=args.progress,
                           resume_from=resume_from)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the finished epochs' checkpoints are kept
        return interrupted(out_dir, args.threads)
    if result.metrics:
        print(final_table(result.metrics, result.warnings))
    if result.fit:
        print("[train] fit: " + ", ".join(f"{k} {v:g}" for k, v in result.fit.items()))
    print(f"[train] {result.status}: best epoch {result.best_epoch}, {result.epochs_run} epochs in "
          f"{result.wall_seconds / 60:.1f} min; results in {result.out_dir}")
    if result.error:
        print(f"[train] {result.error}")
    return 0 if result.status == "completed" else 1
