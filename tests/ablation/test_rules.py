"""Elimination rules on crafted tables: exactly the right candidates go."""

import math

import pandas as pd
import pytest
import scipy.stats

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


# --------------------------------------------------------------------------- same-epoch gap, ties by paired CI


def runs(rows):
    """Trial rows (variant, track, status, fold, seed, epochs_run, pairwise, r2)."""
    return pd.DataFrame(rows, columns=["variant", "track", "status", "fold", "seed", "epochs_run",
                                       "val/pairwise_acc", "val/r2"])


def curves(values):
    """The per-epoch table: {(variant, fold, seed): [value at epoch 1, 2, ...]}."""
    return pd.DataFrame([(v, f, s, epoch, value) for (v, f, s), series in values.items()
                         for epoch, value in enumerate(series, start=1)],
                        columns=["variant", "fold", "seed", "epoch", "val/pairwise_acc"])


SCREEN = runs([
    ("a1", "audio", "completed", 0, 0, 9, 0.80, 0.3),  # the best: 0.62 at epoch 1, 0.80 at the end
    ("a2", "audio", "pruned", 0, 0, 1, 0.60, 0.2),     # 0.20 behind a1's final, 0.02 behind a1 at epoch 1
    ("a3", "audio", "pruned", 0, 0, 1, 0.45, 0.1),     # 0.17 behind a1 at epoch 1
    ("a4", "audio", "pruned", 0, 0, 3, 0.66, 0.2),     # 0.04 behind a1 at epoch 3 (its own epoch)
    ("a5", "audio", "completed", 0, 0, 9, 0.65, 0.2),  # finished: 0.15 behind a1's final value
])
SCREEN_CURVES = curves({("a1", 0, 0): [0.62, 0.66, 0.70, 0.74, 0.80], ("a2", 0, 0): [0.60], ("a3", 0, 0): [0.45],
                        ("a4", 0, 0): [0.58, 0.62, 0.66], ("a5", 0, 0): [0.50, 0.55, 0.60, 0.62, 0.65]})


def test_a_candidate_stopped_at_epoch_1_is_compared_with_the_best_at_epoch_1_not_its_final_value():
    decision = within_track_gap(SCREEN, curves=SCREEN_CURVES)
    assert decision.kept == ["a1", "a2", "a4"] and set(decision.dropped) == {"a3", "a5"}
    assert decision.dropped["a3"].startswith("0.1700 behind a1 at epoch 1 on val/pairwise_acc (0.4500 vs 0.6200)")
    assert decision.dropped["a5"].startswith("0.1500 behind a1 at the final epoch")
    lines = decision.lines()
    assert "dropped a3: 0.1700 behind a1 at epoch 1 on val/pairwise_acc (0.4500 vs 0.6200), more than 0.1" in lines
    assert "kept a2: 0.0200 behind a1 at epoch 1 on val/pairwise_acc (0.6000 vs 0.6200), within 0.1" in lines
    assert "kept a4: 0.0400 behind a1 at epoch 3 on val/pairwise_acc (0.6600 vs 0.7000), within 0.1" in lines


def test_without_histories_a_stopped_candidate_falls_back_to_final_values_and_says_so():
    decision = within_track_gap(SCREEN)  # no per-epoch table: the old comparison, named as such
    assert "a2" in decision.dropped and "no other run's history has that epoch, so final values" in decision.dropped["a2"]


def fold_runs(variant, pairwise, r2, track="audio"):
    return [(variant, track, "completed", fold, 0, 9, value, r2) for fold, value in enumerate(pairwise)]


def test_a_difference_inside_the_paired_ci_is_a_tie_that_the_tiebreak_decides():
    from pianoeval.ablation.rules import paired_difference

    a1 = [0.80, 0.82, 0.78, 0.80]
    t = runs(fold_runs("a1", a1, 0.30)
             + fold_runs("a2", [0.81, 0.79, 0.79, 0.77], 0.40)     # 0.01 behind, CI [-0.027, 0.047]: tie, better R2
             + fold_runs("a3", [v - d for v, d in zip(a1, [0.05, 0.06, 0.05, 0.06])], 0.50))  # clearly behind
    n, diff, low, high = paired_difference(t, "val/pairwise_acc", "a1", "a2")
    reference = scipy.stats.ttest_rel(a1, [0.81, 0.79, 0.79, 0.77]).confidence_interval(0.95)
    assert n == 4 and diff == pytest.approx(0.01) and (low, high) == pytest.approx((reference.low, reference.high))
    decision = track_winner(t)
    assert decision.winners == {"audio": "a2"}  # tied with a1, wins on R2
    assert "tie between a1 and a2 on val/pairwise_acc (difference 0.0100, 95% CI [-0.0267, 0.0467] over 4 " \
           "(fold, seed) pairs): val/r2 decides" in decision.lines()
    assert decision.dropped["a1"].endswith("tied with a2 on val/pairwise_acc, lost on val/r2 (0.3000 vs 0.4000)")
    # a3 has the best R2 but is clearly behind: the tiebreak never reaches it
    assert "behind a1 on val/pairwise_acc (difference 0.0550, 95% CI [0.0458, 0.0642]" in decision.dropped["a3"]


def test_a_clear_win_is_not_a_tie_and_a_loss_metric_ties_the_same_way():
    t = runs(fold_runs("a1", [0.80, 0.81, 0.79, 0.80], 0.10) + fold_runs("a2", [0.70, 0.72, 0.69, 0.70], 0.90))
    assert track_winner(t).winners == {"audio": "a1"} and not any("tie" in n for n in track_winner(t).notes)
    losses = t.assign(**{"val/loss": 1 - t["val/pairwise_acc"]})  # lower is better: the same verdict
    assert track_winner(losses, "val/loss", mode="min").winners == {"audio": "a1"}


def test_one_shared_pair_has_no_ci_and_ties_only_on_exact_equality():
    t = runs([("a1", "audio", "completed", 0, 0, 9, 0.78, 0.2), ("a2", "audio", "completed", 0, 0, 9, 0.78, 0.3),
              ("a3", "audio", "completed", 0, 0, 9, 0.779, 0.9)])
    decision = track_winner(t)
    assert decision.winners == {"audio": "a2"}  # a1 = a2 exactly: R2 decides; a3 is behind by 0.001
    assert "a1 vs a3 on val/pairwise_acc: one shared (fold, seed) pair, no CI; only exact equality ties " \
           "(difference 0.0010: no tie)" in decision.notes
    assert decision.dropped["a3"].endswith("behind a1 on val/pairwise_acc")


def test_a_tie_without_tiebreak_values_goes_to_the_higher_mean_and_says_so():
    t = runs(fold_runs("a1", [0.80, 0.82, 0.78, 0.80], float("nan")) + fold_runs("a2", [0.81, 0.79, 0.79, 0.77], float("nan")))
    decision = track_winner(t)
    assert decision.winners == {"audio": "a1"}
    assert "no val/r2 values in track audio: a1 (best mean val/pairwise_acc) wins" in decision.notes
    assert decision.dropped["a2"].endswith("tied with a1 on val/pairwise_acc, no val/r2 to decide")
