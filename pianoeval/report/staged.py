"""The report of a staged-elimination run: what each stage decided, and each stage's
ablation report (the stage folders are ordinary ablation run directories).

    >>> from pianoeval.report import stage_decisions, plot_stage_decisions
    >>> stage_decisions("results/ablations/staged_elimination/20261122-101500")   # one row per stage x candidate
    >>> plot_stage_decisions("results/ablations/staged_elimination/20261122-101500")

Decisions come from ``stages.json`` as ``pianoeval.ablation.staged`` recorded them; the
per-stage numbers from ``pianoeval.ablation.compare.load_run``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from pianoeval.ablation.compare import AblationRun, load_run
from pianoeval.ablation.staged import RuleSpec
from pianoeval.errors import ConfigError
from pianoeval.io import RESUME_FIX, read_table
from pianoeval.report.ablation import add_ablation_sections
from pianoeval.report.figures import Document, frame_markdown, message_figure, metric_label, new_figure, plural
from pianoeval.report.runs import run_kind
from pianoeval.sweep.rows import text

DECISION_COLOURS = {"winner": "#d4a017", "kept": "#2ca02c", "dropped": "#d62728"}


def load_state(run_dir: str | Path) -> dict:
    """``stages.json``: ``{"stages": {stage: {status, candidates, kept, dropped, winners}}}``."""
    path = Path(run_dir) / "stages.json"
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: unreadable ({type(err).__name__}: {err}); "
                          "is this a staged-elimination run?") from None
    if not isinstance(state.get("stages"), dict):
        raise ConfigError(f"{path}: stages: missing (expected the state written by runners/ablate.py)")
    return state


def stage_runs(run_dir: str | Path) -> dict[str, AblationRun | None]:
    """Each stage's ablation run, in stage order; None for a stage without ``trials.parquet`` yet."""
    run_dir = Path(run_dir)
    runs = {}
    for stage in load_state(run_dir)["stages"]:
        folder = run_dir / stage
        finished = (folder / "trials.parquet").is_file() and (folder / "ablation.yaml").is_file()
        runs[stage] = load_run(folder) if finished else None
    return runs


def stage_run(run_dir: str | Path, stage: str | None = None) -> AblationRun:
    """One stage's ablation run: ``stage`` by name, or the last stage that has finished."""
    runs = stage_runs(run_dir)
    finished = [name for name, run in runs.items() if run is not None]
    if stage is None:
        if not finished:
            raise ConfigError(f"{run_dir}: no stage has finished yet (stages: {', '.join(runs) or 'none'})")
        stage = finished[-1]
    if stage not in finished:
        raise ConfigError(f"{run_dir}: stage {stage!r} has no results "
                          f"(finished stages: {', '.join(finished) or 'none'})")
    return runs[stage]


def stage_decisions(run_dir: str | Path) -> pd.DataFrame:
    """One row per (stage, candidate): ``stage, candidate, track, decision, reason``.

    ``decision`` is ``winner``, ``kept``, ``dropped``, or the stage's status while it has
    not decided (``running``)."""
    run_dir = Path(run_dir)
    rows = []
    for stage, entry in load_state(run_dir)["stages"].items():
        tracks = _tracks(run_dir / stage)
        winners = {v: t for t, v in (entry.get("winners") or {}).items()}
        dropped = entry.get("dropped") or {}
        kept = entry.get("kept") or []
        for candidate in entry.get("candidates", []):
            if candidate in winners:
                decision, reason = "winner", f"winner of track {winners[candidate]}"
            elif candidate in dropped:
                decision, reason = "dropped", dropped[candidate]
            elif candidate in kept:
                decision, reason = "kept", ""
            else:
                decision, reason = entry.get("status", "not run"), ""
            rows.append({"stage": stage, "candidate": candidate, "track": tracks.get(candidate, ""),
                         "decision": decision, "reason": reason})
    return pd.DataFrame(rows, columns=["stage", "candidate", "track", "decision", "reason"])


def _tracks(stage_dir: Path) -> dict[str, str]:
    path = stage_dir / "trials.parquet"
    if not path.is_file():
        return {}
    trials = read_table(path, RESUME_FIX)
    if "track" not in trials:
        return {}
    tracks = trials.drop_duplicates("variant").set_index("variant")["track"]
    return tracks.dropna().to_dict()  # a missing track (NaN) is no track


def decision_metric(run: AblationRun) -> str:
    """The metric to show decisions on: the rules' default metric (``RuleSpec.metric``,
    val/pairwise_acc) when the stage recorded it, else its first validation metric.
    ``stages.json`` does not record which metric each stage's rule used."""
    default = RuleSpec.model_fields["metric"].default
    if default in run.trials:
        return default
    return next((m for m in run.metrics if m.startswith("val/") and m in run.trials), run.metrics[0])


def plot_stage_decisions(run_dir: str | Path, metric: str | None = None):
    """One panel per finished stage: each candidate's mean ``metric`` (default:
    ``decision_metric``) with its 95% CI, coloured by the stage's decision."""
    runs = {stage: run for stage, run in stage_runs(run_dir).items() if run is not None}
    title = f"Staged elimination: decisions ({Path(run_dir).name})"
    if not runs:
        return message_figure(title, "No stage has finished yet.")
    decisions = stage_decisions(run_dir).set_index(["stage", "candidate"])["decision"]
    height = 1.4 + 0.45 * max(len(r.trials["variant"].unique()) for r in runs.values())
    fig, axes = new_figure(max(7.5, 5.0 * len(runs)), height + 0.3, ncols=len(runs), squeeze=False)
    for ax, (stage, run) in zip(axes[0], runs.items()):
        shown = metric or decision_metric(run)
        summary = run.summary(shown)
        y = np.arange(len(summary))[::-1]
        for yi, row in zip(y, summary.itertuples(index=False)):
            decision = decisions.get((stage, row.variant), "")
            colour = DECISION_COLOURS.get(decision, "0.5")
            if np.isfinite(row.mean):
                if np.isfinite(row.ci_low) and np.isfinite(row.ci_high):
                    ax.errorbar(row.mean, yi, xerr=[[row.mean - row.ci_low], [row.ci_high - row.mean]],
                                color=colour, capsize=3)
                ax.plot(row.mean, yi, "o", ms=8, color=colour)
            else:
                ax.text(0.5, yi, "no finished run", transform=ax.get_yaxis_transform(), ha="center", fontsize=8)
        ax.set_yticks(y, [f"{v}\n({decisions.get((stage, v), '?')})" for v in summary["variant"]], fontsize=8)
        ax.set_ylim(-0.7, len(summary) - 0.3)
        ax.set_xlabel(metric_label(shown))
        epochs = plural(run.meta.get("budget", {}).get("max_epochs", 0), "epoch")
        ax.set_title(f"{stage}: folds {run.meta.get('folds')}, {epochs}", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    fig.suptitle(title + "\nmean and 95% CI over folds × seeds; gold = winner, green = kept, red = dropped",
                 fontsize=11)
    return fig


def staged_report(run_dir: str | Path, out_dir: str | Path | None = None) -> tuple[Path, list[str]]:
    """Write ``report.md`` + ``figures/`` for a staged-elimination run; return (report path, warnings)."""
    run_dir = Path(run_dir)
    if run_kind(run_dir) != "staged":
        raise ConfigError(f"{run_dir}: not a staged-elimination run (no stages.json); report it with write_report")
    state = load_state(run_dir)
    runs = stage_runs(run_dir)
    decisions = stage_decisions(run_dir)
    doc = Document(Path(out_dir) if out_dir is not None else run_dir,
                   f"Staged elimination `{run_dir.parent.name}`: {run_dir.name}")
    winners = decisions[decisions["decision"] == "winner"]
    doc.text(f"Run `{run_dir}`: {plural(len(state['stages']), 'stage')} ("
             + ", ".join(f"{s} {e.get('status', '?')}" for s, e in state["stages"].items()) + "). Winners: "
             + (", ".join(f"`{r.candidate}` (track {text(r.track) or '?'}, {r.stage})" for r in winners.itertuples())
                or "none yet") + ".",
             "The protocol and each stage's rule: `elimination.md`; every stage folder is an ablation run "
             "with its own `comparison.md`.")
    doc.text("## Decisions")
    doc.text(frame_markdown(decisions) if len(decisions) else "No stage has started.")
    shown = sorted({decision_metric(run) for run in runs.values() if run is not None})
    doc.figure(plot_stage_decisions(run_dir), "stage_decisions",
               f"Each finished stage's candidates on {', '.join(shown) or 'their metric'} (mean, 95% CI), coloured "
               "by the decision; the rule each stage applied is in `elimination.md`.")
    notes = []
    for stage, run in runs.items():
        entry = state["stages"][stage]
        doc.text(f"## Stage `{stage}`", f"Candidates: {', '.join(entry.get('candidates', []))}; kept: "
                 f"{', '.join(entry.get('kept', [])) or 'none yet'}.")
        if run is None:
            doc.text(f"Not finished ({entry.get('status', 'not run')}): no `{stage}/trials.parquet` yet.")
            continue
        notes += [f"{stage}: {note}" for note in add_ablation_sections(doc, run, prefix=f"{stage}_", level=3)]
    doc.text(f"Made by `python runners/report.py {run_dir}`.")
    return doc.write(), notes
