"""Write the PercePiano reproduction tables (issue 23) from finished reference runs, as Markdown.

    python runners/reference_tables.py                                  # results/runs/reference
    python runners/reference_tables.py --runs results/runs/reference /other/runs --out /tmp/reference.md
    python runners/reference_tables.py --sweep results/sweeps/han_cv/<run>   # + the sweep's winner vs han

Runs are folders named <model>-<split><fold> (han-piece0), made by runners/train.py --out; see
docs/results.md. Per split: test R2 / pairwise per fold against the paper, the fold ensemble,
the paired gains of the hierarchy, han per dimension, and every run folder used with its command.
With --sweep, a cross-validated sweep's winner (run with --evaluate-test) against the reference
config's fold runs of --against (default han) on the sweep's split: paired by fold, with the compute.
"""

import sys
from pathlib import Path

from pianoeval.cli import Parser, run_cli
from pianoeval.io import atomic_write_text, check_output_file


def main(args) -> int:
    if args.out:
        check_output_file(args.out, "--out", ".md")
    # lazy: pandas, scipy and the report modules load once the flags parse
    from pianoeval.report.reference import find_runs, load_sweep_winner
    from pianoeval.report.reference_tables import reference_markdown, showcase_markdown

    winner = load_sweep_winner(args.sweep) if args.sweep else None  # its one-line errors before the runs' reading
    runs = find_runs(args.runs, cite=args.cite)
    text = reference_markdown(runs)
    if winner is not None:
        text += "\n" + showcase_markdown(runs, winner, against=args.against)
    if args.out:
        atomic_write_text(args.out, text)
        print(f"[reference] {args.out}: {len(runs.finished)} runs, {len(runs.unfinished)} unfinished, "
              f"{len(runs.skipped)} skipped")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    p = Parser(description=__doc__)
    p.add_argument("--runs", nargs="+", default=["results/runs/reference"], metavar="DIR",
                   help="folders of runs <model>-<split><fold>; a name in several is read from the first that "
                        "holds it finished (default results/runs/reference)")
    p.add_argument("--out", help="write the Markdown to this file instead of stdout")
    p.add_argument("--sweep", metavar="RUN_DIR",
                   help="also compare this cross-validated sweep's winner (results/sweeps/<space>/<run>, run with "
                        "--evaluate-test) with the --against model's fold runs on the sweep's split")
    p.add_argument("--against", default="han", metavar="MODEL",
                   help="the reference config the sweep's winner is paired with (default han)")
    p.add_argument("--cite", metavar="DIR", help="name each run folder DIR/<name> in the tables (where the runs are "
                                                 "archived) instead of where it was read")
    sys.exit(run_cli(lambda: main(p.parse_args())))
