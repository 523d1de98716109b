"""pianoeval.metrics against sklearn / scipy and against hand-computed examples."""

import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import mean_squared_error, r2_score

from pianoeval import metrics


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    y_true = rng.uniform(0.2, 0.8, size=(40, 5))
    y_pred = y_true + 0.1 * rng.standard_normal((40, 5))
    groups = rng.integers(0, 8, size=40)
    return y_true, y_pred, groups


def test_r2_matches_sklearn(predictions):
    y_true, y_pred, _ = predictions
    np.testing.assert_allclose(metrics.r2_per_dimension(y_true, y_pred),
                               r2_score(y_true, y_pred, multioutput="raw_values"), rtol=0, atol=1e-12)
    assert metrics.r2_mean(y_true, y_pred) == pytest.approx(r2_score(y_true, y_pred), abs=1e-12)


def test_r2_constant_target_follows_sklearn_force_finite():
    y_true = np.array([[0.5, 0.5, 0.1], [0.5, 0.5, 0.2], [0.5, 0.5, 0.3]])
    y_pred = np.array([[0.5, 0.4, 0.1], [0.5, 0.5, 0.3], [0.5, 0.6, 0.2]])
    expected = r2_score(y_true, y_pred, multioutput="raw_values")
    np.testing.assert_array_equal(metrics.r2_per_dimension(y_true, y_pred), expected)
    # Constant labels: exact prediction scores 1, anything else 0.
    assert list(expected[:2]) == [1.0, 0.0]
    assert metrics.r2_mean(y_true, y_pred) == pytest.approx(r2_score(y_true, y_pred))


def test_r2_one_dimensional_and_too_few_items():
    y_true, y_pred = np.array([0.1, 0.4, 0.9]), np.array([0.2, 0.4, 0.7])
    assert metrics.r2_mean(y_true, y_pred) == pytest.approx(r2_score(y_true, y_pred))
    assert np.isnan(metrics.r2_mean([[0.3, 0.4]], [[0.3, 0.5]]))


def test_mse_and_correlations_match_sklearn_and_scipy(predictions):
    y_true, y_pred, _ = predictions
    assert metrics.mse(y_true, y_pred) == pytest.approx(mean_squared_error(y_true, y_pred))
    for d in range(y_true.shape[1]):
        assert metrics.pearson_per_dimension(y_true, y_pred)[d] == pytest.approx(
            scipy.stats.pearsonr(y_true[:, d], y_pred[:, d]).statistic)
        assert metrics.spearman_per_dimension(y_true, y_pred)[d] == pytest.approx(
            scipy.stats.spearmanr(y_true[:, d], y_pred[:, d]).statistic)


def test_correlation_of_constant_predictions_is_nan():
    y_true = np.array([[0.1, 0.2], [0.5, 0.3], [0.9, 0.4]])
    y_pred = np.array([[0.5, 0.2], [0.5, 0.3], [0.5, 0.5]])
    pearson = metrics.pearson_per_dimension(y_true, y_pred)
    assert np.isnan(pearson[0]) and np.isfinite(pearson[1])


def test_std_score_by_hand():
    y_true = np.array([[0.5, 0.5], [0.5, 0.5]])
    y_pred = np.array([[0.54, 0.7], [0.46, 0.5]])
    label_std = np.array([[0.1, 0.1], [0.01, 0.0]])
    # Errors 0.04, 0.2, 0.04, 0: within 1·std -> (0,0) and (1,1) [0 <= 0, zero std] -> 2/4.
    assert metrics.std_score(y_true, y_pred, label_std, k=1.0) == 0.5
    # Per-dimension std broadcasts over items: tolerance 0.05 -> 3/4 pass.
    assert metrics.std_score(y_true, y_pred, np.array([0.1, 0.1]), k=0.5) == 0.75
    with pytest.raises(ValueError, match="label_std"):
        metrics.std_score(y_true, y_pred, np.ones(3), k=1.0)


def test_prediction_spread_counts_collapsed_dimensions():
    rng = np.random.default_rng(1)
    y_true = rng.uniform(0, 1, size=(30, 3))
    y_pred = y_true.copy()
    y_pred[:, 0] = y_true[:, 0].mean() + 0.1 * (y_true[:, 0] - y_true[:, 0].mean())  # ratio 0.1
    y_true[:, 2] = 0.5  # constant labels: no ratio, never collapsed
    spread = metrics.prediction_spread(y_true, y_pred)
    np.testing.assert_allclose(spread.ratio[:2], [0.1, 1.0])
    assert np.isnan(spread.ratio[2])
    assert spread.collapsed_dims == 1
    assert spread.mean_ratio == pytest.approx(0.55)


# --------------------------------------------------------------------------- pairwise accuracy

# Groups: items 0-2 are one segment, item 3 is a singleton, items 4-5 another
# segment. Pairs: (0,1), (0,2), (1,2), (4,5).
HAND_GROUPS = np.array([7, 7, 7, 3, 9, 9])
HAND_TRUE = np.array([
    # dim0 has a label tie (1,2); dim1 ties everywhere; dim2 has a close pair (0,1)
    [0.1, 0.3, 0.50],
    [0.5, 0.3, 0.52],
    [0.5, 0.3, 0.90],
    [0.9, 0.5, 0.10],
    [0.2, 0.6, 0.10],
    [0.4, 0.6, 0.30],
])
HAND_PRED = np.array([
    [0.2, 0.1, 0.6],
    [0.6, 0.2, 0.5],
    [0.1, 0.3, 0.8],
    [0.0, 0.4, 0.0],
    [0.3, 0.5, 0.1],
    [0.3, 0.6, 0.2],
])


def test_pairwise_accuracy_by_hand():
    result = metrics.pairwise_accuracy(HAND_TRUE, HAND_PRED, HAND_GROUPS)
    # dim0: (0,1) agree 1, (0,2) disagree 0, (1,2) label tie skipped, (4,5) prediction tie 0.5 -> 1.5/3.
    # dim1: every pair is a label tie -> no usable pair.
    # dim2: (0,1) disagree, (0,2), (1,2), (4,5) agree -> 3/4.
    np.testing.assert_allclose(result.per_dimension, [0.5, np.nan, 0.75])
    assert result.mean == pytest.approx(0.625)
    assert result.n_pairs == 4
    assert list(result.n_usable_per_dimension) == [3, 0, 4]
    assert result.empty_dimensions == (1,)


def test_pairwise_accuracy_min_label_gap_drops_close_pairs():
    result = metrics.pairwise_accuracy(HAND_TRUE, HAND_PRED, HAND_GROUPS, min_label_gap=0.05)
    # dim2 loses (0,1) (gap 0.02) -> 3/3; dim0 gaps are all >= 0.2 -> unchanged.
    np.testing.assert_allclose(result.per_dimension, [0.5, np.nan, 1.0])
    assert result.mean == pytest.approx(0.75)


def test_pairwise_accuracy_without_pairs_is_nan():
    result = metrics.pairwise_accuracy(HAND_TRUE, HAND_PRED, np.arange(6))
    assert result.n_pairs == 0 and np.isnan(result.mean)
    assert result.empty_dimensions == (0, 1, 2)


def test_same_group_pairs_matches_brute_force():
    rng = np.random.default_rng(2)
    groups = rng.choice(["a", "b", "c", "d", "e"], size=37)
    first, second = metrics.same_group_pairs(groups)
    expected = {(i, j) for i in range(37) for j in range(i + 1, 37) if groups[i] == groups[j]}
    assert set(zip(first.tolist(), second.tolist())) == expected
    assert len(first) == len(expected)


# --------------------------------------------------------------------------- evaluate and names


def test_evaluate_keys_and_values(predictions):
    y_true, y_pred, groups = predictions
    names = ["timing", "dynamics", "pedal", "tone", "mood"]
    result = metrics.evaluate(y_true, y_pred, groups, label_std=np.full(5, 0.1), dimension_names=names)
    top_level = {key for key in result if "/" not in key}
    assert top_level == set(metrics.METRIC_NAMES)
    assert result["r2"] == pytest.approx(r2_score(y_true, y_pred))
    assert result["r2/pedal"] == pytest.approx(r2_score(y_true[:, 2], y_pred[:, 2]))
    assert result["pairwise_acc"] == pytest.approx(metrics.pairwise_accuracy(y_true, y_pred, groups).mean)
    assert {f"pairwise_acc/{n}" for n in names} <= set(result)
    assert result["count/items"] == 40
    assert all(isinstance(value, float) for value in result.values())
    for key in result:
        if not key.startswith("count/"):
            assert metrics.metric_mode(key) in ("max", "min")


def test_evaluate_without_label_std_has_no_std_score(predictions):
    result = metrics.evaluate(*predictions)
    assert not any(key.startswith("std_score") for key in result)
    assert "r2/dim0" in result


def test_evaluate_rejects_non_finite_predictions(predictions):
    y_true, y_pred, groups = predictions
    y_pred = y_pred.copy()
    y_pred[3, 1] = np.nan
    with pytest.raises(ValueError, match="y_pred"):
        metrics.evaluate(y_true, y_pred, groups)


def test_metric_mode():
    assert metrics.metric_mode("r2") == "max"
    assert metrics.metric_mode("mse") == "min"
    assert metrics.metric_mode("collapsed_dims") == "min"
    assert metrics.metric_mode("pairwise_acc/timing") == "max"
    for bad in ("accuracy", "count/items", "R2"):
        with pytest.raises(ValueError, match="unknown metric"):
            metrics.metric_mode(bad)
