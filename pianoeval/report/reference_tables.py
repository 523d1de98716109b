"""The PercePiano reproduction tables (issue 23) as Markdown, from a ``RunSet`` of
``pianoeval.report.reference``; written by ``runners/reference_tables.py``.

    >>> from pianoeval.report.reference import find_runs
    >>> from pianoeval.report.reference_tables import reference_markdown
    >>> print(reference_markdown(find_runs(["results/runs/reference"])))

Per split: the fold table against the paper (and where each model lands), the fold ensemble,
the paired gains, ``han`` per dimension, and the run folders used with their commands and cost.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from pianoeval.errors import ConfigError
from pianoeval.report.reference import (FOLDS, GAIN_PAIRS, LANDING_RULE, PAPER_ONLY, PAPER_TEST_R2, REFERENCE_MODELS,
                                        TRAINED_MODELS, RunSet, SweepWinner, fold_ensemble, landing, mean_sd,
                                        paired_difference, paired_gain)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], text: Sequence[int] = (0,)) -> str:
    """A Markdown table: the ``text`` columns left-aligned, the others (numbers) right-aligned."""
    align = [":--" if i in text else "--:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _num(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _mean_cell(values: Sequence[float]) -> str:
    if not values:
        return ""
    mean, sd = mean_sd(values)
    text = f"{_num(mean)} ± {_num(sd)}" if len(values) > 1 else _num(mean)
    return text + (f" (n={len(values)})" if len(values) < len(FOLDS) else "")


def _model_label(model: str) -> str:
    return f"*`{model}` (reference)*" if model in REFERENCE_MODELS else f"`{model}`"


def _hours(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 600 else f"{seconds / 3600:.2f} h"


def fold_table(runs: RunSet, split: str) -> list[str]:
    """Test R2 / test pairwise per fold, the mean ± sd over folds and the paper's test R2,
    then where each model with a paper figure lands against it."""
    pending = {(r.model, r.fold): r for r in (*runs.unfinished, *runs.skipped) if r.split == split}
    header = ["model", *(f"fold {f}" for f in FOLDS), "test R2, mean ± sd", "test pairwise, mean ± sd",
              "paper, test R2"]
    rows, lands = [], []
    paper = PAPER_TEST_R2.get(split, {})
    for model in runs.models(split):
        folds = runs.folds(model, split)
        cells = []
        for f in FOLDS:
            if f in folds:
                cells.append(f"{_num(folds[f].score('r2'))} / {_num(folds[f].score('pairwise_acc'))}")
            elif (model, f) in pending:
                why = pending[(model, f)].why
                cells.append(f"*{'running/unfinished' if why.startswith('unfinished') else 'skipped'}*")
            else:
                cells.append("–")
        r2s = [r.score("r2") for r in folds.values()]
        figure = paper.get(model)
        rows.append([_model_label(model), *cells, _mean_cell(r2s),
                     _mean_cell([r.score("pairwise_acc") for r in folds.values()]),
                     "" if model not in paper else "not given" if figure is None else _num(figure)])
        if model in paper and r2s:
            mean, sd = mean_sd(r2s)
            ours = f"{_num(mean)} ± {_num(sd)} over {len(r2s)} folds" if len(r2s) > 1 else f"{_num(mean)}, one fold"
            lands.append(f"- `{model}`: no paper figure on this split ({ours})" if figure is None else
                         f"- `{model}`: **{landing(mean, sd, figure)}** ({ours}; paper {_num(figure)})")
    lines = [_table(header, rows), ""]
    others = ", ".join(f"{name} {_num(value)}" for name, value in PAPER_ONLY.get(split, {}).items())
    if others:
        lines += [f"Paper rows without a pianoeval model: {others}.", ""]
    if lands:
        lines += [f"Where each lands ({LANDING_RULE}):", "", *lands, ""]
    return lines


def ensemble_table(runs: RunSet, split: str) -> list[str]:
    rows, notes = [], []
    for model in runs.models(split):
        folds = runs.folds(model, split)
        if not folds:
            continue
        ens = fold_ensemble(list(folds.values()))
        r2_mean_, _ = mean_sd([r.score("r2") for r in folds.values()])
        pw_mean, _ = mean_sd([r.score("pairwise_acc") for r in folds.values()])
        rows.append([_model_label(model), ", ".join(map(str, ens.folds)), _num(ens.r2), _num(r2_mean_),
                     _num(ens.pairwise), _num(pw_mean)])
        if ens.note:
            notes.append(f"`{model}`: {ens.note}.")
    header = ["model", "folds", "ensemble test R2", "mean of fold test R2", "ensemble test pairwise",
              "mean of fold test pairwise"]
    return [_table(header, rows), "", *notes, *([""] if notes else [])]


def gain_table(runs: RunSet, split: str) -> list[str]:
    rows = []
    for model, baseline in GAIN_PAIRS:
        gain = paired_gain(runs, split, model, baseline)
        cells = []
        for key in ("r2", "pairwise_acc"):
            if not gain.folds:
                cells.append("no paired fold")
            elif gain.ci[key] is None:
                cells.append(f"{_num(gain.mean[key], True)} (no CI: fewer than 2 paired folds)")
            else:
                low, high = gain.ci[key]
                cells.append(f"{_num(gain.mean[key], True)} [{_num(low, True)}, {_num(high, True)}]")
        folds = ", ".join(map(str, gain.folds)) or "–"
        rows.append([f"`{model}` − `{baseline}`", folds, str(len(gain.folds)), *cells])
    header = ["gain", "paired folds", "n", "test R2: mean difference [95% t CI]",
              "test pairwise: mean difference [95% t CI]"]
    return [_table(header, rows), ""]


def dimension_table(runs: RunSet, split: str, model: str = "han") -> list[str]:
    folds = runs.folds(model, split)
    if not folds:
        return [f"No finished `{model}` run on this split yet.", ""]
    ens = fold_ensemble(list(folds.values()))
    rows = [[f"`{dim}`", _num(float(np.mean([r.score(f"r2/{dim}") for r in folds.values()]))), _num(value)]
            for dim, value in ens.r2_per_dimension.items()]
    rows.append(["**mean**", _num(float(np.mean([r.score("r2") for r in folds.values()]))), _num(ens.r2)])
    return [_table(["dimension", f"mean over folds {', '.join(map(str, folds))}", "fold ensemble"], rows), ""]


def runs_table(runs: RunSet, split: str) -> list[str]:
    used = sorted((r for r in runs.finished if r.split == split), key=lambda r: (_order(r.model), r.fold))
    rows = [[f"`{r.cited}`", str(r.metrics.get("status", "?")),
             f"{r.metrics.get('epochs_run', '?')} ({r.metrics.get('best_epoch', '?')})",
             _hours(r.wall_seconds), f"{r.cpu_seconds / 3600:.2f}",
             f"`{r.command}`"] for r in used]
    total = sum(r.cpu_seconds for r in used) / 3600
    header = ["run folder", "status", "epochs (best)", "wall", "CPU-hours", "command"]
    lines = [_table(header, rows, text=(0, 1, 5)), "",
             f"{len(used)} runs, {total:.2f} CPU-hours. Wall: the longer of `wall_seconds` (metrics.json; the last "
             "session only when a run was resumed) and the last epoch's `seconds` in history.csv (counted across "
             "resumes); CPU-hours: wall × threads.", ""]
    for title, group in (("Running/unfinished", runs.unfinished), ("Skipped", runs.skipped),
                         ("Found again, not used", runs.not_used)):
        mine = [r for r in group if r.split == split]
        if mine:
            lines.append(f"{title} ({len(mine)}): " + "; ".join(f"`{r.cited}` {r.why}" for r in mine) + ".")
    return lines if not lines[-1] else [*lines, ""]


def _order(model: str) -> tuple[int, str]:
    known = (*REFERENCE_MODELS, *TRAINED_MODELS)
    return (known.index(model), "") if model in known else (len(known), model)


def reference_markdown(runs: RunSet, heading: str = "###") -> str:
    """The tables of every split found, as Markdown (sections at ``heading`` level)."""
    lines = []
    for split in runs.splits():
        lines += [f"{heading} {split.capitalize()} split", "",
                  "Test R2 / test pairwise accuracy of each fold's model on the fixed test set (metrics.json); "
                  "mean ± sd (ddof 1) over the folds present; paper: PercePiano Table 3, test R2 (mean of 4 fold "
                  "models). –: no run.", "", *fold_table(runs, split),
                  "**Fold ensemble** (the fold models' test predictions averaged per segment, scored with "
                  "`pianoeval.metrics`) beside the mean of the fold models' own scores:", "",
                  *ensemble_table(runs, split),
                  "**Gains**, paired over the folds both models have (95% t interval of the mean difference):", "",
                  *gain_table(runs, split),
                  "**`han` per dimension**, test R2:", "", *dimension_table(runs, split),
                  "**Runs used**:", "", *runs_table(runs, split)]
    return "\n".join(lines).rstrip() + "\n"


def _value(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def showcase_markdown(runs: RunSet, winner: SweepWinner, against: str = "han", heading: str = "###") -> str:
    """The sweep's winner against the reference config's fold runs of ``against`` on the same
    split: per fold test R2 and pairwise, the paired difference with its 95% t interval, the
    fold ensembles, and the compute each cost."""
    reference = runs.folds(against, winner.split)
    if not reference:
        raise ConfigError(f"--against {against}: no finished {against}-{winner.split}<fold> run under --runs to "
                          f"compare the sweep with (train them with runners/train.py, see docs/results.md)")
    name = f"`{winner.space}` winner"
    rows = []
    for fold in sorted(set(winner.folds) | set(reference)):
        ours, ref = winner.folds.get(fold), reference.get(fold)
        cells = [str(fold)]
        for key in ("r2", "pairwise_acc"):
            a = ours.score(key) if ours else float("nan")
            b = ref.score(key) if ref else float("nan")
            cells += [_num(b), _num(a), _num(a - b, True)]
        rows.append(cells)
    gain = paired_difference(winner.folds, reference, name, against)
    summary = ["**mean**"]
    for key in ("r2", "pairwise_acc"):
        ours = [winner.folds[f].score(key) for f in gain.folds]
        ref = [reference[f].score(key) for f in gain.folds]
        ci = gain.ci[key]
        summary += [_num(float(np.mean(ref)) if ref else None), _num(float(np.mean(ours)) if ours else None),
                    _num(gain.mean[key], True) + (f" [{_num(ci[0], True)}, {_num(ci[1], True)}]" if ci else "")]
    rows.append(summary)
    header = ["fold", f"`{against}` test R2", f"{name} test R2", "difference",
              f"`{against}` test pairwise", f"{name} test pairwise", "difference"]
    ens_ours, ens_ref = fold_ensemble(list(winner.folds.values())), fold_ensemble(list(reference.values()))
    ci = gain.ci["r2"]
    if ci is None:
        verdict = f"{len(gain.folds)} paired fold(s): no interval; not a verdict"
    elif ci[0] > 0:
        verdict = "**beats** the reference config: the 95% interval of the paired test R2 difference is above 0"
    elif ci[1] < 0:
        verdict = "**falls short of** the reference config: the 95% interval of the paired difference is below 0"
    else:
        verdict = (f"**does not beat** the reference config: mean difference {_num(gain.mean['r2'], True)}, "
                   "and its 95% interval includes 0")
    ref_cpu = sum(r.cpu_seconds for r in reference.values())
    ref_epochs = sum(int(r.metrics.get("epochs_run") or 0) for r in reference.values())
    statuses = ", ".join(f"{n} {status}" for status, n in winner.statuses.items())
    lines = [
        f"{heading} Showcase: the `{winner.space}` sweep against the reference `{against}` ({winner.split} split)", "",
        f"Sweep `{winner.cited}`: {winner.trials} trials ({statuses}); winner trial `{winner.trial_id}`, "
        f"{winner.objective} {_num(winner.value)} (mean over its folds, the search's objective). Its sampled "
        "config: " + ", ".join(f"`{k}={_value(v)}`" for k, v in winner.sampled.items()) + ".", "",
        "Test scores of each fold model on the fixed test set (the sweep selected on validation only; the "
        "winner's fold models were scored on test once, with `--evaluate-test`); difference = winner − "
        f"reference, paired by fold, mean [95% t interval] over {len(gain.folds)} folds:", "",
        _table(header, rows), "",
        f"Verdict on test R2: {verdict}.", "",
        _table(["fold ensemble (test)", "R2", "pairwise"],
               [[f"`{against}` (reference config)", _num(ens_ref.r2), _num(ens_ref.pairwise)],
                [name, _num(ens_ours.r2), _num(ens_ours.pairwise)]]), "",
        _table(["compute", "CPU-hours", "fold-epochs"],
               [[f"the whole sweep ({winner.trials} trials)", f"{winner.cpu_seconds / 3600:.2f}", str(winner.fold_epochs)],
                ["of which the winner", f"{winner.winner_cpu_seconds / 3600:.2f}",
                 str(sum(int(r.metrics.get("epochs_run") or 0) for r in winner.folds.values()))],
                [f"`{against}` reference runs ({len(reference)} folds)", f"{ref_cpu / 3600:.2f}", str(ref_epochs)]]),
        "",
        "Fold runs of the winner: " + "; ".join(f"`{r.cited}`" for r in winner.folds.values()) + ". Each "
        "`resolved.yaml` there reruns its fold (`python runners/train.py --config <fold>/resolved.yaml`).", ""]
    return "\n".join(lines)
