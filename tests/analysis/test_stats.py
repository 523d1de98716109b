"""pianoeval.analysis.stats on fixed result tables, against scipy and hand computation."""

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from pianoeval.analysis import (
    comparison_markdown,
    cost_summary,
    holm_correction,
    paired_deltas,
    per_dimension_deltas,
    per_dimension_intervals,
    variant_summary,
)

FOLDS, SEEDS = range(4), range(2)
# Baseline r2 per (fold, seed): fold differences dominate, as on PercePiano.
BASE = {(f, s): 0.50 + 0.04 * f + 0.01 * s for f in FOLDS for s in SEEDS}
# A fixed, uneven improvement for "wider" (all positive) and a mixed one for "noisy".
WIDER_GAIN = [0.010, 0.020, 0.015, 0.030, 0.005, 0.025, 0.012, 0.018]
NOISY_GAIN = [0.010, -0.020, 0.005, -0.004, 0.002, 0.001, -0.003, 0.006]


@pytest.fixture
def results() -> pd.DataFrame:
    rows = []
    for index, (fold, seed) in enumerate(BASE):
        base = BASE[(fold, seed)]
        for variant, gain in (("baseline", 0.0), ("copy", 0.0), ("wider", WIDER_GAIN[index]),
                              ("noisy", NOISY_GAIN[index])):
            rows.append({"variant": variant, "fold": fold, "seed": seed, "r2": base + gain,
                         "r2/timing": base, "r2/pedal": base + 2 * gain,
                         "cpu_seconds": 1800.0, "gpu_seconds": 7200.0 if variant == "wider" else 0.0})
    return pd.DataFrame(rows)


def test_holm_by_hand():
    # Sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> max 0.06).
    np.testing.assert_allclose(holm_correction([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm_correction([0.5, 0.6]), [1.0, 1.0])  # capped at 1
    adjusted = holm_correction([0.02, np.nan, 0.04])  # NaN is not part of the family (m = 2)
    np.testing.assert_allclose(adjusted, [0.04, np.nan, 0.04])


def test_variant_summary(results):
    summary = variant_summary(results, "r2", n_boot=2000, seed=3).set_index("variant")
    wider = results.loc[results.variant == "wider", "r2"]
    assert summary.loc["wider", "n"] == 8 and summary.loc["wider", "n_failed"] == 0
    assert summary.loc["wider", "mean"] == pytest.approx(wider.mean())
    assert summary.loc["wider", "std"] == pytest.approx(wider.std(ddof=1))
    assert (summary["ci_low"] <= summary["mean"]).all() and (summary["mean"] <= summary["ci_high"]).all()


def test_bootstrap_is_deterministic_for_a_seed(results):
    first = variant_summary(results, "r2", n_boot=2000, seed=11)
    pd.testing.assert_frame_equal(first, variant_summary(results, "r2", n_boot=2000, seed=11))
    # Each variant has its own stream: dropping one variant leaves the others unchanged.
    fewer = variant_summary(results[results.variant != "copy"], "r2", n_boot=2000, seed=11)
    pd.testing.assert_frame_equal(first[first.variant != "copy"].reset_index(drop=True), fewer)


def test_unfinished_runs_are_counted_not_averaged(results):
    results.loc[(results.variant == "wider") & (results.fold == 0) & (results.seed == 0), "r2"] = np.nan
    row = variant_summary(results, "r2", n_boot=500).set_index("variant").loc["wider"]
    assert (row["n"], row["n_failed"]) == (7, 1) and np.isfinite(row["mean"])
    # failed or pruned by ASHA: the table does not know which, so it says neither
    assert "| wider | 7 (1 unfinished) |" in comparison_markdown(results, "r2", "baseline", n_boot=200)


def test_identical_variant_has_zero_delta_and_p_one(results):
    deltas = paired_deltas(results, "r2", "baseline", n_boot=1000).set_index("variant")
    copy = deltas.loc["copy"]
    assert copy["n"] == 8 and copy["mean_delta"] == 0.0
    assert (copy["ci_low"], copy["ci_high"]) == (0.0, 0.0)
    assert copy["p_wilcoxon"] == 1.0 and copy["p_ttest"] == 1.0 and copy["p_holm"] == 1.0
    assert not copy["significant"]


def test_paired_deltas_match_scipy_and_holm(results):
    deltas = paired_deltas(results, "r2", "baseline", n_boot=1000).set_index("variant")
    base = results[results.variant == "baseline"].sort_values(["fold", "seed"])["r2"].to_numpy()
    for variant in ("wider", "noisy"):
        values = results[results.variant == variant].sort_values(["fold", "seed"])["r2"].to_numpy()
        row = deltas.loc[variant]
        assert row["mean_delta"] == pytest.approx((values - base).mean())
        assert row["ci_low"] <= row["mean_delta"] <= row["ci_high"]
        assert row["p_wilcoxon"] == pytest.approx(scipy.stats.wilcoxon(values, base).pvalue)
        assert row["p_ttest"] == pytest.approx(scipy.stats.ttest_rel(values, base).pvalue)
        assert row["primary_test"] == "wilcoxon" and row["p"] == row["p_wilcoxon"]  # n = 8 >= 6
    np.testing.assert_allclose(deltas["p_holm"], holm_correction(deltas["p"].to_numpy()))
    # wider: all 8 deltas positive -> exact Wilcoxon p = 2/256, the smallest of 3 -> x3 by Holm.
    assert deltas.loc["wider", "p_holm"] == pytest.approx(3 * 2 / 256)
    assert deltas.loc["wider", "significant"] and not deltas.loc["noisy", "significant"]


def test_only_complete_pairs_count_and_small_n_uses_the_t_test(results):
    keep = (results.fold < 2) | (results.variant == "baseline")  # wider/noisy/copy keep folds 0-1
    subset = results[keep].copy()
    subset.loc[(subset.variant == "wider") & (subset.fold == 1) & (subset.seed == 1), "r2"] = np.nan
    deltas = paired_deltas(subset, "r2", "baseline", n_boot=500).set_index("variant")
    assert deltas.loc["wider", "n"] == 3 and deltas.loc["noisy", "n"] == 4
    assert deltas.loc["wider", "primary_test"] == "ttest"
    assert deltas.loc["wider", "p"] == deltas.loc["wider", "p_ttest"]


def test_paired_deltas_input_errors(results):
    with pytest.raises(ValueError, match="baseline 'nope'"):
        paired_deltas(results, "r2", "nope")
    with pytest.raises(ValueError, match="more than once"):
        paired_deltas(pd.concat([results, results.iloc[:1]]), "r2", "baseline")
    with pytest.raises(ValueError, match="lacks columns"):
        paired_deltas(results.drop(columns="seed"), "r2", "baseline")


def test_per_dimension_deltas(results):
    table = per_dimension_deltas(results, "baseline", ["timing", "pedal"])
    assert list(table.index) == ["copy", "wider", "noisy"]
    assert (table["timing"] == 0.0).all()
    assert table.loc["wider", "pedal"] == pytest.approx(2 * np.mean(WIDER_GAIN))


def test_cost_summary(results):
    costs = cost_summary(results).set_index("variant")
    assert costs.loc["wider", "runs"] == 8
    assert costs.loc["wider", "cpu_hours"] == pytest.approx(4.0)
    assert costs.loc["wider", "gpu_hours"] == pytest.approx(16.0)
    assert costs.loc["baseline", "gpu_hours"] == 0.0
    # A run without a recorded cost makes the total unknown, not smaller.
    results.loc[results.index[0], "cpu_seconds"] = np.nan
    assert np.isnan(cost_summary(results).set_index("variant").loc["baseline", "cpu_hours"])
    assert cost_summary(results.drop(columns="gpu_seconds"))["gpu_hours"].isna().all()


def test_comparison_markdown(results):
    text = comparison_markdown(results, "r2", "baseline", secondary=["r2/timing"], dims=["timing", "pedal"],
                               n_boot=500)
    lines = text.splitlines()
    assert "| variant | runs | r2 mean ± std | 95% CI | r2/timing | CPU-h | GPU-h |" in lines
    wider_summary = next(line for line in lines if line.startswith("| wider | 8 |"))
    assert "| 4.00 | 16.00 |" in wider_summary
    copy_delta = next(line for line in lines if line.startswith("| copy | 8 | +0.000 |"))
    assert "[+0.000, +0.000] | wilcoxon | 1.000 | 1.000 | no |" in copy_delta
    assert any(line.startswith("| wider | 8 | +0.017 |") and line.endswith("| yes |") for line in lines)
    assert "| dimension | copy | wider | noisy |" in lines  # per-dimension deltas, each with its CI
    assert "| timing | +0.000 [+0.000, +0.000] |" in next(line for line in lines if line.startswith("| timing |"))
    pedal = per_dimension_intervals(results, "baseline", ["pedal"], prefix="r2", n_boot=500).set_index("variant")
    assert pedal.loc["wider", "mean_delta"] == pytest.approx(2 * np.mean(WIDER_GAIN))
    low, high = pedal.loc["wider", ["ci_low", "ci_high"]]
    assert low <= pedal.loc["wider", "mean_delta"] <= high and pedal.loc["wider", "n"] == 8
    assert f"| +{pedal.loc['wider', 'mean_delta']:.3f} [+{low:.3f}, +{high:.3f}] |" in next(
        line for line in lines if line.startswith("| pedal |"))
