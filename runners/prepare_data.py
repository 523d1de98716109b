"""Prepare the PercePiano note features (cached; normally done on first use).

    python runners/prepare_data.py             # extract (or load) the cached features, print a summary
    python runners/prepare_data.py --realign   # rerun the score-performance alignment for every segment
    python runners/prepare_data.py --splits    # rewrite pianoeval/data/splits/piece_split.json
    python runners/prepare_data.py --docs      # rewrite docs/features.md from the column spec
"""


import sys

from pianoeval.cli import Parser, core_count, run_cli


def main(args) -> int:
    # lazy: the feature extraction stack loads once the flags parse (a bad flag is one line in well under 1 s)
    from pianoeval.data.prepare import main as prepare

    return prepare(args)


if __name__ == "__main__":
    parser = Parser(description=__doc__)
    parser.add_argument("--realign", action="store_true", help="recompute every alignment (slow: ~5 min on 2 cores)")
    parser.add_argument("--force", action="store_true", help="re-extract features even when the cache is fresh")
    parser.add_argument("--splits", action="store_true", help="rewrite the piece split file")
    parser.add_argument("--docs", action="store_true", help="rewrite docs/features.md (columns + match rates)")
    parser.add_argument("--workers", type=core_count, default=None, help="parallel processes (default: all cores)")
    sys.exit(run_cli(lambda: main(parser.parse_args())))
