"""The PercePiano reproduction runs (issue 23): finding each reference model's fold runs, and
the numbers the tables show (``pianoeval.report.reference_tables`` writes them as Markdown).

    >>> from pianoeval.report.reference import find_runs, fold_ensemble
    >>> runs = find_runs(["results/runs/reference"])
    >>> fold_ensemble(list(runs.folds("han", "piece").values())).r2

Runs are folders named ``<model>-<split><fold>`` (``han-piece0``) as ``runners/train.py --out``
writes them. The fold ensemble averages the fold models' test predictions per segment and
scores them with ``pianoeval.metrics``, as every run is scored; a gain is paired over the folds
both models have, with a 95% t interval of the mean difference.

A folder without ``metrics.json`` is unfinished (listed with the last epoch of its
``history.csv``); one whose ``metrics.json`` or ``predictions.parquet`` is missing or unreadable
is skipped and listed. A run name found under several roots is read from the first root that
holds it finished; the others are listed as not used.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.stats

from pianoeval.config import load_yaml
from pianoeval.errors import ConfigError
from pianoeval.experiment import ExperimentConfig
from pianoeval.io import read_table
from pianoeval.metrics import pairwise_accuracy, r2_mean, r2_per_dimension

#: PercePiano paper, Table 3: test R2, the mean of the 4 fold models on the fixed test set.
#: ``None``: the paper gives no figure for that model on that split.
PAPER_TEST_R2: dict[str, dict[str, float | None]] = {
    "piece": {"bilstm_baseline": 0.185, "note_sa": 0.304, "han": 0.397},
    "performer": {"bilstm_baseline": 0.236, "note_sa": None, "han": 0.285},
}
#: Paper rows with no pianoeval model, quoted under each split's table.
PAPER_ONLY: dict[str, dict[str, float]] = {"piece": {"MidiBERT": 0.313}, "performer": {"MidiBERT": 0.212}}
REFERENCE_MODELS = ("global_mean", "music_mean", "ridge_probe")  # parameter-free: italic rows first
TRAINED_MODELS = ("bilstm_baseline", "note_sa", "han")
GAIN_PAIRS = (("han", "bilstm_baseline"), ("note_sa", "bilstm_baseline"), ("han", "note_sa"))
SPLITS = ("performer", "piece")  # this order first, any other split after
FOLDS = (0, 1, 2, 3)
RUN_NAME = re.compile(r"^(?P<model>[A-Za-z0-9_]+)-(?P<split>[A-Za-z_]+?)(?P<fold>\d+)$")
RUN_MARKERS = ("metrics.json", "history.csv", "resolved.yaml")
LANDING_RULE = ("*within*: the paper's figure lies inside our mean ± sd over the folds; *above* / *below*: our "
                "mean is higher / lower than that; with one fold there is no sd, so it is above or below that fold")


@dataclass(frozen=True)
class FoldRun:
    """A finished run: its ``metrics.json`` and its test predictions (one row per segment)."""

    model: str
    split: str
    fold: int
    cited: str  # the folder as the tables name it
    metrics: dict
    test: pd.DataFrame  # indexed by segment_id: group, pred/<dim>, label/<dim>
    command: str
    history_seconds: float | None = None  # the last epoch's seconds in history.csv, counted across resumes

    def score(self, key: str) -> float:
        return float(self.metrics.get(f"test/{key}", float("nan")))

    @property
    def threads(self) -> int:
        return int(self.metrics.get("threads") or 1)

    @property
    def wall_seconds(self) -> float:
        """The longer of ``wall_seconds`` (metrics.json: the last session only, when the run was
        resumed) and the last epoch's ``seconds`` in history.csv (counted across resumes)."""
        return max(float(self.metrics.get("wall_seconds") or 0.0), self.history_seconds or 0.0)

    @property
    def cpu_seconds(self) -> float:
        return self.threads * self.wall_seconds


@dataclass(frozen=True)
class OtherRun:
    """An unfinished or skipped run folder, or a second copy of a run name, and why."""

    model: str
    split: str
    fold: int
    cited: str
    why: str


@dataclass
class RunSet:
    finished: list[FoldRun] = field(default_factory=list)
    unfinished: list[OtherRun] = field(default_factory=list)
    skipped: list[OtherRun] = field(default_factory=list)
    not_used: list[OtherRun] = field(default_factory=list)

    def splits(self) -> list[str]:
        found = {r.split for r in (*self.finished, *self.unfinished, *self.skipped)}
        return [s for s in SPLITS if s in found] + sorted(found - set(SPLITS))

    def folds(self, model: str, split: str) -> dict[int, FoldRun]:
        return {r.fold: r for r in sorted(self.finished, key=lambda r: r.fold) if r.model == model and r.split == split}

    def models(self, split: str) -> list[str]:
        found = {r.model for r in (*self.finished, *self.unfinished, *self.skipped) if r.split == split}
        known = [m for m in (*REFERENCE_MODELS, *TRAINED_MODELS) if m in found]
        return known + sorted(found - set(known))


# --------------------------------------------------------------------------- reading runs


def find_runs(roots: Iterable[str | Path], cite: str | None = None) -> RunSet:
    """Every run folder ``<model>-<split><fold>`` under ``roots`` (not recursive). ``cite``
    names the folders ``<cite>/<name>`` in the tables instead of where they were read.
    A root that is not a folder, or holds no run, is a one-line ConfigError."""
    by_name: dict[str, list[tuple[Path, str]]] = {}
    for root in map(Path, roots):
        if not root.is_dir():
            raise ConfigError(f"--runs {root}: no such folder (give folders of runs named <model>-<split><fold>, "
                              "e.g. results/runs/reference)")
        found = [p for p in sorted(root.iterdir()) if p.is_dir() and RUN_NAME.match(p.name)
                 and any((p / marker).exists() for marker in RUN_MARKERS)]
        if not found:
            raise ConfigError(f"--runs {root}: holds no runs (folders named <model>-<split><fold>, e.g. han-piece0, "
                              f"with one of {', '.join(RUN_MARKERS)})")
        for path in found:
            by_name.setdefault(path.name, []).append((path, f"{cite}/{path.name}" if cite else str(path)))
    runs = RunSet()
    for copies in by_name.values():
        loaded = [load_run(path, cited) for path, cited in copies]
        finished = [i for i, r in enumerate(loaded) if isinstance(r, FoldRun)]
        pick = finished[0] if finished else 0
        chosen = loaded[pick]
        if isinstance(chosen, FoldRun):
            runs.finished.append(chosen)
        elif chosen.why.startswith("unfinished"):
            runs.unfinished.append(chosen)
        else:
            runs.skipped.append(chosen)
        used_root = copies[pick][0].parent
        runs.not_used += [OtherRun(run.model, run.split, run.fold, path.name,
                                   # cited: the roots are not where the tables say the runs are
                                   f"under {path.parent} too; the one under {used_root} is used" if not cite else
                                   f"in {len(copies)} of the --runs folders; the first finished copy is used")
                          for (path, _), run in zip(copies, loaded) if run is not chosen]
    return runs


def load_run(path: Path, cited: str, identity: tuple[str, str, int] | None = None) -> FoldRun | OtherRun:
    """One run folder: a FoldRun when finished and readable, else an OtherRun saying why.
    ``identity``: (model, split, fold) of a folder not named ``<model>-<split><fold>`` (a sweep
    trial's ``fold<k>``)."""
    if identity is None:
        match = RUN_NAME.match(path.name)
        identity = match["model"], match["split"], int(match["fold"])
    model, split, fold = identity

    def other(why: str) -> OtherRun:
        return OtherRun(model, split, fold, cited, why)

    history_seconds, last_epoch = _history_end(path / "history.csv")
    if not (path / "metrics.json").is_file():
        return other(f"unfinished (last epoch {last_epoch} in history.csv)" if last_epoch else
                     "unfinished (no epoch in history.csv yet)")
    try:
        metrics = json.loads((path / "metrics.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return other(f"metrics.json unreadable ({type(err).__name__})")
    if not isinstance(metrics, dict) or not isinstance(metrics.get("test/r2"), (int, float)):
        status = metrics.get("status") if isinstance(metrics, dict) else None
        return other(f"metrics.json has no test/r2 (status {status})")
    if not (path / "predictions.parquet").is_file():
        return other("no predictions.parquet")
    try:
        test = _test_predictions(read_table(path / "predictions.parquet"))
    except ConfigError:  # read_table's one line: truncated, or not parquet
        return other("predictions.parquet unreadable")
    except ValueError as err:
        return other(f"predictions.parquet unusable ({err})")
    return FoldRun(model, split, fold, cited, metrics, test, train_command(path, cited, metrics), history_seconds)


def _history_end(path: Path) -> tuple[float | None, int | None]:
    """The last row's ``seconds`` (cumulative across resumes) and ``epoch`` of a history.csv."""
    try:
        history = pd.read_csv(path)
        last = history.iloc[-1]
        return float(last.get("seconds", float("nan"))), int(last["epoch"])
    except (OSError, ValueError, KeyError, IndexError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None, None


def _test_predictions(frame: pd.DataFrame) -> pd.DataFrame:
    """The test rows of a predictions.parquet, by segment; ValueError saying what is wrong."""
    test = frame[frame.get("stage") == "test"] if "stage" in frame else frame.iloc[:0]
    preds = [c for c in test.columns if c.startswith("pred/")]
    if test.empty or not preds or "group" not in test or "segment_id" not in test:
        raise ValueError("no test rows with segment_id, group and pred/ columns")
    if any(f"label/{c[5:]}" not in test for c in preds):
        raise ValueError("a pred/ column without its label/ column")
    if test["segment_id"].duplicated().any():
        raise ValueError("a test segment_id appears twice")
    return test.set_index("segment_id")[["group", *preds, *(f"label/{c[5:]}" for c in preds)]]


def train_command(path: Path, cited: str, metrics: dict) -> str:
    """The ``runners/train.py`` command of a run, rebuilt from its ``resolved.yaml``: the model,
    split, fold, seed and threads, and a ``--set`` for each value that differs from the
    model's defaults. (``--config <run>/resolved.yaml`` reruns it exactly, too.)"""
    try:
        raw = load_yaml(path / "resolved.yaml")
        raw.pop("provenance", None)
        defaults = _flat(ExperimentConfig.resolve({"model": {"name": raw["model"]["name"]}}, "--model").to_dict())
    except (ConfigError, KeyError, TypeError, AttributeError):
        return f"(no readable resolved.yaml in {cited})"
    given = _flat(raw)
    fixed = {"model.name", "data.split", "data.fold", "seed", "name"}
    sets = [f"{key}={_yaml_value(value)}" for key, value in given.items()
            if key not in fixed and key in defaults and defaults[key] != value]
    args = ["python", "runners/train.py", "--model", str(given["model.name"]), "--split", str(given["data.split"]),
            "--fold", str(given["data.fold"]), "--seed", str(given["seed"]),
            "--threads", str(metrics.get("threads") or 1), *(a for s in sets for a in ("--set", s)), "--out", cited]
    return shlex.join(args)


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _yaml_value(value) -> str:
    return "null" if value is None else json.dumps(value) if isinstance(value, (list, bool)) else str(value)


# --------------------------------------------------------------------------- numbers


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sd (ddof 1; NaN with fewer than 2 values)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else float("nan")


@dataclass(frozen=True)
class Ensemble:
    folds: tuple[int, ...]
    segments: int
    r2: float
    pairwise: float
    r2_per_dimension: dict[str, float]
    note: str = ""


def fold_ensemble(runs: Sequence[FoldRun]) -> Ensemble:
    """The mean of the fold models' test predictions per segment, scored as every run is
    (``pianoeval.metrics``: R2 the uniform mean over dimensions, same-music pairwise accuracy)."""
    common = runs[0].test.index
    for run in runs[1:]:
        common = common.intersection(run.test.index, sort=False)
    note = "" if all(len(r.test) == len(common) for r in runs) else \
        f"scored on the {len(common)} test segments every fold model predicted"
    first = runs[0].test.loc[common]
    dims = [c[5:] for c in first.columns if c.startswith("pred/")]
    labels = first[[f"label/{d}" for d in dims]].to_numpy(np.float64)
    for run in runs[1:]:
        if not np.allclose(run.test.loc[common, [f"label/{d}" for d in dims]].to_numpy(np.float64), labels):
            raise ConfigError(f"{run.cited}: its test labels differ from {runs[0].cited}'s; not the same test set")
    pred = np.mean([r.test.loc[common, [f"pred/{d}" for d in dims]].to_numpy(np.float64) for r in runs], axis=0)
    groups = first["group"].to_numpy()
    return Ensemble(tuple(r.fold for r in runs), len(common), r2_mean(labels, pred),
                    pairwise_accuracy(labels, pred, groups).mean,
                    dict(zip(dims, map(float, r2_per_dimension(labels, pred)))), note)


@dataclass(frozen=True)
class Gain:
    """``model`` minus ``baseline`` on the folds both have: per metric the mean difference and
    its 95% t interval (None with fewer than 2 paired folds)."""

    model: str
    baseline: str
    folds: tuple[int, ...]
    mean: dict[str, float]
    ci: dict[str, tuple[float, float] | None]


def paired_gain(runs: RunSet, split: str, model: str, baseline: str) -> Gain:
    return paired_difference(runs.folds(model, split), runs.folds(baseline, split), model, baseline)


def paired_difference(a: dict[int, FoldRun], b: dict[int, FoldRun], model: str, baseline: str) -> Gain:
    """``a`` minus ``b`` (fold -> run) on the folds both have, with a 95% t interval."""
    folds = tuple(sorted(set(a) & set(b)))
    mean, ci = {}, {}
    for key in ("r2", "pairwise_acc"):
        diffs = np.array([a[f].score(key) - b[f].score(key) for f in folds])
        mean[key] = float(diffs.mean()) if folds else float("nan")
        ci[key] = None
        if len(folds) >= 2:
            half = scipy.stats.t.ppf(0.975, len(folds) - 1) * diffs.std(ddof=1) / math.sqrt(len(folds))
            ci[key] = (mean[key] - half, mean[key] + half)
    return Gain(model, baseline, folds, mean, ci)


def landing(mean: float, sd: float, paper: float) -> str:
    """Where our mean lands against the paper's figure (:data:`LANDING_RULE`)."""
    if math.isfinite(sd) and abs(paper - mean) <= sd:
        return "within"
    return "above" if mean > paper else "below"


# --------------------------------------------------------------------------- a sweep's winner


@dataclass(frozen=True)
class SweepWinner:
    """A cross-validated sweep's best trial (``best.yaml``), its fold models as FoldRuns, and
    what the whole sweep cost (every trial, pruned ones included)."""

    cited: str
    space: str
    split: str
    trial_id: str
    objective: str
    value: float
    sampled: dict[str, object]  # the trial's sampled parameters
    folds: dict[int, FoldRun]
    trials: int
    statuses: dict[str, int]
    fold_epochs: int
    cpu_seconds: float
    winner_cpu_seconds: float


def load_sweep_winner(run_dir: str | Path, cite: str | None = None) -> SweepWinner:
    """The winner of the sweep run in ``run_dir`` (``results/sweeps/<space>/<run>``), each of its
    folds read as a finished run with test predictions (a sweep run with ``--evaluate-test``).
    Anything missing is a one-line ConfigError naming the file and the fix."""
    run_dir = Path(run_dir)
    cited = cite or str(run_dir)
    where = f"--sweep {run_dir}"
    if not run_dir.is_dir():
        raise ConfigError(f"{where}: not a folder; give a sweep run folder (results/sweeps/<space>/<run>)")
    missing = [name for name in ("best.yaml", "trials.parquet") if not (run_dir / name).is_file()]
    if missing:
        raise ConfigError(f"{where}: no best.yaml and trials.parquet there (missing: {', '.join(missing)}); give a "
                          "sweep run folder (results/sweeps/<space>/<run>) whose sweep finished a trial on every fold")
    best = load_yaml(run_dir / "best.yaml")
    prov = best.get("provenance") if isinstance(best, dict) else None
    if not isinstance(prov, dict) or not prov.get("trial_id") or not prov.get("folds"):
        raise ConfigError(f"{run_dir / 'best.yaml'}: no provenance.trial_id / provenance.folds; the showcase needs "
                          "a cross-validated sweep (budget.folds)")
    trials = read_table(run_dir / "trials.parquet")
    row = trials[trials["trial_id"].astype(str) == str(prov["trial_id"])]
    if row.empty:
        raise ConfigError(f"{run_dir / 'trials.parquet'}: no trial {prov['trial_id']} (best.yaml's); the two files "
                          "are from different runs")
    row = row.iloc[0]
    split = str(best.get("data", {}).get("split"))
    folds: dict[int, FoldRun] = {}
    for fold in prov["folds"]:
        path = run_dir / str(row["trial_dir"]) / f"fold{fold}"
        run = load_run(path, f"{cited}/{row['trial_dir']}/fold{fold}", identity=(str(prov["sweep"]), split, int(fold)))
        if not isinstance(run, FoldRun):
            raise ConfigError(f"{path}: {run.why}; run the sweep with --evaluate-test, or score this fold's best "
                              f"checkpoint: python runners/train.py --config {path}/resolved.yaml --out {path} "
                              "--evaluate-stopped")
        folds[int(fold)] = run
    sampled = {k[len("config/"):]: v for k, v in row.items()
               if k.startswith("config/") and not (isinstance(v, float) and math.isnan(v))}
    return SweepWinner(
        cited=cited, space=str(prov["sweep"]), split=split, trial_id=str(prov["trial_id"]),
        objective=str(prov.get("objective")), value=float(prov.get("value", float("nan"))), sampled=sampled,
        folds=folds, trials=len(trials), statuses={str(k): int(v) for k, v in trials["status"].value_counts().items()},
        fold_epochs=int(pd.to_numeric(trials["epochs_run"], errors="coerce").fillna(0).sum()),
        cpu_seconds=float(pd.to_numeric(trials["cpu_seconds"], errors="coerce").fillna(0).sum()),
        winner_cpu_seconds=float(row["cpu_seconds"]) if pd.notna(row["cpu_seconds"]) else float("nan"))
