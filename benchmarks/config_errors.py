"""Seconds from starting a runner to its one-line config error (exit 2), for every runner.

    python benchmarks/config_errors.py                    # each runner, median of 5
    python benchmarks/config_errors.py --repeats 3 --runners train sweep

Each command below asks for something that does not exist (an unknown model key, a missing
file, a number out of range), so the runner stops with ``error: ...`` and exit code 2 before
anything starts; the figure is the wall time of the whole process (interpreter start-up,
imports, parsing, validation). It is what a typo costs. ``tests/test_layers.py`` runs the
same commands with a generous bound. Writes results/benchmarks/config_errors.json.
"""

from __future__ import annotations

import argparse
import json
import os
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


def run(runner: str, env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """(seconds, exit code, last line of stderr) of one config error of ``runner``."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "runners" / f"{runner}.py"), *COMMANDS[runner]],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    seconds = time.perf_counter() - start
    lines = done.stderr.strip().splitlines()
    return seconds, done.returncode, lines[-1] if lines else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runners", nargs="+", choices=sorted(COMMANDS), default=list(COMMANDS))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rows = []
    for runner in args.runners:
        run(runner, env)  # warm the file cache
        times, codes, message = [], set(), ""
        for _ in range(args.repeats):
            seconds, code, message = run(runner, env)
            times.append(seconds)
            codes.add(code)
        row = {"runner": runner, "args": " ".join(COMMANDS[runner]), "median_s": round(statistics.median(times), 2),
               "min_s": round(min(times), 2), "max_s": round(max(times), 2), "exit_codes": sorted(codes),
               "message": message[:120]}
        rows.append(row)
        print(f"{runner:18s} {row['median_s']:6.2f} s (min {row['min_s']:.2f}, max {row['max_s']:.2f})  "
              f"exit {row['exit_codes']}  {row['message'][:70]}", flush=True)
    out = ROOT / "results" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    (out / "config_errors.json").write_text(json.dumps({"load_average": os.getloadavg(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
