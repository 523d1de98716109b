"""Shared command-line plumbing for ``runners/``: one-line errors, exit code 2.

* ``Parser``: argparse whose errors are one line (``error: <prog>: <problem>``) and exit 2,
  instead of a usage block; every runner builds its parser with it.
* ``positive_int`` / ``non_negative_int`` / ``positive_float`` / ``core_count`` / ``run_name``: argparse types
  that check a number or a name at parse time, before anything starts.
* ``run_cli``: calls a runner's ``main``; a ``PianoevalError`` becomes one line and exit 2,
  an interrupt (Ctrl-C, SIGTERM) a clean stop that prints how to resume, exit 130.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from typing import Callable, NoReturn

from pianoeval.errors import PianoevalError, RunInterrupted
from pianoeval.io import check_run_id

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with a one-line error and exit code 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def _number(kind: type, minimum, what: str) -> Callable[[str], int | float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if value != value or value < minimum or value in (float("inf"),):
            raise argparse.ArgumentTypeError(f"{text} is out of range: {what}")
        return value

    parse.__name__ = what  # argparse names the type in "invalid <name> value"
    return parse


positive_int = _number(int, 1, "needs an integer >= 1")
non_negative_int = _number(int, 0, "needs an integer >= 0")
positive_float = _number(float, 1e-300, "needs a number > 0")
non_negative_float = _number(float, 0.0, "needs a number >= 0")


def core_count(text: str) -> int:
    """--threads / --workers: an integer from 1 to the machine's CPU count (more than that only
    oversubscribes, and a huge number starts enough threads to run the machine out of memory)."""
    value = positive_int(text)
    cpus = os.cpu_count() or 1
    if value > cpus:
        raise argparse.ArgumentTypeError(f"{text} is more than this machine's {cpus} CPUs (give 1 to {cpus})")
    return value


core_count.__name__ = "core count"


def run_name(text: str) -> str:
    """A run id: one safe file name (letters, digits, '.', '_', '-', not starting with '.')."""
    try:
        return check_run_id(text)
    except PianoevalError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--run-id ")) from None


def resume_command(argv: list[str], run_id: str) -> str:
    """The command line that continues run ``run_id``: the same arguments (the same spec,
    storage and overrides), with ``--resume --run-id`` and without ``--dry-run``."""
    kept, skip = [], False
    for arg in argv[1:]:
        if skip:
            skip = False
            continue
        if arg in ("--resume", "--dry-run"):
            continue
        if arg == "--run-id":
            skip = True
            continue
        if arg.startswith("--run-id="):
            continue
        kept.append(arg)
    return shlex.join(["python", argv[0], *kept, "--resume", "--run-id", run_id])


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C: the same clean, resumable stop


def run_cli(main: Callable[[], int]) -> int:
    """Call ``main``; a PianoevalError (bad config, missing data) becomes one line on
    stderr and exit code 2, with nothing started. Ctrl-C or SIGTERM stop cleanly: a run
    that can be resumed says how (``RunInterrupted``), exit code 130."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return main() or 0
    except PianoevalError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RunInterrupted as stop:
        print(f"interrupted: finished trials are saved; resume with: {resume_command(sys.argv, str(stop))}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
