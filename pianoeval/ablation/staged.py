"""Staged elimination (seed 002): screen, drop losers within each track, cross-validate
the survivors, pick a winner per track (then fuse the winners, once fusion exists).

``ablations/staged_elimination.yaml``::

    base: {data: {split: piece}}
    candidates:                          # name -> track + config overrides of base
      han: {track: symbolic, config: {model: {name: han}}}
      bilstm_baseline: {track: symbolic, config: {model: {name: bilstm_baseline}}}
    stages:
      round1:                            # every candidate, fold 0, short budget, ASHA rungs
        folds: [0]
        budget: {max_epochs: 50, asha_grace_period: 5, asha_metric: val/pairwise_acc}
        tiers: [T1]
        rule: {name: within_track_gap, metric: val/pairwise_acc, max_gap: 0.10}
      round2:
        candidates: {survivors_of: round1}
        folds: [0, 1, 2, 3]
        budget: {max_epochs: 200, early_stopping_patience: 20}
        tiers: [T1, T3]
        rule: {name: track_winner, metric: val/pairwise_acc, tiebreak: val/r2,
               veto_metric: val/robust_pairwise_drop, veto_max: 0.15}

Each stage is a trial set run exactly like an ablation (``run_trial_set``) in
``<run>/<stage>/``; after it, the stage's rule decides over its ``trials.parquet``
and the decision is recorded in ``<run>/stages.json``. ``--resume`` skips finished
stages and continues the unfinished one from Tune's state: no finished trial reruns.
New tracks and encoders join by adding candidates, with no engine change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic

from pianoeval.ablation.rules import FINISHED, RULES, Decision
from pianoeval.ablation.spec import (AblationSpec, BudgetSpec, ResourcesSpec, _resolve_variant, check_folds_in_range,
                                     check_name, check_resumed_run, with_trials)
from pianoeval.config import (Folds, Seeds, StrictModel, deep_merge, load_spec_yaml, load_yaml, route_overrides,
                              set_path, unflatten, validate)
from pianoeval.data.inputs import check_test_metrics
from pianoeval.errors import ConfigError, RunInterrupted
from pianoeval.experiment import monitor_mode
from pianoeval.io import RESUME_FIX, atomic_write_text, read_history, read_table, run_id_for
from pianoeval.models.registry import get_model
from pianoeval.paths import REPO_ROOT
from pianoeval.sweep.engine import results_folder

if TYPE_CHECKING:
    import pandas as pd

TIERS = ("T1", "T2", "T3", "T4")


class CandidateSpec(StrictModel):
    track: str
    config: dict[str, Any] = {}


class RuleSpec(StrictModel):
    name: str
    metric: str = "val/pairwise_acc"
    max_gap: float = pydantic.Field(0.10, ge=0)
    tiebreak: str = "val/r2"
    veto_metric: str | None = "val/robust_pairwise_drop"
    veto_max: float = pydantic.Field(0.15, ge=0)

    @pydantic.model_validator(mode="after")
    def _known(self) -> "RuleSpec":
        if self.name not in RULES:
            raise ValueError(f"unknown rule {self.name!r} (rules: {', '.join(RULES)})")
        monitor_mode(self.metric)
        monitor_mode(self.tiebreak)  # its direction decides ties: known now, not after training
        return self


class StageSpec(StrictModel):
    candidates: str | list[str] | dict[str, str] = "all"  # "all", [names], {survivors_of: stage}
    folds: Folds = [0]
    seeds: Seeds | None = None
    budget: BudgetSpec = BudgetSpec()
    tiers: list[str] = ["T1"]
    rule: RuleSpec | None = None
    overrides: dict[str, Any] = {}
    fuse: str | None = None  # an earlier stage whose audio and symbolic winners this stage's fusion candidates fuse

    @pydantic.field_validator("tiers")
    @classmethod
    def _tiers(cls, values: list[str]) -> list[str]:
        for value in values:
            if value not in TIERS:
                raise ValueError(f"unknown tier {value!r} (tiers: {', '.join(TIERS)})")
        return values


class StagedFile(StrictModel):
    description: str = ""
    base: dict[str, Any] = {}
    candidates: dict[str, CandidateSpec]
    stages: dict[str, StageSpec]
    seeds: Seeds = [7]
    metrics: list[str] = ["val/pairwise_acc", "val/r2", "test/pairwise_acc", "test/r2"]
    resources: ResourcesSpec = ResourcesSpec()

    @pydantic.field_validator("stages")
    @classmethod
    def _stage_names(cls, stages: dict[str, StageSpec]) -> dict[str, StageSpec]:
        for name in stages:  # each stage writes into a folder of that name
            check_name(name, "stage")
        return stages

    @pydantic.field_validator("candidates")
    @classmethod
    def _candidate_names(cls, candidates: dict[str, CandidateSpec]) -> dict[str, CandidateSpec]:
        for name in candidates:  # a candidate is a variant of each stage: it names its runs' folders
            check_name(name, "candidate")
        return candidates


@dataclass(frozen=True)
class StagedSpec:
    name: str
    path: Path
    source: str
    description: str
    base: dict[str, Any]
    candidates: dict[str, CandidateSpec]
    stages: dict[str, StageSpec]
    seeds: tuple[int, ...]
    metrics: tuple[str, ...]
    resources: ResourcesSpec
    overrides: dict[str, Any]

    def stage_spec(self, stage: str, names: list[str], fused: dict[str, Any] | None = None) -> AblationSpec:
        """The trial set of one stage over the given candidates (``fused``: the encoder
        settings a fusion stage gives every candidate, see ``fusion_encoders``)."""
        stage_spec = self.stages[stage]
        variants = {}
        for name in names:
            where = f"{self.source}: candidates.{name} (stage {stage})"
            extra = {**_tier_override(stage_spec.tiers, self.candidates[name], name, where), **self.overrides}
            # the fused encoders replace the candidate's (a whole model config each, not merged into it)
            overrides = _merge(_merge(self.candidates[name].config, stage_spec.overrides), unflatten(fused or {}))
            config = _resolve_variant(self.base, overrides, stage_spec.budget, where, extra)
            variants[name] = config.require_inputs(where)
            check_folds_in_range(stage_spec.folds, config.data.split, f"{self.source}: stages.{stage}.folds")
        seeds = tuple(stage_spec.seeds or self.seeds)
        spec = AblationSpec(f"{self.name}/{stage}", self.path, f"{self.description} (stage {stage})", variants, {},
                            names[0], tuple(stage_spec.folds), seeds, self.metrics, stage_spec.budget,
                            self.resources, self.source)
        return with_trials(spec)


def _merge(a: dict, b: dict) -> dict:
    return deep_merge(json.loads(json.dumps(a)), b)


def _tier_override(tiers: list[str], candidate: CandidateSpec, name: str, where: str) -> dict[str, Any]:
    """``data.tiers`` for a candidate: the stage's tiers that its input kind has (see ``tier_notes``)."""
    model = (candidate.config.get("model") or {}).get("name")
    if model is None:
        return {"data.tiers": list(tiers)}
    usable = [t for t in tiers if t in get_model(model, where).tiers]
    return {"data.tiers": usable or ["T1"]}


def tier_notes(staged: "StagedSpec", stage: str, names: list[str]) -> list[str]:
    """One line per candidate that trains on fewer tiers than the stage lists."""
    notes = []
    for name in names:
        wanted = staged.stages[stage].tiers
        used = _tier_override(wanted, staged.candidates[name], name, "")["data.tiers"]
        if used != list(wanted):
            notes.append(f"{name}: its input has no {', '.join(t for t in wanted if t not in used)}; trains on {', '.join(used)}")
    return notes


def is_staged(path: Path) -> bool:
    return "stages" in load_spec_yaml(path, "docs/ablations.md")


def load_staged(path: Path, overrides: dict[str, Any] | None = None) -> StagedSpec:
    source = str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)
    raw = load_yaml(path)
    spec_part, config_overrides = route_overrides(overrides or {}, set(StagedFile.model_fields) - {"base"})
    for key, value in spec_part.items():
        head, _, rest = key.partition(".")
        if head == "candidates":  # --set candidates.han.model.hidden_size=16: a candidate's own config
            name, _, key = rest.partition(".")
            if name not in (raw.get("candidates") or {}) or not key:
                raise ConfigError(f"{source}: --set candidates.{rest}: use candidates.<candidate>.<config key> with "
                                  f"a candidate of the file ({', '.join(raw.get('candidates') or {})})")
            key = f"candidates.{name}.config.{key}"
        set_path(raw, key, value)  # e.g. stages.round1.budget.max_epochs, seeds, resources.cpu
    spec = validate(StagedFile, raw, source)
    if not spec.stages:
        raise ConfigError(f"{source}: stages: no stages")
    names = list(spec.stages)
    for i, (stage, entry) in enumerate(spec.stages.items()):
        if not entry.folds:
            raise ConfigError(f"{source}: stages.{stage}.folds: the list is empty; give at least one fold (0-3)")
        if isinstance(entry.candidates, dict):
            parent = entry.candidates.get("survivors_of")
            if set(entry.candidates) != {"survivors_of"} or parent not in names[:i]:
                raise ConfigError(f"{source}: stages.{stage}.candidates: survivors_of must name an earlier stage "
                                  f"({', '.join(names[:i]) or 'none before it'})")
        elif isinstance(entry.candidates, list):
            unknown = [c for c in entry.candidates if c not in spec.candidates]
            if unknown:
                raise ConfigError(f"{source}: stages.{stage}.candidates: {unknown[0]!r} is not a candidate")
            if not entry.candidates:
                raise ConfigError(f"{source}: stages.{stage}.candidates: the list is empty; list candidates, "
                                  "or write all or {survivors_of: <stage>}")
        elif entry.candidates != "all":
            raise ConfigError(f"{source}: stages.{stage}.candidates: 'all', a list, or {{survivors_of: <stage>}}")
        if entry.fuse is not None:
            if entry.fuse not in names[:i]:
                raise ConfigError(f"{source}: stages.{stage}.fuse: must name an earlier stage "
                                  f"({', '.join(names[:i]) or 'none before it'})")
            earlier = spec.stages[entry.fuse]
            if earlier.rule is None or earlier.rule.name != "track_winner":
                raise ConfigError(f"{source}: stages.{stage}.fuse: stage {entry.fuse} picks no track winners "
                                  f"(give it rule: {{name: track_winner}})")
            extra_folds = sorted(set(entry.folds) - set(earlier.folds))
            if extra_folds:
                raise ConfigError(f"{source}: stages.{stage}.folds: {extra_folds} not trained in {entry.fuse} "
                                  f"(folds {earlier.folds}): the fused encoders exist only for those")
            if not isinstance(entry.candidates, list):
                raise ConfigError(f"{source}: stages.{stage}.candidates: a fusion stage lists its fusion candidates")
    staged = StagedSpec(path.stem, path, source, spec.description, spec.base, spec.candidates, spec.stages,
                        tuple(spec.seeds), tuple(spec.metrics), spec.resources, config_overrides)
    for name in spec.candidates:  # validate every candidate once, in the first stage's settings
        config = next(iter(staged.stage_spec(names[0], [name]).variants.values()))
        for stage, entry in spec.stages.items():
            check_test_metrics(spec.metrics, config.data.split, entry.folds, f"{source}: stages.{stage}")
    for stage in names[1:]:  # and each later stage's settings (folds, budget, overrides) on one of its candidates
        chosen = spec.stages[stage].candidates
        staged.stage_spec(stage, [chosen[0] if isinstance(chosen, list) else next(iter(spec.candidates))])
    return staged


def _state_path(run_dir: Path) -> Path:
    return run_dir / "stages.json"


def _load_state(run_dir: Path) -> dict:
    path = _state_path(run_dir)
    return json.loads(path.read_text()) if path.is_file() else {"stages": {}}


def _save_state(run_dir: Path, state: dict) -> None:
    atomic_write_text(_state_path(run_dir), json.dumps(state, indent=1))


def screened_candidates(staged: StagedSpec) -> list[str]:
    """What ``candidates: all`` means: every candidate except those a fusion stage lists."""
    fused = {c for entry in staged.stages.values() if entry.fuse for c in entry.candidates}
    return [name for name in staged.candidates if name not in fused]


def _stage_candidates(staged: StagedSpec, stage: str, state: dict) -> list[str]:
    chosen = staged.stages[stage].candidates
    if chosen == "all":
        return screened_candidates(staged)
    if isinstance(chosen, list):
        return chosen
    return state["stages"][chosen["survivors_of"]]["kept"]


FUSED_TRACKS = ("audio", "symbolic")


def fusion_encoders(staged: StagedSpec, stage: str, run_dir: Path, state: dict, print_fn=print) -> dict | None:
    """The encoder settings of a fusion stage: each fused track's winner in the stage named
    by ``fuse`` (its model config, and its trained weights per fold and seed, copied to
    ``<stage>/encoders/<track>/fold<k>-s<seed>/``). None (and a line saying why) when that
    stage has no winner of some track."""
    import shutil

    source = staged.stages[stage].fuse
    winners = state["stages"].get(source, {}).get("winners", {})
    missing = [t for t in FUSED_TRACKS if t not in winners]
    if missing:
        print_fn(f"[staged] {stage}: fuses the audio and symbolic winners of {source}, which has no "
                 f"{' or '.join(missing)} winner (its candidates: tracks "
                 f"{', '.join(sorted({staged.candidates[c].track for c in state['stages'][source]['candidates']}))}); "
                 f"stopping")
        return None
    from pianoeval.sweep.rows import text  # lazy: it loads pandas (a staged spec loads without it)

    trials = read_table(run_dir / source / "trials.parquet", RESUME_FIX)
    fused: dict[str, Any] = {}
    for track in FUSED_TRACKS:
        winner = winners[track]
        folder = run_dir / stage / "encoders" / track
        for row in trials[(trials["variant"] == winner) & (trials["status"] == "completed")].itertuples():
            recorded = text(row.trial_dir)
            if recorded is None:  # no weights to copy: that fold and seed's fused run fails, as a row
                print_fn(f"[staged] {stage}: {winner} fold {row.fold} seed {row.seed} has no trial folder "
                         f"recorded in {source}/trials.parquet; its encoder is not copied")
                continue
            trial = Path(recorded) if Path(recorded).is_absolute() else run_dir / source / recorded
            target = folder / f"fold{row.fold}-s{row.seed}"
            target.mkdir(parents=True, exist_ok=True)
            for name in ("model.pt", "resolved.yaml"):
                shutil.copy2(trial / "run" / name, target / name)
        fused[f"model.{track}_encoder"] = staged.stage_spec(source, [winner]).variants[winner].model
        fused[f"model.{track}_checkpoint"] = str(folder / "fold{fold}-s{seed}")
        print_fn(f"[staged] {stage}: {track} encoder = {winner}, frozen, trained in {source}")
    return fused


def epoch_table(frame: pd.DataFrame, stage_dir: Path, metric: str) -> pd.DataFrame:
    """The per-epoch table of a stage's trained runs (columns variant, fold, seed, epoch, ``metric``)
    from each run's ``run/history.csv`` (Tune's ``progress.csv`` where that is missing). Runs
    with neither, eval-only rows and failed runs are absent; the rules say when that matters."""
    import pandas as pd  # lazy: a staged spec loads without pandas (keeps config errors under 1 s)

    from pianoeval.sweep.rows import present  # lazy: it loads pandas

    parts = []
    for row in frame.to_dict("records"):
        if row.get("eval_only") or row["status"] not in FINISHED or not present(row.get("trial_dir")):
            continue
        folder = Path(row["trial_dir"]) if Path(row["trial_dir"]).is_absolute() else stage_dir / row["trial_dir"]
        history, _ = read_history(folder, prefer="history")
        if history is not None and metric in history:
            parts.append(history[["epoch", metric]].assign(variant=row["variant"], fold=row["fold"], seed=row["seed"]))
    columns = ["variant", "fold", "seed", "epoch", metric]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def decide(rule: RuleSpec | None, table: pd.DataFrame, curves: pd.DataFrame | None = None) -> Decision:
    """The stage's rule over its trials table; ``curves`` (``epoch_table``) lets round 1's gap
    compare a stopped candidate at the epoch it stopped."""
    if rule is None:
        return Decision(kept=list(dict.fromkeys(table["variant"])))
    if rule.name == "within_track_gap":
        return RULES[rule.name](table, rule.metric, rule.max_gap, monitor_mode(rule.metric), curves)
    return RULES[rule.name](table, rule.metric, rule.tiebreak, rule.veto_metric, rule.veto_max,
                            monitor_mode(rule.metric), monitor_mode(rule.tiebreak))


def check_resumed_stages(staged: StagedSpec, run_dir: Path, state: dict) -> None:
    """``--resume`` of a staged run: each stage that has started keeps the configs it recorded
    (``<stage>/ablation.yaml``); a ``--set`` or a spec edit that changes one is a ConfigError
    before anything runs (a fusion stage's configs depend on its encoders and are not compared)."""
    for stage, entry in state["stages"].items():
        candidates = entry.get("candidates")
        if stage in staged.stages and candidates and not staged.stages[stage].fuse \
                and (run_dir / stage / "ablation.yaml").is_file():
            check_resumed_run(staged.stage_spec(stage, candidates), run_dir / stage)


def run_staged(staged: StagedSpec, run_dir: Path, options, print_fn=print, until: str | None = None) -> dict:
    """Run every stage in order (skipping finished ones), or up to and including ``until``;
    return the state."""
    # lazy: Ray Tune and the statistics stack load when stages run, not when a spec is checked
    from pianoeval.ablation.compare import comparison_markdown, load_run
    from pianoeval.ablation.runner import run_trial_set

    run_dir.mkdir(parents=True, exist_ok=True)
    state = _load_state(run_dir)
    order = list(staged.stages)
    for stage in order[:order.index(until) + 1] if until else order:
        if state["stages"].get(stage, {}).get("status") == "done":
            print_fn(f"[staged] {stage}: already done, kept {', '.join(state['stages'][stage]['kept'])}")
            continue
        names = _stage_candidates(staged, stage, state)
        if not names:
            print_fn(f"[staged] {stage}: no candidates left; stopping")
            break
        stage_dir = run_dir / stage
        fused = None
        if staged.stages[stage].fuse:
            fused = fusion_encoders(staged, stage, run_dir, state, print_fn)
            if fused is None:
                break
        spec = staged.stage_spec(stage, names, fused)
        stage_options = replace(options, resume=(stage_dir / "tuner.pkl").is_file())
        print_fn(f"[staged] {stage}: {len(spec.trials)} runs of {', '.join(names)}"
                 + (" (resuming)" if stage_options.resume else ""))
        for note in tier_notes(staged, stage, names):
            print_fn(f"[staged] {stage}: {note}")
        state["stages"][stage] = {"status": "running", "candidates": names}
        _save_state(run_dir, state)
        frame = run_trial_set(spec, stage_dir, stage_options)
        frame["track"] = frame["variant"].map(lambda v: staged.candidates[v].track)
        frame.to_parquet(stage_dir / "trials.parquet", index=False)
        run = load_run(stage_dir)
        atomic_write_text(stage_dir / "comparison.md", comparison_markdown(run, spec.description))
        rule = staged.stages[stage].rule
        curves = epoch_table(frame, stage_dir, rule.metric) if rule and rule.name == "within_track_gap" else None
        decision = decide(rule, frame, curves)
        state["stages"][stage] = {"status": "done", "candidates": names, "kept": decision.kept,
                                  "dropped": decision.dropped, "winners": decision.winners,
                                  "notes": decision.notes, "rule": rule.model_dump() if rule else None}
        if fused:
            source = staged.stages[stage].fuse
            state["stages"][stage]["encoders"] = {t: state["stages"][source]["winners"][t] for t in FUSED_TRACKS}
        _save_state(run_dir, state)
        for line in decision.lines():
            print_fn(f"[staged] {stage}: {line}")
        print_fn(f"[staged] {stage} done")
        if stage == until and stage != order[-1]:
            print_fn(f"[staged] stopping after {stage} (--until); --resume runs {', '.join(order[order.index(stage) + 1:])}")
    atomic_write_text(run_dir / "elimination.md", elimination_markdown(staged, run_dir, state))
    return state


def elimination_markdown(staged: StagedSpec, run_dir: Path, state: dict) -> str:
    lines = [f"# Staged elimination `{staged.name}`: {run_dir.name}", "", staged.description, ""]
    for stage, entry in staged.stages.items():
        done = state["stages"].get(stage, {})
        rule = entry.rule
        lines += [f"## {stage}", "",
                  f"Folds {entry.folds}, budget {entry.budget.max_epochs} epochs"
                  + (f" with ASHA (grace {entry.budget.asha_grace_period})" if entry.budget.asha_grace_period else "")
                  + (f", early stopping {entry.budget.early_stopping_patience}" if entry.budget.early_stopping_patience else "")
                  + f", tiers {', '.join(entry.tiers)}; rule: "
                  + (f"{rule.name} on {rule.metric}" if rule else "none"), ""]
        if not done:
            lines += ["Not run yet.", ""]
            continue
        lines += [f"- candidates: {', '.join(done['candidates'])}", f"- kept: {', '.join(done.get('kept', []))}"]
        if done.get("encoders"):
            lines += [f"- fused encoders (frozen, trained in {entry.fuse}): "
                      + ", ".join(f"{t} `{v}`" for t, v in done["encoders"].items())]
        lines += [f"- dropped `{v}`: {why}" for v, why in done.get("dropped", {}).items()]
        lines += [f"- {note}" for note in done.get("notes", [])]
        lines += [f"- winner of track {t}: `{v}`" for t, v in done.get("winners", {}).items()]
        lines += ["", f"Tables: `{stage}/comparison.md`, `{stage}/trials.parquet`.", ""]
    return "\n".join(lines)


def main_staged(staged: StagedSpec, args) -> int:
    """``runners/ablate.py`` on a staged spec (loaded and checked: ``load_staged``)."""
    # lazy: Ray Tune loads once the spec is valid (keeps config errors under 1 s)
    from pianoeval.ablation.runner import AblationOptions

    until = args.until
    if until is not None and until not in staged.stages:
        raise ConfigError(f"{staged.source}: --until {until}: not a stage of this spec; "
                          f"use one of {', '.join(staged.stages)}")
    if args.dry_run:
        for stage in staged.stages:
            names = screened_candidates(staged) if staged.stages[stage].candidates == "all" else \
                (staged.stages[stage].candidates if isinstance(staged.stages[stage].candidates, list) else
                 [f"<survivors of {staged.stages[stage].candidates['survivors_of']}>"])
            print(f"{stage}: {', '.join(names)} x folds {staged.stages[stage].folds}, "
                  f"{staged.stages[stage].budget.max_epochs} epochs, tiers {staged.stages[stage].tiers}, "
                  f"rule {staged.stages[stage].rule.name if staged.stages[stage].rule else 'none'}")
        return 0
    base = results_folder(args.storage) / "ablations" / staged.name
    run_id = run_id_for(base, args.resume, args.run_id, "stages.json", staged.name)
    run_dir = base / run_id
    if args.resume:
        check_resumed_stages(staged, run_dir, _load_state(run_dir))
    options = AblationOptions(address=args.address, storage=args.storage, num_cpus=args.num_cpus,
                              max_concurrent=args.max_concurrent, max_failures=args.max_failures,
                              connect_timeout=args.connect_timeout, loggers=tuple(args.logger or ()),
                              tracking_dir=run_dir)
    print(f"[staged] {staged.name} -> {run_dir}")
    print(f"[staged] watch: tensorboard --logdir {run_dir}")
    try:
        state = run_staged(staged, run_dir, options, until=until)
    except RunInterrupted:
        raise RunInterrupted(run_id) from None  # the staged run's id, not its stage folder's
    winners = {t: v for s in state["stages"].values() for t, v in s.get("winners", {}).items()}
    print(f"[staged] winners: {winners or 'none yet'}; summary: {run_dir / 'elimination.md'}")
    return 0
