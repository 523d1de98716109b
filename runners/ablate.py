"""Run an ablation: variants x folds x seeds on the sweep engine, then paired comparison tables.

    python runners/ablate.py han_incremental --dry-run
    python runners/ablate.py han_incremental --set budget.max_epochs=1 --set folds=[0] --set seeds=[0]
    python runners/ablate.py han_zeroed --only zero_beat_eval
    python runners/ablate.py han_incremental --logger mlflow   # also one MLflow run per trained run
    python runners/ablate.py staged_elimination            # all stages; --resume continues where it stopped
    python runners/ablate.py staged_elimination --until round1   # the screen only; --resume goes on
"""

import sys

from pianoeval.ablation.cli import main
from pianoeval.cli import Parser, non_negative_int, positive_float, positive_int, run_cli, run_name


if __name__ == "__main__":
    p = Parser(description=__doc__)
    p.add_argument("name", help="an ablations/<name>.yaml name (or a path to a spec file)")
    p.add_argument("--dry-run", action="store_true", help="print the trial set and its estimated cost; run nothing")
    p.add_argument("--no-estimate", action="store_true", help="with --dry-run: skip the timed cost estimate")
    p.add_argument("--resume", action="store_true", help="continue the latest (or --run-id) run")
    p.add_argument("--run-id", type=run_name, help="name of the run folder (default: a timestamp)")
    p.add_argument("--address", help="connect to a Ray cluster (auto, ray://host:10001); default: a local one")
    p.add_argument("--connect-timeout", type=positive_float, default=30.0,
                   help="seconds to reach the --address cluster before giving up (default 30)")
    p.add_argument("--max-failures", type=non_negative_int, default=2,
                   help="retries of a crashed run from its last checkpoint (default 2; 0: a failure is final)")
    p.add_argument("--storage", help="results root (default results/)")
    p.add_argument("--num-cpus", type=positive_int, help="CPUs for a local Ray (default: all)")
    p.add_argument("--max-concurrent", type=positive_int, help="runs at once (default: as resources allow)")
    p.add_argument("--logger", action="append", metavar="mlflow[=URI]|wandb[=PROJECT]",
                   help="also log every run to MLflow (default store: <run>/mlflow.db) or W&B (offline unless "
                        "logged in); repeatable; needs the tracking extra. TensorBoard files are always written")
    p.add_argument("--until", metavar="STAGE", help="staged specs: stop after this stage (e.g. round1)")
    p.add_argument("--only", action="append", metavar="VARIANT", help="run only this variant (and the baseline)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override: folds=[0], seeds=[0], budget.max_epochs=1, data.max_train_segments=100 ...")
    sys.exit(run_cli(lambda: main(p.parse_args())))
