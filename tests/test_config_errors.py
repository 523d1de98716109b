"""A typo costs a second, not a Lightning import: every runner's config error (the commands of
benchmarks/config_errors.py) exits 2 with one ``error:`` line, fast.

The target is under 1 s of wall time on an idle machine (docs/benchmarks.md has the measured
figures). The bound here is on the process's CPU time (user + system), 3 s: what the runner
itself does, which a busy CI machine does not inflate the way it inflates the wall time
(importing torch and Lightning alone takes about 5 CPU-seconds, so the bound still catches a
heavy import on the config path). A run over it is retried once (a cold file cache)."""

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOUND_CPU_S = 3.0

_spec = importlib.util.spec_from_file_location("config_errors", ROOT / "benchmarks" / "config_errors.py")
config_errors = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(config_errors)


@pytest.mark.parametrize("runner", sorted(config_errors.COMMANDS))
def test_a_config_error_is_one_line_and_exit_2_within_the_bound(runner):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cpu_times, wall_times = [], []
    for _ in range(2):
        wall, cpu, code, message = config_errors.timed(runner, env)
        cpu_times.append(cpu)
        wall_times.append(wall)
        assert code == 2 and message.startswith("error: "), (code, message)
        if cpu < BOUND_CPU_S:
            break
    print(f"{runner}: {min(cpu_times):.2f} CPU-s, {min(wall_times):.2f} s wall")
    assert min(cpu_times) < BOUND_CPU_S, (f"{runner}: {min(cpu_times):.2f} CPU-seconds for a config error "
                                          f"(bound {BOUND_CPU_S} s): something heavy is imported before the check")
