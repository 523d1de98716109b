"""``runners/sweep.py``: parse nothing more than the runner did, run the sweep, print where things are."""

from __future__ import annotations

import yaml

from pianoeval.config import parse_set
from pianoeval.sweep.engine import SweepOptions, run_sweep
from pianoeval.sweep.space import grid_size, load_space, model_variants, variant_config
from pianoeval.sweep.loggers import parse_loggers


def describe(space, num_samples: int) -> str:
    """The resolved space and budget, for ``--dry-run``."""
    lines = [f"space {space.name} ({space.path}): {space.description}",
             f"model {space.base.model_name} on {space.base.data.split} fold {space.base.data.fold} "
             f"({space.base.input_label()}), seed {space.base.seed}",
             f"objective: {space.mode} {space.metric}; recorded: {', '.join(space.record) or '-'}",
             f"sampler: {space.sampler.name} (seed {space.sampler.seed}); "
             f"{grid_size(space) if space.sampler.name == 'grid' else num_samples} trials",
             f"budget: ASHA over {space.budget.max_epochs} epochs, grace {space.budget.grace_period}, "
             f"reduction factor {space.budget.reduction_factor:g}",
             f"resources per trial: {space.resources.cpu:g} CPU, {space.resources.gpu:g} GPU"
             + (f" ({space.resources.packing()})" if space.resources.gpu else ""),
             "parameters:"]
    for p in space.parameters:
        cond = f"  when {p.when}" if p.when else ""
        lines.append(f"  {p.key}: {type(p.distribution).__name__} {p.distribution.__dict__}{cond}")
    lines.append("fixed config:")
    lines.append("  " + yaml.safe_dump(space.base.to_dict(), sort_keys=False).replace("\n", "\n  ").rstrip())
    variants = model_variants(space)
    if len(variants) > 1:  # model.name is sampled: what each variant trains (fixed fields applied)
        lines.append("model of each sampled variant (before its other sampled parameters):")
        for name in variants:
            model = variant_config(space.base, space.fixed_model, name, str(space.path)).model
            lines.append(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in model.items() if k != "name"))
    return "\n".join(lines)


def main(args) -> int:
    parse_loggers(args.logger)  # an unknown logger or a missing extra: one line, before anything runs
    space = load_space(args.space, parse_set(args.set or []))
    num_samples = args.num_samples or space.budget.num_samples
    if args.dry_run:
        print(describe(space, num_samples))
        return 0
    options = SweepOptions(num_samples=args.num_samples, max_concurrent=args.max_concurrent,
                           max_failures=args.max_failures, address=args.address,
                           storage=args.storage, resume=args.resume, run_id=args.run_id, dashboard=args.dashboard,
                           dashboard_host=args.dashboard_host, num_cpus=args.num_cpus,
                           connect_timeout=args.connect_timeout,
                           loggers=tuple(args.logger or ()))
    result = run_sweep(space, options)
    trials = result.trials
    counts = trials["status"].value_counts().to_dict() if len(trials) else {}
    print(f"[sweep] done in {result.wall_seconds / 60:.1f} min: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if result.best_config:
        prov = result.best_config.get("provenance", {})
        print(f"[sweep] best trial {prov.get('trial_id')}: {space.metric} = {prov.get('value'):.4f} "
              f"at epoch {prov.get('best_epoch')}")
        # a conditional parameter the best trial did not sample is a missing (NaN) cell: leave it out
        sampled = {k[len('config/'):]: v for k, v in trials.iloc[0].items()
                   if k.startswith("config/") and not (isinstance(v, float) and v != v)}
        print("[sweep] best config: " + ", ".join(f"{k}={v}" for k, v in sampled.items()))
    print(f"[sweep] results: {result.run_dir} (trials.parquet, best.yaml, summary.md)")
    print(f"[sweep] report: python runners/report.py {result.run_dir}")
    return 0
