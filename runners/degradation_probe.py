"""Degradation sanity probe: train a symbolic model on the four quality tiers of ASAP
windows, check it ranks pristine above poor on unseen pieces, and check whether its
score tracks PercePiano's listener ratings or only detects the artefacts.

    python runners/degradation_probe.py --model s2_gnn
    python runners/degradation_probe.py --model s3_continuous --train-windows 300 --epochs 2

Prints the per-tier mean scores, the pristine-above-tier shares and the correlation of
the model's score with every PercePiano dimension; writes the same as JSON (--out).
"""

import json
import sys
from dataclasses import asdict
from pathlib import Path

from pianoeval.cli import (Parser, core_count, non_negative_float, non_negative_int,
                           positive_float, positive_int, run_cli)
from pianoeval.config import parse_set
from pianoeval.io import check_output_file
from pianoeval.models.registry import get_model


def main(args) -> int:
    if args.out:
        check_output_file(args.out, "--out", ".json")  # before the training, not after it
    overrides = parse_set(args.set or [])
    get_model(args.model).make_config(overrides, "probe.model")  # a config error stops here
    # lazy: torch and the symbolic track load once the config is valid (keeps config errors under 1 s)
    import torch

    from pianoeval.symbolic.degradation_probe import run_probe

    torch.set_num_threads(args.threads)
    result = run_probe(args.model, overrides, args.train_windows, args.test_windows, args.epochs,
                       args.batch_size, args.lr, args.lambda_rank, args.seed)
    print("tier means (unseen pieces): " + ", ".join(f"{k} {v:.3f}" for k, v in result.tier_means.items()))
    print("pristine above: " + ", ".join(f"{k} {v:.1%}" for k, v in result.pristine_above.items()))
    print(f"PercePiano: score renderings {result.score_renderings:.3f} vs human performances {result.human_performances:.3f}")
    for name, (pearson, spearman) in result.label_correlation.items():
        print(f"  r with {name:44s} pearson {pearson:+.3f}  spearman {spearman:+.3f}")
    print(f"[probe] {result.wall_seconds / 60:.1f} min")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(asdict(result), indent=1))
    return 0


if __name__ == "__main__":
    parser = Parser(description=__doc__)
    parser.add_argument("--model", default="s2_gnn", help="a registered symbolic model")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="model field, e.g. hidden_size=64")
    parser.add_argument("--train-windows", type=positive_int, default=400)
    parser.add_argument("--test-windows", type=positive_int, default=200)
    parser.add_argument("--epochs", type=positive_int, default=3)
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--lr", type=positive_float, default=1e-3)
    parser.add_argument("--lambda-rank", type=non_negative_float, default=1.0)
    parser.add_argument("--seed", type=non_negative_int, default=7)
    parser.add_argument("--threads", type=core_count, default=1)
    parser.add_argument("--out", help="write the result as JSON here")
    sys.exit(run_cli(lambda: main(parser.parse_args())))
