"""Write a report of a sweep or ablation run: report.md with PNG figures.

    python runners/report.py results/sweeps/smoke/20261122-042832
    python runners/report.py results/ablations/han_incremental/20261122-044118
    python runners/report.py results/ablations/staged_elimination/20261122-050000 --out /tmp/report

The kind of run is read from the folder (sweep.yaml, ablation.yaml or stages.json); see docs/reports.md.
"""

import sys

from pianoeval.cli import Parser, positive_int, run_cli
from pianoeval.io import check_output_root


def main(args) -> int:
    out = check_output_root(args.out, "--out") if args.out else None
    # lazy: matplotlib and the report modules load once the flags parse (a bad flag is one line in well under 1 s)
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    from pianoeval.report import write_report  # lazy: after the backend is chosen

    path = write_report(args.run_dir, out, top_k=args.top_k)
    print(f"[report] {path} (figures in {path.parent / 'figures'})")
    return 0


if __name__ == "__main__":
    p = Parser(description=__doc__)
    p.add_argument("run_dir", help="a run folder: results/sweeps/<space>/<run-id> or results/ablations/<name>/<run-id>")
    p.add_argument("--out", help="write report.md and figures/ here instead of into the run folder")
    p.add_argument("--top-k", type=positive_int, default=10, help="sweeps: how many trials the top table lists (default 10)")
    sys.exit(run_cli(lambda: main(p.parse_args())))
