"""Elimination rules of the staged protocol (seed 002), as small functions over a results table.

The table has one row per run: ``variant``, ``track``, ``status`` and metric columns.
A variant's score is the mean over its runs (folds x seeds) of the validation metric;
a run that ASHA stopped at a rung counts with the value it reported there (that is
how a hopeless candidate loses), a run that failed does not count.

* ``within_track_gap`` (round 1): within each track, drop any candidate whose score is more
  than ``max_gap`` below the track's best (pairwise accuracy is a fraction, so 10 percentage
  points is 0.10); if every candidate is within the gap, all are kept. A candidate with no
  finished run has no score and is dropped.
* ``track_winner`` (round 2): within each track, candidates whose robustness drop exceeds
  ``veto_max`` are disqualified (only where that metric exists); the winner has the best
  score, ties broken by ``tiebreak``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

FINISHED = ("completed", "pruned")


@dataclass
class Decision:
    kept: list[str]
    dropped: dict[str, str] = field(default_factory=dict)  # variant -> why
    winners: dict[str, str] = field(default_factory=dict)  # track -> variant (round 2)

    def lines(self) -> list[str]:
        out = [f"kept: {', '.join(self.kept) or 'none'}"]
        out += [f"dropped {v}: {why}" for v, why in self.dropped.items()]
        out += [f"winner of {t}: {v}" for t, v in self.winners.items()]
        return out


def _scores(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    import pandas as pd  # lazy: a staged spec names its rules at load time; pandas loads when one decides

    finished = table[table["status"].isin(FINISHED)]
    scores = finished.groupby("variant")[metric].mean() if metric in finished else pd.Series(dtype=float)
    tracks = table.groupby("variant")["track"].first()
    return pd.DataFrame({"track": tracks, "score": scores.reindex(tracks.index)})


def within_track_gap(table: pd.DataFrame, metric: str = "val/pairwise_acc", max_gap: float = 0.10,
                     mode: str = "max") -> Decision:
    scores = _scores(table, metric)
    decision = Decision(kept=[])
    sign = 1.0 if mode == "max" else -1.0
    for track, group in scores.groupby("track", sort=True):
        valid = group["score"].dropna()
        best = (sign * valid).max() * sign if len(valid) else math.nan
        for variant, score in group["score"].items():
            if math.isnan(score):
                decision.dropped[variant] = f"no finished run in track {track}"
            elif sign * (best - score) > max_gap + 1e-12:
                decision.dropped[variant] = (f"{metric} {score:.4f} is {sign * (best - score):.4f} behind the best of "
                                             f"track {track} ({best:.4f}), more than {max_gap:g}")
            else:
                decision.kept.append(variant)
    return decision


def track_winner(table: pd.DataFrame, metric: str = "val/pairwise_acc", tiebreak: str = "val/r2",
                 veto_metric: str | None = "val/robust_pairwise_drop", veto_max: float = 0.15,
                 mode: str = "max") -> Decision:
    scores = _scores(table, metric)
    scores["tiebreak"] = _scores(table, tiebreak)["score"] if tiebreak in table else math.nan
    has_veto = veto_metric is not None and veto_metric in table and table[veto_metric].notna().any()
    scores["veto"] = _scores(table, veto_metric)["score"] if has_veto else math.nan
    decision = Decision(kept=[])
    sign = 1.0 if mode == "max" else -1.0
    for track, group in scores.groupby("track", sort=True):
        eligible = []
        for variant, row in group.iterrows():
            if math.isnan(row["score"]):
                decision.dropped[variant] = f"no finished run in track {track}"
            elif not math.isnan(row["veto"]) and row["veto"] > veto_max:
                decision.dropped[variant] = f"vetoed: {veto_metric} {row['veto']:.3f} > {veto_max:g}"
            else:
                eligible.append((sign * row["score"], -math.inf if math.isnan(row["tiebreak"]) else row["tiebreak"], variant))
        if eligible:
            eligible.sort(reverse=True)
            winner = eligible[0][2]
            decision.winners[track] = winner
            decision.kept.append(winner)
            for _, _, variant in eligible[1:]:
                decision.dropped[variant] = f"not the best of track {track} (winner: {winner})"
    return decision


RULES = {"within_track_gap": within_track_gap, "track_winner": track_winner}
