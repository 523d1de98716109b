"""Train one model config on one fold of PercePiano and evaluate its best checkpoint.

    python runners/train.py --model han --split performer --fold 0
    python runners/train.py --model han --split folds.json --fold 2 --set data.labels=percepiano_categories
    python runners/train.py --model bilstm_baseline --set train.max_epochs=5
    python runners/train.py --config results/runs/<run>/resolved.yaml     # rerun a saved run
    python runners/train.py --config results/runs/<run>/resolved.yaml --out results/runs/<run> --resume
"""

import argparse
import sys

from pianoeval.cli import run_cli
from pianoeval.train.cli import main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="registered model name (default: han, or the config file's)")
    parser.add_argument("--config", help="a run config YAML (e.g. a saved resolved.yaml)")
    parser.add_argument("--split", help="performer, piece, or a folds JSON file (docs/data.md)")
    parser.add_argument("--fold", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. train.lr=1e-4")
    parser.add_argument("--out", help="run directory (default: results/runs/<time>-<model>-<split><fold>-s<seed>)")
    parser.add_argument("--resume", action="store_true", help="continue --out from its checkpoints/last.ckpt")
    parser.add_argument("--evaluate-stopped", action="store_true",
                        help="evaluate the best checkpoint of --out, a run stopped before it finished")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--progress", action="store_true", help="show a progress bar per epoch")
    sys.exit(run_cli(lambda: main(parser.parse_args())))
