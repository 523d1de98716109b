"""``runners/sweep.py``: parse nothing more than the runner did, run the sweep, print where things are."""

from __future__ import annotations

from pathlib import Path

import yaml

from pianoeval.config import parse_set
from pianoeval.data.inputs import fold_has_test
from pianoeval.errors import ConfigError
from pianoeval.io import run_id_for
from pianoeval.provenance import changed_inputs
from pianoeval.sweep.engine import SweepOptions, results_folder, run_sweep
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
             f"reduction factor {space.budget.reduction_factor:g}"
             + (f"; {len(space.folds)} folds per trial {list(space.folds)}, fold pruning "
                + (f"at a gap of {space.budget.fold_max_gap:g}" if space.budget.fold_max_gap is not None else "off")
                if space.cross_validated else f"; fold {space.folds[0]}"),
             f"resources per trial: {space.resources.cpu:g} CPU, {space.resources.gpu:g} GPU"
             + (f" ({space.resources.packing()})" if space.resources.gpu else ""),
             "reference baselines: " + (", ".join(space.reference_baselines) + " (closed form, fitted on each fold "
                                        "after the trials, beside them)" if space.reference_baselines else "none"),
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


def _resumed_run(space, args) -> Path | None:
    """The local run folder ``--resume`` continues (found as ``run_sweep`` finds it), or None:
    not resuming, or remote storage that cannot be read here."""
    if not args.resume or (args.storage and "://" in args.storage):
        return None
    folder = results_folder(args.storage) / "sweeps" / space.name
    return folder / run_id_for(folder, True, args.run_id, "sweep.yaml", f"space {space.name!r}")


def main(args, confirm_top=None) -> int:
    """``confirm_top(space, run_dir, k, args)``: what ``--confirm K`` runs after the search (the
    ablation engine's confirmation, which sits above the sweep engine; the runner passes it)."""
    parse_loggers(args.logger)  # an unknown logger or a missing extra: one line, before anything runs
    space = load_space(args.space, parse_set(args.set or []))
    num_samples = args.num_samples or space.budget.num_samples
    confirm = getattr(args, "confirm", None)
    if confirm and not args.resume and confirm > (grid_size(space) if space.sampler.name == "grid" else num_samples):
        raise ConfigError(f"--confirm {confirm}: more than the {num_samples} trials this sweep samples; "
                          f"ask for at most {num_samples}")
    no_test = [k for k in space.folds if not fold_has_test(space.base.data.split, k)]
    if getattr(args, "evaluate_test", False) and no_test:
        raise ConfigError(f"--evaluate-test: {space.base.data.split} fold {no_test[0]} has no test list; leave the "
                          "flag out, or give the folds file a test list")
    resumed = _resumed_run(space, args)  # a --resume without a run to continue: one line, dry run or not
    if args.dry_run:
        print(describe(space, num_samples))
        if resumed is not None:
            print(f"--resume continues run {resumed.name} ({resumed})")
        if confirm:
            print(f"then --confirm {confirm}: the top {confirm} configs retrained on every fold with a fresh seed")
        return 0
    from pianoeval.data.frames import check_frames_inputs  # lazy: torch loads once the space is valid (dry runs)

    check_frames_inputs([space.base])  # an unusable frames file: one line, before any trial
    if resumed is not None:  # the finished trials read the inputs as they were then
        for line in changed_inputs(resumed, [space.base]):
            print(f"[sweep] {line}")
    options = SweepOptions(num_samples=args.num_samples, max_concurrent=args.max_concurrent,
                           max_failures=args.max_failures, address=args.address,
                           storage=args.storage, resume=args.resume, run_id=args.run_id, dashboard=args.dashboard,
                           dashboard_host=args.dashboard_host, num_cpus=args.num_cpus,
                           connect_timeout=args.connect_timeout,
                           loggers=tuple(args.logger or ()), evaluate_test=getattr(args, "evaluate_test", False))
    result = run_sweep(space, options)
    trials = result.trials
    counts = trials["status"].value_counts().to_dict() if len(trials) else {}
    print(f"[sweep] done in {result.wall_seconds / 60:.1f} min: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if result.best_config:
        prov = result.best_config.get("provenance", {})
        where = (f"mean over folds {prov.get('folds')} (sd {prov.get('sd'):.4f})" if space.cross_validated
                 else f"at epoch {prov.get('best_epoch')}")
        print(f"[sweep] best trial {prov.get('trial_id')}: {space.metric} = {prov.get('value'):.4f} {where}")
        # a conditional parameter the best trial did not sample is a missing (NaN) cell: leave it out
        sampled = {k[len('config/'):]: v for k, v in trials.iloc[0].items()
                   if k.startswith("config/") and not (isinstance(v, float) and v != v)}
        print("[sweep] best config: " + ", ".join(f"{k}={v}" for k, v in sampled.items()))
    if confirm:
        confirm_top(space, result.run_dir, confirm, args)
    references = ", references.parquet" if (result.run_dir / "references.parquet").is_file() else ""
    print(f"[sweep] results: {result.run_dir} (trials.parquet, best.yaml, summary.md{references})")
    print(f"[sweep] report: python runners/report.py {result.run_dir}")
    return 0
