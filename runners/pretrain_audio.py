"""Pre-train the default pianoeval audio backbone (self-supervised, on rendered ASAP windows).

    python runners/pretrain_audio.py                       # results/pretrained/audio/pianoeval_small/
    python runners/pretrain_audio.py --name wide --hidden-size 256 --steps 2000 --force
"""

import sys

from pianoeval.cli import Parser, positive_float, positive_int, run_cli


def main(args) -> int:
    # lazy: torch and the audio stack load once the flags parse (a bad flag is one line in well under 1 s)
    from pianoeval.audio.cli import main as pretrain

    return pretrain(args)


if __name__ == "__main__":
    p = Parser(description=__doc__)
    p.add_argument("--name", default="pianoeval_small", help="folder under results/pretrained/audio/")
    p.add_argument("--force", action="store_true", help="pre-train again even if the folder exists")
    p.add_argument("--steps", type=positive_int, help="optimiser steps (default 150)")
    p.add_argument("--window-seconds", type=positive_float, help="ASAP window length (default 5)")
    p.add_argument("--windows-per-performance", type=positive_int, help="windows cut from each performance (default 2)")
    p.add_argument("--max-pieces", type=positive_int, help="use only N ASAP pieces (default: all with 2+ performances)")
    p.add_argument("--passages-per-batch", type=positive_int, help="passages x 2 performers per step (default 8)")
    p.add_argument("--lr", type=positive_float, help="peak learning rate (default 1e-3)")
    p.add_argument("--positives", choices=["passage", "recording"],
                   help="contrastive positives: other performers of the passage (default) or only augmented views")
    p.add_argument("--hidden-size", type=positive_int, help="conformer width (default 128)")
    p.add_argument("--num-layers", type=positive_int, help="conformer layers (default 4)")
    p.add_argument("--num-heads", type=positive_int, help="attention heads (default 4)")
    p.add_argument("--intermediate-size", type=positive_int, help="feed-forward width (default 512)")
    p.add_argument("--workers", type=positive_int, help="processes for rendering / features (default: all cores)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    sys.exit(run_cli(lambda: main(p.parse_args())))
