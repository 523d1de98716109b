"""Audit a folds file for piece leakage, or write pianoeval's own splits as a folds file.

    python runners/check_split.py folds.json                        # per-fold table; exit 2 on leakage
    python runners/check_split.py folds.json --pieces pieces.json --labels labels.json
    python runners/check_split.py --write piece --out written_piece.json   # the built-in splits, same format

A folds file is ``[{"train": [keys], "val": [keys], "test"?: [keys]}, ...]`` or
``{"folds": [...], "test": [keys]}``; a piece is the music excerpt read from PercePiano's
file names, or the piece that lists the key in --pieces ``{piece: [keys]}`` (docs/data.md).
"""

import sys

from pianoeval.cli import Parser, run_cli
from pianoeval.data.audit import audit_split, write_split
from pianoeval.errors import ConfigError


def main(args) -> int:
    if args.write:
        if not args.out or args.folds:
            raise ConfigError("--write needs --out FILE and no folds file to audit")
        return write_split(args.write, args.out)
    if not args.folds:
        raise ConfigError("give a folds file to audit, or --write performer|piece --out FILE")
    if args.out:
        raise ConfigError(f"--out {args.out}: only --write writes a file; an audit prints its table")
    return audit_split(args.folds, pieces=args.pieces, labels=args.labels)


if __name__ == "__main__":
    parser = Parser(description=__doc__)
    parser.add_argument("folds", nargs="?", help="the folds JSON to audit")
    parser.add_argument("--pieces", help="a {piece: [keys]} JSON (default: pieces from PercePiano's file names)")
    parser.add_argument("--labels", help="label set for the label means: a labels JSON, a taxonomy, "
                                         "or a name (default: percepiano19)")
    parser.add_argument("--write", choices=["performer", "piece"], help="write this built-in split as a folds file")
    parser.add_argument("--out", help="where --write writes")
    sys.exit(run_cli(lambda: main(parser.parse_args())))
