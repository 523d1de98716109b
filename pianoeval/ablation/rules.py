"""Elimination rules of the staged protocol (seed 002), as small functions over a results table.

The table has one row per run: ``variant``, ``track``, ``status``, ``fold``, ``seed``,
``epochs_run`` and metric columns. A variant's score is the mean over its runs (folds x
seeds) of the validation metric; a run that failed does not count.

* ``within_track_gap`` (round 1): within each track, drop any candidate more than ``max_gap``
  behind the track's best (pairwise accuracy is a fraction, so 10 percentage points is 0.10),
  comparing candidates *at the same epoch*. A candidate that ASHA stopped at epoch e is judged
  by its value at e against the others' values at e (their per-epoch histories, ``curves``),
  not against their final values; a candidate whose runs all finished is judged by its final
  value against the best final value of the track. If every candidate is within the gap, all
  are kept. A candidate with no finished run has no score and is dropped.
* ``track_winner`` (round 2): within each track, candidates whose robustness drop exceeds
  ``veto_max`` are disqualified (only where that metric exists); the best score leads, and
  every runner-up whose paired difference to it over the shared (fold, seed) pairs has a 95%
  CI containing 0 is tied with it: ``tiebreak`` decides among the tied. With fewer than two
  shared pairs there is no CI and only exact equality ties (the decision says so).

Every rule returns a ``Decision`` whose ``lines()`` say which rule acted on whom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

FINISHED = ("completed", "pruned")
CI_LEVEL = 0.95
RUN_KEYS = ["fold", "seed"]


@dataclass
class Decision:
    kept: list[str]
    dropped: dict[str, str] = field(default_factory=dict)  # variant -> why
    winners: dict[str, str] = field(default_factory=dict)  # track -> variant (round 2)
    notes: list[str] = field(default_factory=list)  # how the rule reached the verdicts (ties, same-epoch checks)

    def lines(self) -> list[str]:
        out = [f"kept: {', '.join(self.kept) or 'none'}"]
        out += [f"dropped {v}: {why}" for v, why in self.dropped.items()]
        out += list(self.notes)
        out += [f"winner of {t}: {v}" for t, v in self.winners.items()]
        return out


def _finished(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["status"].isin(FINISHED)]


def _scores(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    import pandas as pd  # lazy: a staged spec names its rules at load time; pandas loads when one decides

    finished = _finished(table)
    scores = finished.groupby("variant")[metric].mean() if metric in finished else pd.Series(dtype=float)
    tracks = table.groupby("variant")["track"].first()
    return pd.DataFrame({"track": tracks, "score": scores.reindex(tracks.index)})


# --------------------------------------------------------------------------- round 1: same-epoch gap


def stop_epochs(table: pd.DataFrame) -> dict[str, int | None]:
    """The epoch each variant is judged at: the earliest epoch at which ASHA stopped one of its
    finished runs; None when every finished run completed (judged by its final value); 0 when a
    run was stopped at an epoch the table does not record (no ``epochs_run``)."""
    import pandas as pd  # lazy: see _scores

    finished = _finished(table)
    stops: dict[str, int | None] = {}
    for variant, runs in finished.groupby("variant", sort=False):
        pruned = runs[runs["status"] == "pruned"]
        epochs = pruned["epochs_run"].dropna() if "epochs_run" in pruned else pd.Series(dtype=float)
        stops[variant] = None if pruned.empty else int(epochs.min()) if len(epochs) == len(pruned) else 0
    return stops


def value_at_epoch(curves: pd.DataFrame | None, metric: str, variant: str, epoch: int) -> float:
    """Mean over ``variant``'s runs of ``metric`` at ``epoch`` in the per-epoch table ``curves``
    (columns variant, fold, seed, epoch, metric); NaN when no run of it has that epoch."""
    if curves is None or metric not in curves:
        return math.nan
    rows = curves[(curves["variant"] == variant) & (curves["epoch"] == epoch)][metric].dropna()
    return float(rows.mean()) if len(rows) else math.nan


def within_track_gap(table: pd.DataFrame, metric: str = "val/pairwise_acc", max_gap: float = 0.10,
                     mode: str = "max", curves: pd.DataFrame | None = None) -> Decision:
    """Round 1's rule at the same epoch; ``curves`` is the per-epoch table of the stage's runs
    (``value_at_epoch``). Without it, a stopped candidate is compared with final values and
    the decision says so."""
    scores = _scores(table, metric)
    stops = stop_epochs(table)
    decision = Decision(kept=[])
    sign = 1.0 if mode == "max" else -1.0
    for track, group in scores.groupby("track", sort=True):
        finals = {v: s for v, s in group["score"].items() if not math.isnan(s) and stops.get(v) is None}
        for variant, score in group["score"].items():
            if math.isnan(score):
                decision.dropped[variant] = f"no finished run in track {track}"
                continue
            epoch = stops.get(variant)
            if epoch is None:  # finished: its final value against the track's best final value
                values, where = finals, "at the final epoch"
            else:  # stopped at `epoch`: every candidate of the track that has a value at that epoch
                values = {v: value_at_epoch(curves, metric, v, epoch) for v in group.index} if epoch else {}
                values = {v: s for v, s in values.items() if not math.isnan(s)}
                values.setdefault(variant, score)  # its own reported value at the epoch it stopped
                where = f"at epoch {epoch}"
                if len(values) == 1:  # nothing to compare at that epoch: the final values, and it says so
                    values = {v: s for v, s in group["score"].items() if not math.isnan(s)}
                    where = (f"(stopped at epoch {epoch}; no other run's history has that epoch, so final values)"
                             if epoch else "(stopped early at an unrecorded epoch, so final values)")
            best_variant = max(values, key=lambda v: sign * values[v])
            gap = sign * (values[best_variant] - values[variant])
            detail = (f"{gap:.4f} behind {best_variant} {where} on {metric} "
                      f"({values[variant]:.4f} vs {values[best_variant]:.4f})")
            if gap > max_gap + 1e-12:
                decision.dropped[variant] = f"{detail}, more than {max_gap:g}"
            else:
                decision.kept.append(variant)
                if epoch is not None and variant != best_variant:
                    decision.notes.append(f"kept {variant}: {detail}, within {max_gap:g}")
    return decision


# --------------------------------------------------------------------------- round 2: winner, ties by paired CI


def paired_difference(table: pd.DataFrame, metric: str, a: str, b: str, mode: str = "max",
                      level: float = CI_LEVEL) -> tuple[int, float, float, float]:
    """``(n, mean, low, high)``: how much better ``a`` is than ``b`` on ``metric`` (positive =
    better, whatever the metric's direction), paired over the (fold, seed) pairs where both have a
    finished run, with a ``level`` t interval of the mean difference; low = high = NaN when n < 2.

    A t interval, not the percentile bootstrap of ``pianoeval.analysis.stats``: over 4 folds a
    bootstrap interval cannot be wider than the range of the 4 differences and covers well under
    95%, so it would call too many differences real; the t-test is what ``stats`` uses below 6
    pairs too."""
    import numpy as np  # lazy: see _scores
    import pandas as pd
    import scipy.stats

    finished = _finished(table)
    keys = [k for k in RUN_KEYS if k in finished]  # a table without seeds ran one

    def runs(name: str) -> pd.Series:
        return finished[finished["variant"] == name].set_index(keys)[metric].astype(float)

    both = pd.concat({"a": runs(a), "b": runs(b)}, axis=1, join="inner").dropna()
    differences = (1.0 if mode == "max" else -1.0) * (both["a"] - both["b"]).to_numpy()
    n = differences.size
    mean = float(differences.mean()) if n else math.nan
    if n < 2:
        return n, mean, math.nan, math.nan
    half = float(scipy.stats.t.ppf(0.5 + level / 2, n - 1) * differences.std(ddof=1) / np.sqrt(n))
    return n, mean, mean - half, mean + half


def track_winner(table: pd.DataFrame, metric: str = "val/pairwise_acc", tiebreak: str = "val/r2",
                 veto_metric: str | None = "val/robust_pairwise_drop", veto_max: float = 0.15,
                 mode: str = "max", tiebreak_mode: str = "max") -> Decision:
    scores = _scores(table, metric)
    scores["tiebreak"] = _scores(table, tiebreak)["score"] if tiebreak in table else math.nan
    has_veto = veto_metric is not None and veto_metric in table and table[veto_metric].notna().any()
    scores["veto"] = _scores(table, veto_metric)["score"] if has_veto else math.nan
    decision = Decision(kept=[])
    sign = 1.0 if mode == "max" else -1.0
    tie_sign = 1.0 if tiebreak_mode == "max" else -1.0
    for track, group in scores.groupby("track", sort=True):
        eligible = []
        for variant, row in group.iterrows():
            if math.isnan(row["score"]):
                decision.dropped[variant] = f"no finished run in track {track}"
            elif not math.isnan(row["veto"]) and row["veto"] > veto_max:
                decision.dropped[variant] = f"vetoed: {veto_metric} {row['veto']:.3f} > {veto_max:g}"
            else:
                eligible.append(variant)
        if not eligible:
            continue
        eligible.sort(key=lambda v: -sign * group.loc[v, "score"])  # stable: by name among equal means
        top, why = eligible[0], {}
        tied = [top]
        for other in eligible[1:]:
            n, diff, low, high = paired_difference(table, metric, top, other, mode)
            if n >= 2:
                ci = f"difference {diff:.4f}, {CI_LEVEL:.0%} CI [{low:.4f}, {high:.4f}] over {n} (fold, seed) pairs"
                if low <= 0 <= high:
                    tied.append(other)
                    decision.notes.append(f"tie between {top} and {other} on {metric} ({ci}): {tiebreak} decides")
                else:
                    why[other] = f"behind {top} on {metric} ({ci})"
            else:
                equal = group.loc[top, "score"] == group.loc[other, "score"]
                pairs = "one shared (fold, seed) pair" if n == 1 else "no shared (fold, seed) pair"
                decision.notes.append(f"{top} vs {other} on {metric}: {pairs}, no CI; only exact equality ties "
                                      f"(difference {sign * (group.loc[top, 'score'] - group.loc[other, 'score']):.4f}: "
                                      + (f"tie, {tiebreak} decides)" if equal else "no tie)"))
                if equal:
                    tied.append(other)
                else:
                    why[other] = f"behind {top} on {metric}"
        winner = top
        if len(tied) > 1:
            breaks = {v: group.loc[v, "tiebreak"] for v in tied if not math.isnan(group.loc[v, "tiebreak"])}
            if breaks:
                winner = max(breaks, key=lambda v: tie_sign * breaks[v])  # first of equals: the primary order
            else:
                decision.notes.append(f"no {tiebreak} values in track {track}: {top} (best mean {metric}) wins")
            for other in tied:
                if other != winner:
                    why[other] = (f"tied with {winner} on {metric}, lost on {tiebreak} "
                                  f"({group.loc[other, 'tiebreak']:.4f} vs {group.loc[winner, 'tiebreak']:.4f})"
                                  if breaks else f"tied with {winner} on {metric}, no {tiebreak} to decide")
        decision.winners[track] = winner
        decision.kept.append(winner)
        for other in eligible:
            if other != winner:
                decision.dropped[other] = f"not the best of track {track} (winner: {winner}): {why[other]}"
    return decision


RULES = {"within_track_gap": within_track_gap, "track_winner": track_winner}
