"""Train one model config on one fold of PercePiano and evaluate its best checkpoint.

    python runners/train.py --model han --split performer --fold 0
    python runners/train.py --model han --split folds.json --fold 2 --set data.labels=percepiano_categories
    python runners/train.py --model bilstm_baseline --set train.max_epochs=5
    python runners/train.py --config results/runs/<run>/resolved.yaml     # rerun a saved run
    python runners/train.py --config results/runs/<run>/resolved.yaml --out results/runs/<run> --resume
"""

import sys

from pianoeval.cli import Parser, core_count, non_negative_int, run_cli
from pianoeval.train.cli import main


if __name__ == "__main__":
    parser = Parser(description=__doc__)
    parser.add_argument("--model", help="registered model name (default: han, or the config file's)")
    parser.add_argument("--config", help="a run config YAML (e.g. a saved resolved.yaml)")
    parser.add_argument("--split", help="performer, piece, or a folds JSON file (docs/data.md)")
    parser.add_argument("--fold", type=non_negative_int)
    parser.add_argument("--seed", type=non_negative_int)
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. train.lr=1e-4")
    parser.add_argument("--out", help="run directory (default: results/runs/<time>-<model>-<split><fold>-s<seed>)")
    parser.add_argument("--resume", action="store_true", help="continue --out from its checkpoints/last.ckpt")
    parser.add_argument("--evaluate-stopped", action="store_true",
                        help="evaluate the best checkpoint of --out, a run stopped before it finished")
    parser.add_argument("--threads", type=core_count, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--progress", action="store_true", help="show a progress bar per epoch")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config, run nothing")
    sys.exit(run_cli(lambda: main(parser.parse_args())))
