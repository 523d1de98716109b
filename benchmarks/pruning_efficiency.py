"""Does a pruned cross-validated sweep pick the config full cross-validation would pick, and
at what share of the compute? Single-fold selection measured beside it, in one run.

    python benchmarks/pruning_efficiency.py                       # 12 configs x 4 folds, 3 epochs
    python benchmarks/pruning_efficiency.py --segments 400 --epochs 4 --max-concurrent 2

The same N configs (a grid over learning rate and dropout of the smoke space's small HAN,
``note_voice`` at width 16, on ``--segments`` training segments of each performer fold) run
three ways through the sweep engine:

* truth:   every config on all 4 folds at the full budget (no ASHA rung before a fold ends,
           no fold pruning); its mean over the folds ranks the configs;
* cv:      the pruned cross-validated sweep: 4 folds per trial, ASHA in each trial's first
           fold (grace 1) and fold pruning at ``--max-gap``;
* fold0:   today's single-fold selection: fold 0 only, ASHA (grace 1).

For cv and fold0: the chosen config's true rank, its gap to the true best (in the truth's
mean ``val/pairwise_acc``), and the compute used as a share of the truth's, counted in
fold-epochs (load-independent) and in CPU-seconds. Writes
results/benchmarks/pruning_efficiency.json; figures go to docs/benchmarks.md.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

LRS = [3.0e-4, 1.0e-3, 3.0e-3, 1.0e-2]
DROPOUTS = [0.0, 0.2, 0.4]
METRIC = "val/pairwise_acc"


def space_file(folder: Path, segments: int, epochs: int) -> Path:
    """The benchmark's space: the smoke space with a categorical grid (so every way runs the
    same N configs) on more training segments."""
    path = folder / "pruning_bench.yaml"
    path.write_text(json.dumps({
        "description": "pruning-efficiency benchmark space", "extends": "smoke",
        "data": {"max_train_segments": segments},
        "parameters": {"train.lr": {"distribution": "categorical", "values": LRS},
                       "model.dropout": {"distribution": "categorical", "values": DROPOUTS},
                       "model.attention_temperature": None},
        "objective": {"metric": METRIC, "mode": "max", "record": ["val/r2"]},
        "sampler": {"name": "grid", "seed": 0},
        "budget": {"max_epochs": epochs, "grace_period": 1, "reduction_factor": 3,
                   "num_samples": len(LRS) * len(DROPOUTS)},
    }))
    return path


def key(row) -> tuple:
    return (round(float(row["config/train.lr"]), 10), round(float(row["config/model.dropout"]), 10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=300, help="training segments per fold")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-gap", type=float, default=0.02)
    parser.add_argument("--max-concurrent", type=int, default=2)
    args = parser.parse_args()

    from pianoeval.paths import results_root
    from pianoeval.sweep.engine import SweepOptions, run_sweep
    from pianoeval.sweep.space import load_space

    ways = {
        "truth": {"budget.folds": [0, 1, 2, 3], "budget.fold_max_gap": None, "budget.grace_period": args.epochs},
        "cv": {"budget.folds": [0, 1, 2, 3], "budget.fold_max_gap": args.max_gap},
        "fold0": {"budget.folds": [0]},
    }
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = space_file(Path(tmp), args.segments, args.epochs)
        for name, overrides in ways.items():
            space = load_space(path, overrides)
            started = time.perf_counter()
            result = run_sweep(space, SweepOptions(storage=f"{tmp}/results", run_id=name, num_cpus=2,
                                                   max_concurrent=args.max_concurrent, print_fn=print))
            trials = result.trials
            results[name] = {"wall_s": time.perf_counter() - started, "trials": trials,
                             "fold_epochs": int(trials["epochs_run"].sum()),
                             "cpu_s": float(trials["cpu_seconds"].sum())}
            print(f"[bench] {name}: {results[name]['fold_epochs']} fold-epochs, {results[name]['wall_s']:.0f} s")

    truth = results["truth"]["trials"]
    truth = truth.assign(key=truth.apply(key, axis=1)).sort_values(f"best/{METRIC}", ascending=False)
    true_score = dict(zip(truth["key"], truth[f"best/{METRIC}"]))
    ranking = list(truth["key"])
    best = true_score[ranking[0]]
    report = {"configs": len(ranking), "segments": args.segments, "epochs": args.epochs, "max_gap": args.max_gap,
              "truth": {"best": ranking[0], "best_score": best, "fold_epochs": results["truth"]["fold_epochs"],
                        "cpu_s": results["truth"]["cpu_s"], "spread": best - true_score[ranking[-1]]}}
    for name in ("cv", "fold0"):
        trials = results[name]["trials"]
        done = trials[trials["status"] == "completed"].sort_values(f"best/{METRIC}", ascending=False)
        chosen = key(done.iloc[0])
        report[name] = {"chosen": chosen, "true_rank": ranking.index(chosen) + 1,
                        "gap_to_true_best": best - true_score[chosen],
                        "search_score": float(done.iloc[0][f"best/{METRIC}"]),
                        "compute_share_fold_epochs": results[name]["fold_epochs"] / results["truth"]["fold_epochs"],
                        "compute_share_cpu": results[name]["cpu_s"] / results["truth"]["cpu_s"],
                        "pruned": int((trials["status"] == "pruned").sum())}
    print(json.dumps(report, indent=1, default=str))
    out = results_root() / "benchmarks" / "pruning_efficiency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    print(f"[bench] written {out}")


if __name__ == "__main__":
    main()
