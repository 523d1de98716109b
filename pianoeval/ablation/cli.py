"""``runners/ablate.py``: dry run (the trial set as a table, with an estimated cost) or run."""

from __future__ import annotations

import math

from pianoeval.ablation.spec import _ablation_path, check_resumed_run, load_ablation
from pianoeval.ablation.staged import is_staged, load_staged, main_staged
from pianoeval.config import parse_set
from pianoeval.errors import ConfigError, DataError
from pianoeval.io import atomic_write_text
from pianoeval.sweep.loggers import parse_loggers


def dry_run_table(spec, estimate: bool = True, print_fn=print) -> None:
    # lazy: torch and Lightning load only for a dry run's timed estimate (keeps config errors under 1 s)
    from pianoeval.train.estimate import epoch_seconds

    per_epoch: dict[str, float] = {}
    to_prepare: dict[str, str] = {}  # what must exist before the run, e.g. a pre-trained encoder
    if estimate:
        for name, config in spec.variants.items():
            try:
                per_epoch[name] = epoch_seconds(config, threads=max(1, int(spec.resources.cpu)))
            except DataError as missing:  # a dry run shows the plan; what is missing is listed, not fatal
                to_prepare.setdefault(str(missing), name)
                per_epoch[name] = math.nan
    header = f"{'variant':36s} {'model':16s} {'fold':>4s} {'seed':>5s} {'epochs':>7s} {'cpu':>4s} {'gpu':>4s} {'est. CPU-h':>10s}"
    print_fn(header)
    print_fn("-" * len(header))
    total = 0.0
    for t in spec.trials:
        untrained = t.eval_only_source or t.reference
        epochs = 0 if untrained else spec.budget.max_epochs
        hours = per_epoch.get(t.variant, math.nan) * epochs * spec.resources.cpu / 3600 if not untrained else 0.0
        total += 0.0 if math.isnan(hours) else hours
        label = t.variant + (f" <- {t.eval_only_source}" if t.eval_only_source else " (reference)" if t.reference else "")
        print_fn(f"{label:36s} {t.config.model_name:16s} {t.fold:>4d} {t.seed:>5d} {epochs:>7d} "
                 f"{spec.resources.cpu:>4g} {spec.resources.gpu:>4g} {hours:>10.2f}")
    trained = sum(1 for t in spec.trials if not t.eval_only_source and not t.reference)
    references = sum(1 for t in spec.trials if t.reference)
    print_fn(f"\n{len(spec.trials)} runs ({trained} trained, {len(spec.trials) - trained - references} eval-only, "
             f"{references} reference fits in closed form) over "
             f"{len(spec.variants) + len(spec.eval_only)} variants + {len(spec.references)} reference baselines x "
             f"{len(spec.folds)} folds x {len(spec.seeds)} seeds; baseline {spec.baseline}; "
             f"metrics {', '.join(spec.metrics)}")
    if spec.resources.gpu:
        print_fn(f"GPUs: {spec.resources.packing()}")
    if estimate:
        early = " (an upper bound: early stopping ends runs sooner)" if spec.budget.early_stopping_patience else ""
        unknown = f" (not counted: {', '.join(n for n in per_epoch if math.isnan(per_epoch[n]))})" if to_prepare else ""
        print_fn(f"estimated cost: {total:.1f} CPU-hours at the full budget{early}; "
                 f"from one timed training step per variant on this machine{unknown}")
    if to_prepare:
        print_fn("\nto prepare before running (the dry run itself needs none of it):")
        for what, name in to_prepare.items():
            print_fn(f"  - {name}: {what}")


def main(args) -> int:
    parse_loggers(args.logger)  # an unknown logger or a missing extra: one line, before anything runs
    path = _ablation_path(args.name)
    if is_staged(path):
        return main_staged(load_staged(path, parse_set(args.set or [])), args)
    spec = load_ablation(path, parse_set(args.set or []))
    if args.until:
        raise ConfigError(f"{path}: --until {args.until}: only a staged spec (one with stages:) runs in stages; "
                          "drop --until")
    if args.only:
        spec = spec.only(args.only)
    if args.dry_run:
        dry_run_table(spec, estimate=not args.no_estimate)
        return 0
    # lazy: Ray Tune, pandas and the statistics stack load once the spec is valid (keeps config errors under 1 s)
    from pianoeval.ablation.compare import comparison_markdown, load_run
    from pianoeval.ablation.runner import AblationOptions, run_dir_for, run_trial_set
    from pianoeval.data.frames import check_frames_inputs
    from pianoeval.provenance import changed_inputs

    check_frames_inputs(t.config for t in spec.trials)  # an unusable frames file: one line, before any run

    options = AblationOptions(address=args.address, storage=args.storage, resume=args.resume, run_id=args.run_id,
                              num_cpus=args.num_cpus, max_concurrent=args.max_concurrent,
                              max_failures=args.max_failures, connect_timeout=args.connect_timeout,
                              loggers=tuple(args.logger or ()))
    run_dir, _ = run_dir_for(spec, options)
    if args.resume:
        check_resumed_run(spec, run_dir)
    print(f"[ablate] {spec.name}: {len(spec.trials)} runs -> {run_dir}")
    if args.resume:  # the finished runs read the inputs as they were then
        for line in changed_inputs(run_dir, [t.config for t in spec.trials]):
            print(f"[ablate] {line}")
    print(f"[ablate] watch: tensorboard --logdir {run_dir}")
    run_trial_set(spec, run_dir, options)
    run = load_run(run_dir)
    atomic_write_text(run_dir / "comparison.md", comparison_markdown(run, spec.description))
    print(f"[ablate] comparison: {run_dir / 'comparison.md'}")
    metric = run.metrics[0]
    if metric not in run.usable or run.usable[metric].isna().all():  # every run failed: no deltas to print
        errors = run.trials["error"].dropna() if "error" in run.trials else []
        first = f"; first error: {str(errors.iloc[0]).splitlines()[0][:200]}" if len(errors) else ""
        print(f"[ablate] no run produced {metric} ({len(run.trials)} runs, none usable){first}")
        return 1
    print(run.deltas().to_string(index=False))
    print(f"[ablate] report with plots: python runners/report.py {run_dir}")
    return 0
