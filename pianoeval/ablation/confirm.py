"""``--confirm K``: retrain a finished sweep's top K configs on every fold with a fresh seed.

Picking the best of many configs on the same validation folds flatters the winner. The
confirmation measures by how much: the top K trials (those that finished every fold) are
retrained as an ablation trial set (variants = the K configs, every fold of the split, one
fresh seed; the ablation engine's Tune runs, resume and paired comparison tables) in
``<sweep run>/confirm/``. The sweep's summary then shows each config's search score beside
its confirmed score, and ``best.yaml`` becomes the config the confirmation ranks first
(the search's own pick stays in ``best_search.yaml``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from pianoeval.ablation.compare import comparison_markdown, load_run
from pianoeval.ablation.runner import AblationOptions, run_trial_set
from pianoeval.ablation.spec import AblationSpec, BudgetSpec, with_trials
from pianoeval.config import dump_yaml, load_yaml
from pianoeval.data.folds import folds_of_split
from pianoeval.errors import ConfigError
from pianoeval.io import atomic_write_text, read_table
from pianoeval.sweep.results import sampled_config, write_summary
from pianoeval.sweep.rows import text

CONFIRM_DIR = "confirm"
FRESH_SEED_OFFSET = 1000  # the confirmation's seed: the space's seed + this (never a search seed)


def confirmable(space, trials: pd.DataFrame) -> pd.DataFrame:
    """The trials a confirmation may pick from, best first: finished, with a value."""
    done = trials[trials["status"] == "completed"].dropna(subset=[f"best/{space.metric}"])
    return done.sort_values(f"best/{space.metric}", ascending=space.mode == "min")


def check_confirm(space, trials: pd.DataFrame, k: int, run_dir: Path) -> pd.DataFrame:
    """The top ``k`` trials, or a one-line error when fewer finished."""
    done = confirmable(space, trials)
    if k > len(done):
        raise ConfigError(f"--confirm {k}: only {len(done)} trials of {run_dir} finished"
                          f"{' every fold' if space.cross_validated else ''}; ask for at most {len(done)} "
                          f"(the search's results are kept: rerun with --resume --confirm {max(len(done), 1)})")
    return done.head(k)


def confirmation_spec(space, top: pd.DataFrame) -> AblationSpec:
    """The K configs as an ablation: every fold of the split, one fresh seed, no pruning."""
    seed = space.base.seed + FRESH_SEED_OFFSET
    variants = {"-".join(filter(None, [f"top{rank}", text(row["trial_id"])])): sampled_config(space, row)
                for rank, (_, row) in enumerate(top.iterrows(), start=1)}
    folds = tuple(range(folds_of_split(space.base.data.split)))
    test = space.metric.replace("val/", "test/", 1)
    metrics = tuple(dict.fromkeys([space.metric, test, *[m for m in space.record if m.startswith(("val/", "test/"))]]))
    spec = AblationSpec(f"{space.name}-confirm", space.path, f"confirmation of sweep {space.name}'s top {len(top)}",
                        variants, {}, next(iter(variants)), folds, (seed,), metrics,
                        BudgetSpec(max_epochs=space.budget.max_epochs), space.resources, str(space.path))
    return with_trials(spec)


def confirm_from_args(space, run_dir: Path, k: int, args, say=print) -> pd.DataFrame:
    """``runners/sweep.py --confirm K``: the confirmation with the sweep's own cluster flags,
    and its one-line answer."""
    table = run_confirmation(space, run_dir, k, AblationOptions(
        address=args.address, storage=args.storage, num_cpus=args.num_cpus, max_concurrent=args.max_concurrent,
        max_failures=args.max_failures, connect_timeout=args.connect_timeout, loggers=tuple(args.logger or ())),
        say=say)
    top = table.iloc[0]
    say(f"[sweep] confirmed best: trial {text(top['trial_id']) or '?'} (search rank {top['search_rank']}): "
        f"{space.metric} {top['confirmed']:.4f} +- {top['confirmed_sd']:.4f} over {top['folds']} folds "
        f"(search score {top['search']:.4f}; optimism {top['search'] - top['confirmed']:+.4f})")
    return table


def run_confirmation(space, run_dir: Path, k: int, options: AblationOptions, say=print) -> pd.DataFrame:
    """Retrain the top ``k`` (resumable), write ``confirm/comparison.md``, the confirmation
    table in ``summary.md`` and the confirmed winner as ``best.yaml``; returns the table."""
    trials = read_table(run_dir / "trials.parquet")
    top = check_confirm(space, trials, k, run_dir)
    spec = confirmation_spec(space, top)
    out = run_dir / CONFIRM_DIR
    say(f"[sweep] confirming the top {k}: {len(spec.trials)} runs ({k} configs x {len(spec.folds)} folds, "
        f"seed {spec.seeds[0]}) -> {out}")
    options = replace(options, resume=(out / "ablation.yaml").is_file(), tracking_dir=out)
    frame = run_trial_set(spec, out, options)
    run = load_run(out)
    atomic_write_text(out / "comparison.md", comparison_markdown(run, spec.description))
    table = confirmation_table(space, top, frame, spec)
    write_summary(space, trials, run_dir, confirmation=table)
    _write_best(space, run_dir, table, top)
    return table


def confirmation_table(space, top: pd.DataFrame, frame: pd.DataFrame, spec: AblationSpec) -> pd.DataFrame:
    """One row per confirmed config: search score and rank, confirmed mean and sd over the
    folds, the test metric's confirmed mean; sorted by the confirmed score."""
    test = space.metric.replace("val/", "test/", 1)
    rows = []
    for rank, ((_, trial), variant) in enumerate(zip(top.iterrows(), spec.variants), start=1):
        runs = frame[(frame["variant"] == variant) & (frame["status"] == "completed")]
        values = runs[space.metric].astype(float) if space.metric in runs else pd.Series(dtype=float)
        rows.append({"trial_id": trial["trial_id"], "variant": variant, "search_rank": rank,
                     "search": float(trial[f"best/{space.metric}"]), "confirmed": values.mean(),
                     "confirmed_sd": values.std(ddof=1) if len(values) > 1 else 0.0,
                     "confirmed_test": runs[test].astype(float).mean() if test in runs else float("nan"),
                     "folds": len(values)})
    table = pd.DataFrame(rows)
    return table.sort_values("confirmed", ascending=space.mode == "min", na_position="last").reset_index(drop=True)


def _write_best(space, run_dir: Path, table: pd.DataFrame, top: pd.DataFrame) -> None:
    best = run_dir / "best.yaml"
    if best.is_file() and not (run_dir / "best_search.yaml").is_file():
        (run_dir / "best_search.yaml").write_text(best.read_text())
    winner = table.iloc[0]
    row = top.iloc[int(winner["search_rank"]) - 1]  # by rank: a trial id may be missing (NaN)
    config = sampled_config(space, row).to_dict()
    search = load_yaml(run_dir / "best_search.yaml").get("provenance", {}) if (run_dir / "best_search.yaml").is_file() else {}
    config["provenance"] = {**search, "trial_id": text(winner["trial_id"]), "chosen_by": "confirmation",
                            "confirmed_value": float(winner["confirmed"]), "confirmed_sd": float(winner["confirmed_sd"]),
                            "search_value": float(winner["search"]), "confirm_dir": CONFIRM_DIR}
    config["provenance"].pop("value", None)
    dump_yaml(config, best)
