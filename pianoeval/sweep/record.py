"""A sweep run's record, ``<run>/sweep.yaml``: what the run is (the resolved space, its
parts and options), written when it starts and read when it is resumed or extended.

A resume or an extension is checked against it before anything runs: the same space
(``check_same_space``), an extension that adds trials (``check_extension``), the same
``--evaluate-test`` (``check_evaluate_test``). The run's Optuna study lives beside it in
``optuna.journal``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pianoeval.config import dump_yaml, flatten, load_yaml
from pianoeval.errors import ConfigError
from pianoeval.provenance import git_commit
from pianoeval.sweep.space import SearchSpace

OPTUNA_JOURNAL = "optuna.journal"


def is_local(path: str) -> bool:
    return "://" not in path


EXTENSION_PREFIX = "extend-"


def planned_parts(run_dir: Path) -> list[tuple[str, int]]:
    """The Tune experiments of a run and the trials each was asked for: the first one
    (``""``, the run folder itself) and its extensions (``extend-<n>/``), from sweep.yaml."""
    record = run_dir / "sweep.yaml"
    if not record.is_file():
        return []
    recorded = load_yaml(record)
    parts = recorded.get("parts") or [{"name": "", "num_samples": recorded.get("num_samples", 0)}]
    return [(str(p["name"]), int(p["num_samples"])) for p in parts]


def check_extension(space: SearchSpace, run_dir: Path, run_id: str, planned: list[tuple[str, int]],
                    num_samples: int | None) -> None:
    """Bad extensions, before anything runs: fewer trials than the run already has, a grid
    (complete already), and an Optuna journal that belongs to another sweep."""
    have = sum(n for _, n in planned)
    if num_samples is not None and num_samples < have:
        raise ConfigError(f"--num-samples {num_samples}: run {run_id} already has {have} trials; to extend it ask "
                          f"for more than {have} (e.g. --num-samples {2 * have}), or leave --num-samples out to "
                          "resume it as it is")
    if num_samples is not None and num_samples > have and space.sampler.name == "grid":
        raise ConfigError(f"--num-samples {num_samples}: run {run_id} is a grid sweep, which already covers every "
                          f"grid point ({have}); widen the grid in a new run instead")
    journal = run_dir / OPTUNA_JOURNAL
    if journal.is_file():
        import optuna  # lazy: Optuna loads only when a run is resumed

        storage = study_storage(str(run_dir))
        names = optuna.study.get_all_study_names(storage)
        wanted = study_name(space, run_id)
        if names and wanted not in names:
            raise ConfigError(f"{journal}: holds the Optuna study {', '.join(map(repr, names))}, not {wanted!r}: it "
                              "belongs to another sweep; move it out of the run folder or resume the run it came from")
        keys = {p.key for p in space.parameters}
        if names:
            sampled = {k for t in optuna.load_study(study_name=wanted, storage=storage).trials for k in t.params}
            if sampled - keys:
                raise ConfigError(f"{journal}: its trials sampled {sorted(sampled - keys)[0]!r}, which space "
                                  f"{space.name} does not have: the journal belongs to another space; resume with "
                                  "the space the run was started with")


def check_evaluate_test(run_dir: Path, run_id: str, evaluate_test: bool) -> None:
    """A resumed run keeps the ``--evaluate-test`` it was started with: its trials all have
    test scores or none has (a run recorded before the key existed is not checked)."""
    recorded = load_yaml(run_dir / "sweep.yaml").get("evaluate_test")
    if recorded is None or bool(recorded) == evaluate_test:
        return
    if recorded:
        raise ConfigError(f"{run_dir / 'sweep.yaml'}: evaluate_test: true: run {run_id} was started with "
                          "--evaluate-test; resume it with --evaluate-test, so that every trial is scored on test")
    raise ConfigError(f"{run_dir / 'sweep.yaml'}: evaluate_test: false: run {run_id} was started without "
                      "--evaluate-test and its finished trials have no test scores; resume it without the flag, "
                      "or start a new run with it")


def study_name(space: SearchSpace, run_id: str) -> str:
    return f"{space.name}/{run_id}"


def saved_tune_state(run_dir: Path) -> bool:
    """Whether Tune saved an experiment state to restore (a driver killed early leaves at
    most its ``tuner.pkl``, and nothing to restore from)."""
    return (run_dir / "tuner.pkl").is_file() and any(run_dir.glob("experiment_state-*.json"))


def study_storage(run_path: str):
    """The study's Optuna storage: a journal file in a local run folder (which Ray's saved
    searcher state points back to on ``--resume``); in memory for remote storage."""
    if not is_local(run_path):
        return None
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(Path(run_path) / OPTUNA_JOURNAL)))


def record_references(space: SearchSpace, run_path: str) -> None:
    """Update ``reference_baselines`` in a resumed run's ``sweep.yaml`` (the reports read it)."""
    path = Path(run_path) / "sweep.yaml"
    if not is_local(run_path) or not path.is_file():
        return
    recorded = load_yaml(path)
    if isinstance(recorded, dict) and recorded.get("reference_baselines") != list(space.reference_baselines):
        dump_yaml({**recorded, "reference_baselines": list(space.reference_baselines)}, path)


def write_sweep_file(space: SearchSpace, run_path: str, parts: list[tuple[str, int]],
                      evaluate_test: bool = False) -> None:
    """The resolved space and options: what this run is, for reports and for resuming;
    ``parts``: its Tune experiments (the first, then extensions) and their trial counts."""
    if not is_local(run_path):
        return
    num_samples = sum(n for _, n in parts)
    dump_yaml({
        "space": space.name, "source": str(space.path), **_space_record(space),
        "record": list(space.record), "resources": space.resources.model_dump(), "num_samples": num_samples,
        "git_commit": git_commit(), "reference_baselines": list(space.reference_baselines),
        "evaluate_test": evaluate_test,
        "parts": [{"name": part, "num_samples": n} for part, n in parts],
    }, Path(run_path) / "sweep.yaml")


def _space_record(space: SearchSpace) -> dict[str, Any]:
    """The part of sweep.yaml that judges trials: a resumed or extended run must keep it."""
    return {"metric": space.metric, "mode": space.mode, "sampler": space.sampler.model_dump(),
            "budget": space.budget.model_dump(),
            "parameters": {p.key: {"distribution": type(p.distribution).__name__, **p.distribution.__dict__,
                                   **({"when": p.when} if p.when else {})} for p in space.parameters},
            "base": space.base.to_dict(), "folds": list(space.folds)}


def check_same_space(space: SearchSpace, run_dir: Path) -> None:
    """A resumed or extended run keeps the space its earlier trials were sampled, trained and
    judged by (one Optuna study, one ASHA): a changed base config, parameter, objective, sampler,
    budget or folds (a ``--set`` or an edit of the space since) is a ConfigError naming the key.
    More trials (``--num-samples``), the reference baselines, ``objective.record`` and the
    resources per trial may change."""
    record = run_dir / "sweep.yaml"
    recorded = load_yaml(record)
    now = json.loads(json.dumps(_space_record(space), default=str))  # the plain types dump_yaml writes
    now["budget"].pop("num_samples", None)
    for section, value in now.items():
        if section not in recorded:  # a run from before the key was recorded
            continue
        was = recorded[section]
        if isinstance(was, dict) and section == "budget":
            was = {k: v for k, v in was.items() if k != "num_samples"}
        flat_now, flat_was = (flatten({section: value}), flatten({section: was})) if isinstance(value, dict) else (
            {section: value}, {section: was})
        for key in sorted(set(flat_now) | set(flat_was)):
            if flat_now.get(key) != flat_was.get(key):
                name = {"metric": "objective.metric", "mode": "objective.mode"}.get(key, key.removeprefix("base."))
                raise ConfigError(f"--resume: {name} is {flat_now.get(key)!r} now but {flat_was.get(key)!r} in {record}; "
                                  "a resumed or extended run keeps the space its trials were judged by: resume with the "
                                  "space and --set as they were, or start a new run (leave out --resume)")
