"""Cross-validated trials: a trial trains its config on several folds, one after the other.

A trial's folds come from ``budget.folds``: the first listed fold first for every trial,
the others in an order shuffled per trial (seeded by the sampler's seed and the trial id,
so a resumed trial keeps its order). Each fold reports every epoch (``asha_epoch`` only in
the trial's first fold: epoch-level ASHA compares trials within that fold, at the same
epoch; were the first folds different, a rung would compare folds as much as configs:
validation R2 of one predictor differs by up to 0.08 between PercePiano's performer
folds), then one fold-done result carrying
the objective as the mean over the folds finished so far and every finished fold's own
value (``fold<k>/<metric>``).

Fold-level pruning (``FoldPruner``, an ASHA scheduler that also reads fold-done results):
after each fold, the trial is compared with the incumbent, the best trial that finished
all its folds, on the folds both have finished; a trial whose mean there is behind the
incumbent's mean on the same folds by more than ``budget.fold_max_gap`` is stopped. A
deterministic rule (``behind_incumbent``), unit-tested on its own.
"""

from __future__ import annotations

import random
import statistics
from pathlib import Path

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

FOLD_DONE = "cv/fold_done"  # 1 on a fold-done result
FOLDS_DONE = "cv/folds_done"
FOLDS_TOTAL = "cv/folds_total"
FOLD = "cv/fold"  # the fold a result belongs to
FOLD_EPOCHS = "cv/fold_epochs"  # epochs trained over all the trial's folds so far
ASHA_EPOCH = "asha_epoch"  # the epoch, reported in a trial's first fold only (ASHA's time attribute)


def fold_order(folds: tuple[int, ...], seed: int, trial_id: str) -> list[int]:
    """The order a trial trains its folds in: the first listed fold (where ASHA compares every
    trial), then the others shuffled, the same every time for one trial."""
    rest = list(folds[1:])
    random.Random(f"{seed}:{trial_id}").shuffle(rest)
    return [folds[0], *rest]


def fold_key(fold: int, metric: str) -> str:
    return f"fold{fold}/{metric}"


def fold_values(result: dict, metric: str, folds: tuple[int, ...]) -> dict[int, float]:
    """Each finished fold's value of ``metric`` in a fold-done result."""
    return {k: float(result[fold_key(k, metric)]) for k in folds if fold_key(k, metric) in result}


def last_fold_done(history) -> "pandas.Series | None":
    """A trial's last fold-done result in its reported results (a DataFrame), None before its first fold ends."""
    if history is None or FOLD_DONE not in history:
        return None
    done = history[history[FOLD_DONE] == 1]
    return done.iloc[-1] if len(done) else None


def behind_incumbent(trial: dict[int, float], incumbent: dict[int, float], mode: str, max_gap: float) -> bool:
    """Whether a trial's mean over its finished folds is behind the incumbent's mean on the
    same folds by more than ``max_gap`` (in the metric's units)."""
    shared = sorted(set(trial) & set(incumbent))
    if not shared:
        return False
    mine = statistics.fmean(trial[k] for k in shared)
    theirs = statistics.fmean(incumbent[k] for k in shared)
    gap = theirs - mine if mode == "max" else mine - theirs
    return gap > max_gap


def finished_trials(result_grids, metric: str, folds: tuple[int, ...]) -> dict[str, dict[int, float]]:
    """Fold values of the trials that finished every fold, from earlier Tune experiments of
    a run (an extension's pruner compares with them too)."""
    finished = {}
    for grid in result_grids:
        for result in grid:
            values = fold_values(result.metrics or {}, metric, folds)
            if len(values) == len(folds):
                finished[Path(result.path).name] = values
    return finished


def mean_and_sd(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


class FoldPruner(ASHAScheduler):
    """ASHA over epochs (of a trial's first fold) plus fold-level pruning; see the module
    docstring. ``max_gap=None`` keeps ASHA alone."""

    def __init__(self, *, folds: tuple[int, ...], max_gap: float | None, metric: str, mode: str, **asha):
        super().__init__(metric=metric, mode=mode, **asha)
        self.folds = tuple(folds)
        self.max_gap = max_gap
        self.fold_mode = mode
        self.fold_metric = metric
        self.finished: dict[str, dict[int, float]] = {}  # trial id -> fold values, trials with every fold done
        self.fold_stopped = 0

    def incumbent(self) -> dict[int, float] | None:
        if not self.finished:
            return None
        pick = max if self.fold_mode == "max" else min
        return pick(self.finished.values(), key=lambda v: statistics.fmean(v.values()))

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if not result.get(FOLD_DONE):
            if len(self.folds) > 1 and (result.get("early_stopped") or result.get("epoch", 0) >= self._max_t):
                return TrialScheduler.CONTINUE  # a fold's last epoch: the fold finishes, the fold rule decides
            return super().on_trial_result(tune_controller, trial, result)
        values = fold_values(result, self.fold_metric, self.folds)
        if len(values) == len(self.folds):
            self.finished[trial.trial_id] = values
            return TrialScheduler.CONTINUE
        incumbent = self.incumbent()
        if self.max_gap is not None and incumbent and behind_incumbent(values, incumbent, self.fold_mode,
                                                                        self.max_gap):
            self.fold_stopped += 1
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        if result and result.get(FOLD_DONE):
            values = fold_values(result, self.fold_metric, self.folds)
            if len(values) == len(self.folds):
                self.finished[trial.trial_id] = values
            self._trial_info.pop(trial.trial_id, None)
            return
        super().on_trial_complete(tune_controller, trial, result)
