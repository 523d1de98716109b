"""Validation and test metrics shared by every model track (HAN, audio, symbolic, fusion).

Inputs are numpy arrays (anything ``np.asarray`` accepts): ``y_true`` and
``y_pred`` are ``[N, L]`` (N performances, L label dimensions; a 1-D array is
one dimension) on the label scale, i.e. *after* the sigmoid. ``groups`` is
``[N]`` score-segment ids: equal values mean the same music played by different
performers, so those items form ranking pairs. Outputs are plain floats, numpy
arrays per dimension, or the flat dict of :func:`evaluate`.

Keys of :func:`evaluate` (mode in brackets: the direction a sweep optimises):

* ``r2`` [max]: ``sklearn.metrics.r2_score`` on the N×L matrix, i.e. the
  unweighted mean of the per-dimension R², each around that dimension's mean
  over the evaluated items. This is the PercePiano reference's headline number.
* ``r2/<dim>`` [max]: per-dimension R².
* ``pairwise_acc`` [max]: mean over dimensions of the same-segment pairwise
  ranking accuracy (fraction in [0, 1], the seed's "84%" is 0.84); dimensions
  without a usable pair are left out of the mean.
* ``pairwise_acc/<dim>`` [max]: per dimension; NaN when it has no usable pair.
* ``mse`` [min]: mean squared error over all N×L entries.
* ``pearson`` / ``spearman`` [max]: mean over dimensions of the per-dimension
  correlation; a dimension whose predictions (or labels) are constant has no
  correlation, is NaN per dimension and is left out of the mean (it also shows
  up in ``collapsed_dims``).
* ``pearson/<dim>`` / ``spearman/<dim>`` [max].
* ``pred_std_ratio`` [max]: mean over dimensions of std(pred) / std(target).
  Healthy is about 1. Mode is "max" because the failure seen in practice is
  under-dispersion (seed 000: pred std 0.06-0.08 vs target 0.12-0.15, ratio
  about 0.5); MSE training shrinks towards the mean and almost never overshoots.
* ``pred_std_ratio/<dim>`` [max].
* ``collapsed_dims`` [min]: number of dimensions whose ratio is below
  :data:`COLLAPSE_RATIO` (the predictions barely move).
* ``std_score_1``, ``std_score_0p5``, ``std_score_0p1`` [max]: fraction of the
  N×L predictions within ±k·σ_annotators of the label for k = 1, 0.5, 0.1 (the
  reference reports this ×100). Present only when ``label_std`` is given. The
  "p" stands for the decimal point: dotted keys would break the ``a.b.c`` flat
  view used for trial configs.
* ``count/items``, ``count/pairwise_pairs`` (same-segment pairs before tie
  exclusion), ``count/pairwise_empty_dims`` (dimensions without a usable pair):
  bookkeeping, not metrics, so they have no mode.

:data:`METRIC_NAMES` lists the top-level (slash-free) keys; :func:`metric_mode`
validates a key (top-level or ``<name>/<dim>``) and gives its direction.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

# A dimension whose prediction std is below a quarter of the target std is
# treated as collapsed: the model outputs nearly the same value for every
# performance there. Seed 000's under-dispersed HAN (ratio about 0.5) is *not*
# counted here; ``pred_std_ratio`` shows that milder failure.
COLLAPSE_RATIO = 0.25

# k values of the reference's "std score" and the key suffix of each.
STD_SCORE_KS: dict[str, float] = {"1": 1.0, "0p5": 0.5, "0p1": 0.1}

_MODES: dict[str, Literal["max", "min"]] = {
    "r2": "max",
    "pairwise_acc": "max",
    "mse": "min",
    "pearson": "max",
    "spearman": "max",
    "pred_std_ratio": "max",
    "collapsed_dims": "min",
    **{f"std_score_{suffix}": "max" for suffix in STD_SCORE_KS},
}
METRIC_NAMES: tuple[str, ...] = tuple(_MODES)
# Logged by the trainer beside evaluate()'s keys when validation batches carry an augmented
# view (``pianoeval.train.module.robustness_metrics``): selectable and recordable too.
ROBUSTNESS_MODES: dict[str, Literal["max", "min"]] = {"robust_pairwise_drop": "min", "robust_pearson": "max"}


def metric_mode(name: str) -> Literal["max", "min"]:
    """Direction of a metric key of :func:`evaluate`: ``"max"`` or ``"min"``.

    Accepts top-level names (``"r2"``) and per-dimension keys (``"r2/timing"``:
    the mode of the prefix). Raises ``ValueError`` naming the valid metrics for
    anything else, including the ``count/...`` bookkeeping keys.
    """
    prefix = name.split("/", 1)[0]
    if name in ROBUSTNESS_MODES:
        return ROBUSTNESS_MODES[name]
    if prefix not in _MODES:
        raise ValueError(f"unknown metric {name!r} (expected one of {', '.join((*METRIC_NAMES, *ROBUSTNESS_MODES))}, "
                         f"optionally followed by /<dimension>)")
    return _MODES[prefix]


# --------------------------------------------------------------------------- input checks


def _as_matrix(name: str, values) -> np.ndarray:
    """float64 ``[N, L]`` view of ``values``; 1-D input is one dimension."""
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    if matrix.ndim != 2:
        raise ValueError(f"{name}: expected shape [N, L] or [N], got {matrix.shape}")
    return matrix


def _check_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _as_matrix("y_true", y_true), _as_matrix("y_pred", y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}")
    # A NaN prediction means a diverged model; averaging it away would hide that.
    for name, matrix in (("y_true", y_true), ("y_pred", y_pred)):
        if not np.isfinite(matrix).all():
            raise ValueError(f"{name}: contains NaN or inf ({int((~np.isfinite(matrix)).sum())} entries)")
    return y_true, y_pred


# --------------------------------------------------------------------------- regression metrics


def r2_per_dimension(y_true, y_pred) -> np.ndarray:
    """Per-dimension R², ``[L]``; identical to ``r2_score(..., multioutput="raw_values")``.

    Uses sklearn's ``force_finite`` rules: a dimension whose labels are constant
    scores 1.0 if predicted exactly and 0.0 otherwise. With fewer than two items
    R² is undefined and every entry is NaN (sklearn returns a single NaN).
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    if y_true.shape[0] < 2:
        return np.full(y_true.shape[1], np.nan)
    residual = ((y_true - y_pred) ** 2).sum(axis=0)
    total = ((y_true - np.average(y_true, axis=0)) ** 2).sum(axis=0)
    scores = np.ones(y_true.shape[1])  # zero residual: perfect, even for constant labels
    defined = (total != 0) & (residual != 0)
    scores[defined] = 1.0 - residual[defined] / total[defined]
    scores[(residual != 0) & (total == 0)] = 0.0
    return scores


def r2_mean(y_true, y_pred) -> float:
    """Unweighted mean of :func:`r2_per_dimension`; equals ``sklearn.metrics.r2_score``."""
    return float(np.mean(r2_per_dimension(y_true, y_pred)))


def mse(y_true, y_pred) -> float:
    """Mean squared error over all ``N × L`` entries."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    return float(np.mean((y_true - y_pred) ** 2))


def pearson_per_dimension(y_true, y_pred) -> np.ndarray:
    """Pearson r per dimension, ``[L]`` (``scipy.stats.pearsonr`` column-wise).

    NaN where either column is constant or there are fewer than two items.
    """
    import scipy.stats  # lazy: 0.5 s; the metric names are read while every config validates

    y_true, y_pred = _check_pair(y_true, y_pred)
    if y_true.shape[0] < 2:
        return np.full(y_true.shape[1], np.nan)
    with warnings.catch_warnings():
        # A constant column is reported as NaN, which is the answer we want.
        warnings.simplefilter("ignore", scipy.stats.ConstantInputWarning)
        return np.asarray(scipy.stats.pearsonr(y_true, y_pred, axis=0).statistic, dtype=np.float64)


def spearman_per_dimension(y_true, y_pred) -> np.ndarray:
    """Spearman rho per dimension, ``[L]``: Pearson r of average ranks, as ``scipy.stats.spearmanr``.

    NaN where either column is constant or there are fewer than two items.
    """
    import scipy.stats  # lazy: see pearson_per_dimension

    y_true, y_pred = _check_pair(y_true, y_pred)
    # spearmanr on 2-D input correlates columns with each other, so rank
    # column-wise and reuse the vectorised Pearson instead.
    return pearson_per_dimension(scipy.stats.rankdata(y_true, axis=0), scipy.stats.rankdata(y_pred, axis=0))


def std_score(y_true, y_pred, label_std, k: float) -> float:
    """Fraction of the ``N × L`` predictions with ``|pred - label| <= k * label_std``.

    ``label_std`` is the annotators' std on the label scale, ``[N, L]`` per item
    or ``[L]`` per dimension. The reference reports this as a percentage
    (×100) for k = 1, 0.5 and 0.1. A zero std only accepts an exact prediction.
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    label_std = np.asarray(label_std, dtype=np.float64)
    if label_std.ndim == 1 and y_true.shape[1] == 1 and label_std.shape[0] == y_true.shape[0]:
        label_std = label_std[:, None]  # 1-D labels with per-item std
    try:
        tolerance = k * np.broadcast_to(label_std, y_true.shape)
    except ValueError:
        raise ValueError(f"label_std has shape {label_std.shape}, which does not fit labels of shape "
                         f"{y_true.shape} (expected [N, L] or [L])") from None
    return float(np.mean(np.abs(y_pred - y_true) <= tolerance))


@dataclass(frozen=True)
class PredictionSpread:
    """How much the predictions move compared with the labels, per dimension."""

    pred_std: np.ndarray  # [L] std of the predictions (ddof 0)
    target_std: np.ndarray  # [L] std of the labels (ddof 0)
    ratio: np.ndarray  # [L] pred_std / target_std; NaN where the labels are constant
    mean_ratio: float  # mean of ratio over dimensions where it is defined
    collapsed_dims: int  # dimensions with ratio < COLLAPSE_RATIO


def prediction_spread(y_true, y_pred, collapse_ratio: float = COLLAPSE_RATIO) -> PredictionSpread:
    """Prediction std vs label std per dimension, and how many dimensions collapsed.

    A dimension is collapsed when ``pred_std / target_std < collapse_ratio``;
    dimensions with constant labels have no ratio and never count as collapsed.
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    pred_std, target_std = y_pred.std(axis=0), y_true.std(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(target_std > 0, pred_std / target_std, np.nan)
    defined = np.isfinite(ratio)
    return PredictionSpread(
        pred_std=pred_std,
        target_std=target_std,
        ratio=ratio,
        mean_ratio=float(ratio[defined].mean()) if defined.any() else float("nan"),
        collapsed_dims=int((ratio[defined] < collapse_ratio).sum()),
    )


# --------------------------------------------------------------------------- ranking metrics


def same_group_pairs(groups) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs ``(first[p], second[p])`` with ``first < second`` and equal ``groups``.

    Vectorised per group size: groups of the same size share one
    ``np.triu_indices`` pattern, so the Python loop runs over distinct sizes
    (about 14 for PercePiano), not over groups.
    """
    groups = np.asarray(groups).ravel()
    order = np.argsort(groups, kind="stable")  # stable: original order kept inside a group
    _, starts, sizes = np.unique(groups[order], return_index=True, return_counts=True)
    firsts, seconds = [], []
    for size in np.unique(sizes[sizes > 1]):
        a, b = np.triu_indices(size, k=1)
        offsets = starts[sizes == size][:, None]  # [groups of this size, 1]
        firsts.append(order[(offsets + a).ravel()])
        seconds.append(order[(offsets + b).ravel()])
    if not firsts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(firsts).astype(np.int64), np.concatenate(seconds).astype(np.int64)


@dataclass(frozen=True)
class PairwiseAccuracy:
    """Result of :func:`pairwise_accuracy`."""

    per_dimension: np.ndarray  # [L] accuracy in [0, 1]; NaN where no usable pair
    mean: float  # mean over dimensions with a usable pair; NaN if none has one
    n_pairs: int  # same-group pairs (before tie exclusion)
    n_usable_per_dimension: np.ndarray  # [L] pairs left after tie exclusion
    empty_dimensions: tuple[int, ...]  # indices of dimensions without a usable pair


def pairwise_accuracy(y_true, y_pred, groups, min_label_gap: float = 0.0) -> PairwiseAccuracy:
    """Per-dimension accuracy of the predicted order on same-segment pairs.

    Every pair ``i < j`` with ``groups[i] == groups[j]`` (same music, different
    performances) is scored per dimension: 1 if ``pred_i - pred_j`` has the
    sign of ``label_i - label_j``, 0.5 if the predictions tie exactly (a
    constant predictor then sits at chance, 0.5, rather than 0), else 0. Pairs
    with ``|label_i - label_j| <= min_label_gap`` are label ties and are left
    out for that dimension. Singleton groups contribute no pair.
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    groups = np.asarray(groups).ravel()
    if groups.shape[0] != y_true.shape[0]:
        raise ValueError(f"groups has {groups.shape[0]} entries but there are {y_true.shape[0]} items")
    first, second = same_group_pairs(groups)
    label_gap = y_true[first] - y_true[second]  # [P, L]
    pred_gap = y_pred[first] - y_pred[second]
    usable = np.abs(label_gap) > min_label_gap
    credit = np.where(np.sign(pred_gap) == np.sign(label_gap), 1.0, np.where(pred_gap == 0, 0.5, 0.0))
    n_usable = usable.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_dimension = np.where(n_usable > 0, (credit * usable).sum(axis=0) / n_usable, np.nan)
    has_pairs = n_usable > 0
    return PairwiseAccuracy(
        per_dimension=per_dimension,
        mean=float(per_dimension[has_pairs].mean()) if has_pairs.any() else float("nan"),
        n_pairs=int(first.shape[0]),
        n_usable_per_dimension=n_usable.astype(np.int64),
        empty_dimensions=tuple(int(d) for d in np.flatnonzero(~has_pairs)),
    )


# --------------------------------------------------------------------------- everything at once


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def evaluate(
    y_true,
    y_pred,
    groups,
    label_std=None,
    dimension_names: Sequence[str] | None = None,
    min_label_gap: float = 0.0,
) -> dict[str, float]:
    """All metrics of one prediction set as one flat ``{key: float}`` dict.

    Keys are documented in the module docstring; per-dimension keys use
    ``dimension_names`` (default ``dim0``, ``dim1``, ...). ``std_score_*`` keys
    appear only when ``label_std`` is given. Raises ``ValueError`` on shape
    mismatches and on non-finite labels or predictions.
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    n_dims = y_true.shape[1]
    names = list(dimension_names) if dimension_names is not None else [f"dim{d}" for d in range(n_dims)]
    if len(names) != n_dims or len(set(names)) != n_dims:
        raise ValueError(f"dimension_names: expected {n_dims} distinct names, got {names}")

    r2 = r2_per_dimension(y_true, y_pred)
    pairwise = pairwise_accuracy(y_true, y_pred, groups, min_label_gap=min_label_gap)
    pearson = pearson_per_dimension(y_true, y_pred)
    spearman = spearman_per_dimension(y_true, y_pred)
    spread = prediction_spread(y_true, y_pred)

    result: dict[str, float] = {
        "r2": float(r2.mean()),
        "pairwise_acc": pairwise.mean,
        "mse": mse(y_true, y_pred),
        "pearson": _nanmean(pearson),
        "spearman": _nanmean(spearman),
        "pred_std_ratio": spread.mean_ratio,
        "collapsed_dims": float(spread.collapsed_dims),
    }
    if label_std is not None:
        for suffix, k in STD_SCORE_KS.items():
            result[f"std_score_{suffix}"] = std_score(y_true, y_pred, label_std, k)
    for prefix, values in (("r2", r2), ("pairwise_acc", pairwise.per_dimension), ("pearson", pearson),
                           ("spearman", spearman), ("pred_std_ratio", spread.ratio)):
        result.update({f"{prefix}/{name}": float(value) for name, value in zip(names, values)})
    result["count/items"] = float(y_true.shape[0])
    result["count/pairwise_pairs"] = float(pairwise.n_pairs)
    result["count/pairwise_empty_dims"] = float(len(pairwise.empty_dimensions))
    return result
