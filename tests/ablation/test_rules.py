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


def test_the_fusion_answer_compares_each_dimension_with_its_better_control():
    """Hand-made trial table: audio is better on timing, symbolic on articulation; the fused
    variant beats the better control on timing in every pair and loses on articulation."""
    import numpy as np
    import pytest

    from pianoeval.ablation.fusion import fusion_answer, fusion_markdown

    rows = []
    values = {"fusion_audio_only": (0.60, 0.50), "fusion_symbolic_only": (0.55, 0.58), "fusion_f3_gated": (0.65, 0.52)}
    for variant, model in (("a", "fusion_audio_only"), ("s", "fusion_symbolic_only"), ("g", "fusion_f3_gated")):
        for fold in range(4):
            timing, articulation = values[model]
            noise = 0.002 * fold
            rows.append({"variant": variant, "model": model, "fold": fold, "seed": 0, "status": "completed",
                         "test/pairwise_acc": (timing + articulation) / 2 + noise,
                         "test/pairwise_acc/timing_stable_to_unstable": timing + noise,
                         "test/pairwise_acc/articulation_short_to_long": articulation + noise,
                         "val/diag/gate_mean/timing_stable_to_unstable": 0.8 if model == "fusion_f3_gated" else np.nan})
    answer = fusion_answer(pd.DataFrame(rows), "test/pairwise_acc")
    assert answer["best"] == "s"  # mean 0.565 against audio's 0.55
    timing_control, timing = answer["per_dim"]["timing_stable_to_unstable"]
    articulation_control, articulation = answer["per_dim"]["articulation_short_to_long"]
    assert timing_control == "audio" and articulation_control == "symbolic"
    assert timing["g"][0] == pytest.approx(0.05) and timing["g"][1] > 0  # beats audio on timing, CI above 0
    assert articulation["g"][0] == pytest.approx(-0.06) and articulation["g"][2] < 0
    assert answer["gates"]["g"]["timing_stable_to_unstable"][0] == pytest.approx(0.8)
    text = fusion_markdown(fusion_answer(pd.DataFrame(rows), "test/pairwise_acc"))
    assert "`g` beats it on 1 and is worse on 1 of 2" in text and "| timing_stable_to_unstable | 0.800 |" in text
    assert fusion_answer(pd.DataFrame(rows).query("variant != 's'"), "test/pairwise_acc") is None  # no symbolic control
