"""Pre-train a symbolic encoder on the ASAP windows; the fine-tuning models load it with
``model: {name: s1_remi, pretrained: true}``.

    python runners/pretrain_symbolic.py --encoder s1                        # CPU-size S1, 1,000 steps
    python runners/pretrain_symbolic.py --encoder s3 --steps 300 --set hidden_size=64
    python runners/pretrain_symbolic.py --encoder s2 --variant s2_gnn_base --steps 20000   # GPU size
    python runners/pretrain_symbolic.py --encoder s1 --lambda-contrastive 0.1  # + cross-performer InfoNCE
    python runners/pretrain_symbolic.py --encoder s3 --cross-distractors 10   # + distractors from other windows
    python runners/pretrain_symbolic.py --encoder s3 --lambda-performance 1   # + same-performance InfoNCE
    python runners/pretrain_symbolic.py --encoder s3 --lambda-reconstruct 1   # + masked-curve reconstruction
    python runners/pretrain_symbolic.py --encoder s3 --sources percepiano --percepiano-fold performer:0

Writes results/pretrained/symbolic/<encoder>/<architecture>/{encoder.pt, config.json, history.csv}.
"""

import sys

from pianoeval.cli import (Parser, core_count, non_negative_float, non_negative_int,
                           positive_float, positive_int, run_cli)
from pianoeval.config import parse_set, validate
from pianoeval.errors import ConfigError
from pianoeval.symbolic.pretrain_config import PretrainConfig, encoder_config


def main(args) -> int:
    options = {key: value for key, value in vars(args).items()
               if key in PretrainConfig.model_fields and value is not None}
    options["sources"] = tuple(args.sources.split(","))
    if args.percepiano_fold:
        split, _, fold = args.percepiano_fold.partition(":")
        if not fold.isdigit():
            raise ConfigError(f"--percepiano-fold {args.percepiano_fold!r}: expected SPLIT:FOLD, e.g. performer:0")
        options["percepiano_fold"] = (split, int(fold))
    options["model"] = parse_set(args.set or [])
    config = validate(PretrainConfig, options, "--options")
    encoder_config(config)  # the encoder's model config: an error stops here
    # lazy: torch and the symbolic track load once the config is valid (keeps config errors under 1 s)
    import torch

    from pianoeval.symbolic.pretrain import pretrain

    torch.set_num_threads(args.threads)
    pretrain(config, out_dir=args.out, progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    parser = Parser(description=__doc__)
    parser.add_argument("--encoder", required=True, choices=["s1", "s2", "s2h", "s3"])
    parser.add_argument("--variant", help="registered model whose architecture to pre-train (default: the CPU size)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="model field, e.g. hidden_size=256")
    parser.add_argument("--sources", default="asap", help="comma-separated: asap, percepiano (default: asap)")
    parser.add_argument("--percepiano-fold", dest="percepiano_fold", metavar="SPLIT:FOLD",
                        help="with --sources ...,percepiano: only this fold's training segments (e.g. performer:0)")
    parser.add_argument("--steps", type=positive_int)
    parser.add_argument("--batch-size", dest="batch_size", type=positive_int)
    parser.add_argument("--lr", type=positive_float)
    parser.add_argument("--mask-prob", dest="mask_prob", type=positive_float)
    parser.add_argument("--lambda-contrastive", dest="lambda_contrastive", type=non_negative_float)
    parser.add_argument("--cross-distractors", dest="cross_distractors", type=non_negative_int,
                        help="S3: distractors from other windows of the batch (default 0: the window's own only)")
    parser.add_argument("--lambda-performance", dest="lambda_performance", type=non_negative_float,
                        help="S1/S3: weight of the same-performance InfoNCE over two views of each window (default 0)")
    parser.add_argument("--lambda-reconstruct", dest="lambda_reconstruct", type=non_negative_float,
                        help="S3: weight of the masked-curve reconstruction (default 0)")
    parser.add_argument("--lambda-objective", dest="lambda_objective", type=non_negative_float,
                        help="weight of the encoder's own objective (default 1; 0: the other terms alone)")
    parser.add_argument("--max-items", dest="max_items", type=positive_int, help="seeded subset of the training windows")
    parser.add_argument("--validation-items", dest="validation_items", type=positive_int)
    parser.add_argument("--eval-every", dest="eval_every", type=positive_int)
    parser.add_argument("--seed", type=non_negative_int)
    parser.add_argument("--out", help="output folder (default: where pretrained: true looks)")
    parser.add_argument("--threads", type=core_count, default=1, help="torch threads (default 1)")
    parser.add_argument("--no-progress", action="store_true")
    sys.exit(run_cli(lambda: main(parser.parse_args())))
