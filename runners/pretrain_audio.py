"""Pre-train a pianoeval audio backbone on rendered audio (ASAP windows, PercePiano training segments).

    python runners/pretrain_audio.py --force                 # rebuild the shipped default, pianoeval_aligned
    python runners/pretrain_audio.py --name pianoeval_small --objective contrastive
    python runners/pretrain_audio.py --name mix --objective aligned:1,contrastive:0.5 --force

Objectives: `contrastive` (cross-performer InfoNCE + augmentation invariance on ASAP
passages), `aligned` (predict the source MIDI's performance curves and onset roll frame by
frame), or a weighted sum `name:weight,...`. See docs/audio.md.
"""

import argparse
import sys

from pianoeval.cli import (Parser, core_count, non_negative_int, positive_float, positive_int, run_cli,
                           run_name)
from pianoeval.data.splits import NUM_FOLDS
from pianoeval.models.configs.audio import DEFAULT_BACKBONE_NAME

OBJECTIVES = ("contrastive", "aligned")


def objective(text: str) -> dict[str, float]:
    """``aligned`` / ``contrastive`` / ``aligned:1,contrastive:0.5`` -> {name: weight}."""
    weights = {}
    for part in text.split(","):
        name, _, weight = part.strip().partition(":")
        if name not in OBJECTIVES:
            raise argparse.ArgumentTypeError(f"{name!r} is not an objective (use {', '.join(OBJECTIVES)}, or "
                             f"weights like aligned:1,contrastive:0.5)")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"weight {weight!r} of {name} is not a number") from None
        if not value >= 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"weight {weight!r} of {name} must be a finite number >= 0")
        if name in weights:
            raise argparse.ArgumentTypeError(f"{name!r} is named twice in {text!r} (give each objective once)")
        weights[name] = value
    if not any(weights.values()):
        raise argparse.ArgumentTypeError(f"{text!r} gives every objective weight 0")
    return weights


def main(args) -> int:
    # lazy: torch and the audio stack load once the flags parse (a bad flag is one line in well under 1 s)
    from pianoeval.audio.cli import main as pretrain

    return pretrain(args)


if __name__ == "__main__":
    p = Parser(description=__doc__)
    p.add_argument("--name", type=run_name, default=DEFAULT_BACKBONE_NAME,
                   help=f"folder under results/pretrained/audio/ (default {DEFAULT_BACKBONE_NAME}, the shipped default)")
    p.add_argument("--force", action="store_true", help="pre-train again even if the folder exists")
    p.add_argument("--objective", type=objective, default="aligned",
                   help="aligned (default), contrastive, or weights like aligned:1,contrastive:0.5")
    p.add_argument("--steps", type=positive_int,
                   help="optimiser steps (default 150 contrastive only, 1500 with the aligned objective)")
    p.add_argument("--percepiano-fold", type=int, choices=range(NUM_FOLDS), default=0, metavar="FOLD",
                   help="aligned objective: also the training segments of this performer-split fold (default 0)")
    p.add_argument("--no-percepiano", action="store_true",
                   help="aligned objective: ASAP windows only, no PercePiano training segments")
    p.add_argument("--items-per-batch", type=positive_int, help="aligned objective: rendered items per step (default 16)")
    p.add_argument("--seed", type=non_negative_int, help="seed of windows, batches and initialisation (default 0)")
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
    p.add_argument("--workers", type=core_count, help="processes for rendering / features (default: all cores)")
    p.add_argument("--threads", type=core_count, default=1, help="torch threads (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    sys.exit(run_cli(lambda: main(p.parse_args(namespace=argparse.Namespace(argv=sys.argv[1:])))))
