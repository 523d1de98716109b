"""Run a hyper-parameter sweep: a YAML search space -> Ray Tune trials with Optuna + ASHA.

    python runners/sweep.py --space smoke                  # a few minutes on a laptop
    python runners/sweep.py --space han --num-samples 64 --address auto --storage s3://bucket/pianoeval
    python runners/sweep.py --space han --resume           # continue the latest run after a crash
    python runners/sweep.py --space han --resume --num-samples 64   # extend a finished 32-trial run by 32
    python runners/sweep.py --space han --set "budget.folds=[0,1,2,3]" --confirm 3   # cross-validated, confirmed
    python runners/sweep.py --space han_cv --evaluate-test    # 4 folds; the winner's fold models scored on test
    python runners/sweep.py --space han --dry-run --set budget.max_epochs=5
    python runners/sweep.py --space smoke --logger mlflow --logger wandb   # also to MLflow and W&B
"""

import sys

from pianoeval.cli import Parser, non_negative_int, positive_float, positive_int, run_cli, run_name
from pianoeval.sweep.cli import main


def confirm_top(space, run_dir, k, args):
    # lazy: the ablation engine (Ray, pandas) loads only when --confirm runs (config errors stay fast)
    from pianoeval.ablation.confirm import confirm_from_args

    return confirm_from_args(space, run_dir, k, args)


if __name__ == "__main__":
    p = Parser(description=__doc__)
    p.add_argument("--space", required=True, help="a search_spaces/<name>.yaml name (or a path to a space file)")
    p.add_argument("--num-samples", type=positive_int, help="trials to sample (default: the space's budget.num_samples)")
    p.add_argument("--confirm", type=positive_int, metavar="K",
                   help="after the search, retrain the top K configs on every fold with a fresh seed; the summary shows "
                        "search vs confirmed scores and best.yaml becomes the confirmed winner")
    p.add_argument("--evaluate-test", action="store_true",
                   help="also score each trial's best checkpoint (each fold's, cross-validated) on the test set: "
                        "recorded in its metrics.json, predictions.parquet and the fold<k>/test/ columns, never used "
                        "to select or prune (runners/reference_tables.py --sweep pairs the winner with a reference)")
    p.add_argument("--max-failures", type=non_negative_int, default=2,
                   help="retries of a crashed trial from its last checkpoint (default 2; 0: a failure is final)")
    p.add_argument("--max-concurrent", type=positive_int, help="trials at once (default: as many as resources allow)")
    p.add_argument("--address", help="connect to a Ray cluster (auto, ray://host:10001); default: start a local one")
    p.add_argument("--connect-timeout", type=positive_float, default=30.0,
                   help="seconds to reach the --address cluster before giving up (default 30)")
    p.add_argument("--storage", help="results root: a folder (default results/) or a pyarrow URI (s3://, gs://)")
    p.add_argument("--resume", action="store_true", help="resume the latest (or --run-id) run of this space")
    p.add_argument("--run-id", type=run_name, help="name of the run folder (default: a timestamp)")
    p.add_argument("--dashboard", action="store_true", help="start Ray's dashboard on 127.0.0.1 and print its URL")
    p.add_argument("--dashboard-host", default="127.0.0.1", help="bind the dashboard elsewhere (e.g. 0.0.0.0)")
    p.add_argument("--num-cpus", type=positive_int, help="CPUs for a local Ray (default: all)")
    p.add_argument("--logger", action="append", metavar="mlflow[=URI]|wandb[=PROJECT]",
                   help="also log every trial to MLflow (default store: <run>/mlflow.db) or W&B (offline unless "
                        "logged in); repeatable; needs the tracking extra. TensorBoard files are always written")
    p.add_argument("--dry-run", action="store_true", help="print the resolved space and budget, run nothing")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override: budget.max_epochs=2, sampler.name=random, train.lr=1e-3, model.hidden_size=32 ...")
    sys.exit(run_cli(lambda: main(p.parse_args(), confirm_top=confirm_top)))
