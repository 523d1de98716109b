"""Elimination rules on crafted tables: exactly the right candidates go."""

import math

import pandas as pd

from pianoeval.ablation.rules import track_winner, within_track_gap


def table(rows):
    return pd.DataFrame(rows, columns=["variant", "track", "status", "fold", "val/pairwise_acc", "val/r2",
                                       "val/robust_pairwise_drop"])


def test_within_track_gap_drops_only_those_more_than_10_points_behind():
    t = table([
        ("a1", "audio", "completed", 0, 0.80, 0.3, math.nan),
        ("a2", "audio", "completed", 0, 0.71, 0.2, math.nan),    # 9 points behind: kept
        ("a3", "audio", "completed", 0, 0.69, 0.2, math.nan),    # 11 points behind: dropped
        ("s1", "symbolic", "completed", 0, 0.60, 0.1, math.nan),  # other track: judged against its own best
        ("s2", "symbolic", "completed", 0, 0.58, 0.1, math.nan),
    ])
    decision = within_track_gap(t, "val/pairwise_acc", 0.10)
    assert decision.kept == ["a1", "a2", "s1", "s2"]
    assert list(decision.dropped) == ["a3"] and "0.1100 behind" in decision.dropped["a3"]


def test_within_track_gap_keeps_all_when_all_are_close_and_uses_the_fold_mean():
    t = table([
        ("a1", "audio", "completed", 0, 0.80, 0, math.nan), ("a1", "audio", "completed", 1, 0.60, 0, math.nan),  # mean 0.70
        ("a2", "audio", "completed", 0, 0.75, 0, math.nan), ("a2", "audio", "completed", 1, 0.75, 0, math.nan),  # mean 0.75
    ])
    assert within_track_gap(t).kept == ["a1", "a2"]


def test_failed_runs_do_not_count_and_pruned_runs_count_with_their_rung_value():
    t = table([
        ("a1", "audio", "completed", 0, 0.70, 0, math.nan),
        ("a2", "audio", "error", 0, math.nan, math.nan, math.nan),
        ("a3", "audio", "pruned", 0, 0.55, 0, math.nan),  # stopped at the first rung, far behind
        ("a4", "audio", "pruned", 0, 0.65, 0, math.nan),  # stopped at a rung, within 10 points
    ])
    decision = within_track_gap(t)
    assert decision.kept == ["a1", "a4"] and set(decision.dropped) == {"a2", "a3"}


def test_track_winner_by_metric_then_r2_with_robustness_veto():
    t = table([
        ("a1", "audio", "completed", 0, 0.80, 0.30, 0.20),  # best but vetoed (drop 20% > 15%)
        ("a2", "audio", "completed", 0, 0.78, 0.25, 0.05),
        ("a3", "audio", "completed", 0, 0.78, 0.35, 0.10),  # ties a2 on pairwise, wins on R2
        ("s1", "symbolic", "completed", 0, 0.60, 0.10, math.nan),  # no robustness metric: no veto
        ("s2", "symbolic", "completed", 0, 0.65, 0.05, math.nan),
    ])
    decision = track_winner(t)
    assert decision.winners == {"audio": "a3", "symbolic": "s2"}
    assert decision.dropped["a1"].startswith("vetoed") and "not the best" in decision.dropped["a2"]
