"""Seconds from starting a runner to its one-line config error (exit 2), for every runner.

    python benchmarks/config_errors.py                    # each runner, median of 5
    python benchmarks/config_errors.py --repeats 3 --runners train sweep
    python benchmarks/config_errors.py --root ../other-checkout   # the same commands on another tree

Each command below asks for something that does not exist (an unknown model key, a missing
file, a number out of range), so the runner stops with ``error: ...`` and exit code 2 before
anything starts; the figure is the wall time of the whole process (interpreter start-up,
imports, parsing, validation): what a typo costs. The CPU time (user + system) of the process
is recorded beside it: on a busy machine the wall time also counts waiting for a core. ``tests/test_layers.py`` runs the
same commands with a generous bound. Writes results/benchmarks/config_errors.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: runner -> arguments that make it stop with a config error (exit 2)
COMMANDS: dict[str, list[str]] = {
    "train": ["--model", "han", "--set", "model.nosuchkey=1"],
    "sweep": ["--space", "han", "--set", "model.nosuchkey=1"],
    "ablate": ["han_incremental", "--set", "model.nosuchkey=1"],
    "export_frames": ["--model", "han", "--out", "unused.pt", "--set", "nosuchkey=1"],
    "degradation_probe": ["--set", "nosuchkey=1"],
    "pretrain_symbolic": ["--encoder", "s2", "--set", "nosuchkey=1"],
    "pretrain_audio": ["--hidden-size", "0"],
    "check_split": ["no/such/folds.json"],
    "report": ["no/such/run", "--top-k", "0"],
    "prepare_data": ["--workers", "0"],
    "demo": ["--nosuchflag"],
}


def run(runner: str, env: dict[str, str] | None = None, root: Path = ROOT) -> tuple[float, int, str]:
    """(seconds, exit code, last line of stderr) of one config error of ``runner``."""
    seconds, _, code, message = timed(runner, env, root)
    return seconds, code, message


def timed(runner: str, env: dict[str, str] | None = None, root: Path = ROOT) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds, exit code, last line of stderr) of one config error of ``runner``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(root / "runners" / f"{runner}.py"), *COMMANDS[runner]],
                          cwd=root, capture_output=True, text=True, env=env, timeout=300)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = done.stderr.strip().splitlines()
    return seconds, cpu, done.returncode, lines[-1] if lines else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runners", nargs="+", choices=sorted(COMMANDS), default=list(COMMANDS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose runners to time (default: this one)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    env = {**os.environ, "PYTHONPATH": str(root)}
    rows = []
    load = os.getloadavg()
    for runner in args.runners:
        timed(runner, env, root)  # warm the file cache
        walls, cpus, codes, message = [], [], set(), ""
        for _ in range(args.repeats):
            seconds, cpu, code, message = timed(runner, env, root)
            walls.append(seconds)
            cpus.append(cpu)
            codes.add(code)
        row = {"runner": runner, "args": " ".join(COMMANDS[runner]), "median_s": round(statistics.median(walls), 2),
               "min_s": round(min(walls), 2), "max_s": round(max(walls), 2),
               "cpu_median_s": round(statistics.median(cpus), 2), "exit_codes": sorted(codes),
               "message": message[:120]}
        rows.append(row)
        print(f"{runner:18s} {row['median_s']:6.2f} s (min {row['min_s']:.2f}, max {row['max_s']:.2f}), "
              f"CPU {row['cpu_median_s']:.2f} s  exit {row['exit_codes']}  {row['message'][:60]}", flush=True)
    out = ROOT / "results" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    (out / "config_errors.json").write_text(json.dumps(
        {"root": str(root), "load_average": [load, os.getloadavg()], "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
