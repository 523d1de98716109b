"""The demo behind `make demo`: a real short sweep on the bundled PercePiano data.

Runs the `smoke` search space (a tiny HAN-family model on real segments, ASHA over 3 epochs),
then prints the best config, the results folder and how to open the report.
"""

import sys

from pianoeval.cli import Parser, run_cli
from pianoeval.demo import main

if __name__ == "__main__":
    Parser(description=__doc__).parse_args()
    sys.exit(run_cli(main))
