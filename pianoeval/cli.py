"""Shared command-line plumbing for ``runners/``: one-line errors, exit code 2."""

from __future__ import annotations

import sys
from typing import Callable

from pianoeval.errors import PianoevalError

EXIT_BAD_INPUT = 2


def run_cli(main: Callable[[], int]) -> int:
    """Call ``main``; a PianoevalError (bad config, missing data) becomes one line on
    stderr and exit code 2, with nothing started."""
    try:
        return main() or 0
    except PianoevalError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
