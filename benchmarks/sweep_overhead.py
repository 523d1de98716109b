"""What the sweep engine costs on top of the training it runs, measured side by side.

    python benchmarks/sweep_overhead.py                 # 8 trials, 2 repeats
    python benchmarks/sweep_overhead.py --trials 8 --repeats 3

The same N trials (the smoke space's sampled configs, one epoch on the whole training fold
each, no pruning) run three ways in one process, each repeated ``--repeats`` times (medians reported):

* serial:     ``train_run`` in-process, one after the other, one torch thread each, before
              Ray starts in the process;
* engine x1:  ``run_sweep`` with one trial at a time (Ray started once, beforehand);
* engine x2:  ``run_sweep`` with two concurrent trials on the machine's two cores.

Per-trial overhead = (engine x1 - serial) / N. Parallel efficiency with two concurrent
trials = serial / (2 x engine x2): 1.0 means two cores do twice the work. Ray's start-up
is timed on its own line (paid once per sweep). Writes results/benchmarks/sweep_overhead.json.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--segments", type=int, default=None, help="training segments per trial (default: the whole fold)")
    args = parser.parse_args()

    import optuna
    import ray

    from pianoeval.sweep.engine import SweepOptions, run_sweep, sampler_for
    from pianoeval.sweep.ray_session import init_ray
    from pianoeval.sweep.space import DefineByRun, load_space
    from pianoeval.train.run import train_run

    overrides = {"budget.num_samples": args.trials, "budget.max_epochs": 1, "budget.grace_period": 1,
                 "data.max_train_segments": args.segments}
    space = load_space("smoke", overrides)
    quiet = lambda *a, **k: None  # noqa: E731

    # the trials' configs, sampled the way the engine samples them (the cost of a trial does not
    # depend on the sampled learning rate, dropout or temperature; the model size is fixed)
    study = optuna.create_study(sampler=sampler_for(space), direction="maximize")
    configs = []
    for _ in range(args.trials):
        trial = study.ask()
        DefineByRun(space.parameters)(trial)
        configs.append(dict(trial.params))
        study.tell(trial, 0.0)

    timings: dict[str, list[float]] = {"serial": [], "engine_x1": [], "engine_x2": []}
    with tempfile.TemporaryDirectory() as tmp:
        # serial first, in this process before Ray starts: the baseline shares nothing with Ray
        for repeat in range(args.repeats):
            started = time.perf_counter()
            for i, sampled in enumerate(configs):
                experiment = space.base.with_overrides(sampled, "<sampled config>")
                train_run(experiment, out_dir=Path(tmp) / f"serial{repeat}-{i}", threads=1, verbose=False,
                          evaluate_test=False)
            timings["serial"].append(time.perf_counter() - started)
            print(f"serial, repeat {repeat + 1}: {timings['serial'][-1]:6.1f} s")

        started = time.perf_counter()
        init_ray(SweepOptions(num_cpus=2))
        ray_start = time.perf_counter() - started
        print(f"Ray start-up (once per sweep):        {ray_start:6.1f} s")
        for repeat in range(args.repeats):
            for name, concurrent in (("engine_x1", 1), ("engine_x2", 2)):
                options = SweepOptions(max_concurrent=concurrent, storage=f"{tmp}/{name}", run_id=f"r{repeat}",
                                       print_fn=quiet)
                started = time.perf_counter()
                result = run_sweep(space, options)  # Tune's tables and log lines go to stderr
                timings[name].append(time.perf_counter() - started)
                assert (result.trials["status"] == "completed").all(), result.trials[["status", "error"]]
                print(f"{name}, repeat {repeat + 1}: {timings[name][-1]:6.1f} s")
    ray.shutdown()

    n = args.trials
    serial, x1, x2 = (statistics.median(timings[k]) for k in ("serial", "engine_x1", "engine_x2"))
    overhead = (x1 - serial) / n
    efficiency = serial / (2 * x2)
    print(f"{n} trials, 1 epoch on {args.segments or 'all'} training segments each (medians of {args.repeats}):")
    print(f"  serial in-process:                  {serial:6.1f} s  ({serial / n:5.1f} s per trial)")
    print(f"  engine, 1 at a time:                {x1:6.1f} s")
    print(f"  engine, 2 concurrent on 2 cores:    {x2:6.1f} s")
    print(f"  overhead per trial:                 {overhead:6.2f} s   (target < 1 s)")
    print(f"  parallel efficiency (2 trials):     {efficiency:6.2f}     (target >= 0.85)")
    out = Path("results/benchmarks/sweep_overhead.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"trials": n, "segments": args.segments, "repeats": args.repeats, "ray_start_s": ray_start,
                               "timings": timings, "overhead_per_trial_s": overhead, "efficiency_2x": efficiency},
                              indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
