"""Bad and careless input across every runner: exit code 2, one line on stderr that names the
file, key or value, and a results folder left byte-identical (nothing lost, nothing written).

Each case runs the real runner script (in this process, for speed) with its real argument
parser, against a results folder that already holds a sweep run and an ablation run. Cases
are grouped by class: numbers, run ids, existing and missing runs, paths that are files,
encodings and YAML structure, values checked at load, and data locations.
"""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from pianoeval.paths import REPO_ROOT

SWEEP_RUN = "existing-sweep"
ABLATION_RUN = "existing-ablation"
STAGED_RUN = "existing-staged"
BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x]"]
                 + [f"{chr(97 + i)}: &{chr(97 + i)} [{', '.join([f'*{chr(96 + i)}'] * 9)}]" for i in range(1, 9)])


def _files(root: Path) -> dict[str, str]:
    """A checksum of every file under ``root``, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """A results folder holding one sweep run and one ablation run, as the engine leaves them
    when they start (their spec records, written by the engine's own writers)."""
    from pianoeval.ablation.spec import load_ablation, trial_record
    from pianoeval.ablation.staged import load_staged, screened_candidates
    from pianoeval.config import dump_yaml
    from pianoeval.sweep import load_space
    from pianoeval.sweep.record import write_sweep_file

    root = tmp_path_factory.mktemp("results")
    run = root / "sweeps" / "smoke" / SWEEP_RUN
    run.mkdir(parents=True)
    write_sweep_file(load_space("smoke"), str(run), [("", 6)])
    (run / "trial_0001").mkdir()
    (run / "trial_0001" / "result.json").write_text('{"val/r2": 0.1, "done": true}\n')
    ablation = root / "ablations" / "han_incremental" / ABLATION_RUN
    ablation.mkdir(parents=True)
    spec = load_ablation("han_incremental")
    dump_yaml({"ablation": "han_incremental", "source": "ablations/han_incremental.yaml",
               "trials": {t.key: trial_record(t) for t in spec.trials}}, ablation / "ablation.yaml")
    staged = load_staged(REPO_ROOT / "ablations" / "staged_elimination.yaml")  # its first stage started
    first = next(iter(staged.stages))
    names = screened_candidates(staged)[:2]
    stage_dir = root / "ablations" / "staged_elimination" / STAGED_RUN / first
    stage_dir.mkdir(parents=True)
    (stage_dir.parent / "stages.json").write_text(json.dumps({"stages": {first: {"status": "running",
                                                                                  "candidates": names}}}))
    dump_yaml({"trials": {t.key: trial_record(t) for t in staged.stage_spec(first, names).trials}},
              stage_dir / "ablation.yaml")
    # training runs: one finished (completed, diverged), one whose checkpoints were cut short by a kill
    for name, status in (("completed", "completed"), ("diverged", "diverged"), ("cut_short", None)):
        run_dir = root / "runs" / name
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "resolved.yaml").write_text("model: {name: note_voice, hidden_size: 16}\n")
        for checkpoint in ("best.ckpt", "last.ckpt"):
            (run_dir / "checkpoints" / checkpoint).write_bytes(b"PK\x03\x04 cut short")
        if status:
            (run_dir / "metrics.json").write_text(json.dumps({"status": status, "best_epoch": 1}))
    return root


@pytest.fixture(scope="module")
def specs(tmp_path_factory) -> Path:
    """Bad spec and config files, one per problem."""
    folder = tmp_path_factory.mktemp("specs")
    space = "extends: smoke\n"
    ablation = ("base: {model: {name: note_voice, hidden_size: 16}}\nvariants: {a: {}, b: {train: {lr: 1.0e-3}}}\n"
                "baseline: a\nfolds: [0]\nseeds: [7]\n")
    files = {
        "empty.yaml": "",
        "comments.yaml": "# a spec still to be written\n",
        "space_dropout_high.yaml": space + "parameters:\n  model.dropout: {distribution: uniform, low: 0.0, high: 1.5}\n",
        "space_later_category.yaml": space + "parameters:\n  model.hidden_size: {distribution: categorical, "
                                             "values: [16, 32, -4]}\n",
        "space_duplicate_key.yaml": space + "parameters:\n  train.lr: {distribution: loguniform, low: 1.0e-4, "
                                            "high: 1.0e-3}\n  train.lr: {distribution: uniform, low: 0.1, high: 0.2}\n",
        "space_bomb.yaml": BOMB + "\n" + space,
        "space_missing_parent.yaml": "extends: no_such_space\n",
        "space_extends_climbs.yaml": "extends: ../search_spaces/smoke\n",
        "space_boolean_seed.yaml": space + "sampler: {name: tpe, seed: true}\n",
        "space_fixed_field_missing.yaml": "model: {name: note_voice, hidden_size: 16, attention_temperature: 0.5}\n"
                                          "parameters:\n  model.name: {distribution: categorical, "
                                          "values: [note_voice, s3_continuous]}\n",
        "ablation_repeated_folds.yaml": ablation.replace("folds: [0]", "folds: [0, 1, 0]"),
        "ablation_repeated_seeds.yaml": ablation.replace("seeds: [7]", "seeds: [7, 7]"),
        "ablation_boolean_seed.yaml": ablation.replace("seeds: [7]", "seeds: [true]"),
        "ablation_duplicate_variant.yaml": ablation.replace("variants: {a: {}, b:", "variants: {a: {}, a:"),
        "ablation_asha_metric.yaml": ablation + "budget: {max_epochs: 2, asha_grace_period: 1, "
                                                "asha_metric: val/accuracy}\n",
        "ablation_bomb.yaml": BOMB + "\n" + ablation.replace("base: {", "base: {junk: *i, "),
        "ablation_missing_base_file.yaml": ablation.replace("base: {model: {name: note_voice, hidden_size: 16}}",
                                                            "base: {file: nowhere/best.yaml}"),
        "ablation_from_sweep_path.yaml": ablation.replace("base: {model: {name: note_voice, hidden_size: 16}}",
                                                          "base: {from_sweep: ../../etc}"),
        "staged_stage_path.yaml": "candidates: {han: {track: symbolic, config: {model: {name: han}}}}\n"
                                  "stages: {../escape: {candidates: all}}\n",
        "config_boolean_seed.yaml": "model: {name: note_voice}\nseed: true\n",
        "ablation_required_key_misspelt.yaml": ablation.replace("variants:", "variant:"),
        "ablation_extends.yaml": "extends: han_incremental\nfolds: [0]\n",  # extends is a search-space key
        "space_required_key_misspelt.yaml": "modle: {name: han}\n",
        "a_file": "not a folder\n",
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    (folder / "space_latin1.yaml").write_bytes(b"description: caf\xe9 sweep\nextends: smoke\n")
    (folder / "ablation_latin1.yaml").write_bytes(b"description: \xff\xfe\n" + ablation.encode())
    (folder / "config_latin1.yaml").write_bytes(b"model: {name: note_voice}\n# \xe9\n")
    (folder / "folds_latin1.json").write_bytes(b'[{"train": ["caf\xe9"], "val": []}]')
    # a key twice in one JSON object: json.loads would keep the last value without a word
    (folder / "labels_duplicate_key.json").write_text('{"k1": {"x": 0.1}, "k2": {"x": 0.2}, "k1": {"x": 0.3}}')
    (folder / "folds_duplicate_key.json").write_text('{"folds": [{"train": [], "val": [], "val": []}]}')
    (folder / "truncated").mkdir()
    (folder / "folds_folder.json").mkdir()  # a folder where a folds file is expected
    (folder / "frames_empty.pt").write_bytes(b"")  # a frames file cut short (a failed copy)
    (folder / "truncated" / "sweep.yaml").write_text("space: smoke\n")
    (folder / "truncated" / "trials.parquet").write_bytes(b"PAR1\x00\x01 truncated")
    import pandas as pd

    for kind in ("sweep", "ablation"):  # a trials.parquet emptied (or replaced by another table)
        (folder / f"{kind}_empty_table").mkdir()
        (folder / f"{kind}_empty_table" / f"{kind}.yaml").write_text("space: smoke\n" if kind == "sweep" else
                                                                     "baseline: a\nmetrics: [test/r2]\n")
    pd.DataFrame().to_parquet(folder / "sweep_empty_table" / "trials.parquet")
    pd.DataFrame({"variant": pd.Series([], dtype=str), "status": pd.Series([], dtype=str),
                  "trial_dir": pd.Series([], dtype=str)}).to_parquet(folder / "ablation_empty_table" / "trials.parquet")
    (folder / "run_with_files").mkdir()
    (folder / "run_with_files" / "resolved.yaml").write_text("model: {name: note_voice}\n")
    (folder / "sweep_latin1").mkdir()  # a sweep run folder whose best.yaml is not UTF-8
    (folder / "sweep_latin1" / "best.yaml").write_bytes(b"provenance: {trial_id: caf\xe9}\n")
    (folder / "sweep_latin1" / "trials.parquet").write_bytes(b"PAR1\x00\x01 truncated")
    (folder / "sweep_truncated").mkdir()  # its trials.parquet cut short
    (folder / "sweep_truncated" / "best.yaml").write_text("provenance: {trial_id: a, folds: [0, 1], sweep: s}\n"
                                                          "data: {split: performer}\n")
    (folder / "sweep_truncated" / "trials.parquet").write_bytes(b"PAR1\x00\x01 truncated")
    return folder


# (runner, arguments, text the one line must contain); {specs} is the folder of bad files,
# {file} a plain file, {results} the results folder with its two runs.
CASES = {
    # numbers, checked at parse time
    "sweep_num_samples_negative": ("sweep.py", ["--space", "smoke", "--num-samples", "-1"], "--num-samples"),
    "sweep_num_samples_zero": ("sweep.py", ["--space", "smoke", "--num-samples", "0"], "--num-samples"),
    "sweep_max_concurrent_zero": ("sweep.py", ["--space", "smoke", "--max-concurrent", "0"], "--max-concurrent"),
    "sweep_max_concurrent_negative": ("sweep.py", ["--space", "smoke", "--max-concurrent", "-1"], "--max-concurrent"),
    "sweep_num_cpus_zero": ("sweep.py", ["--space", "smoke", "--num-cpus", "0"], "--num-cpus"),
    "sweep_max_failures_negative": ("sweep.py", ["--space", "smoke", "--max-failures", "-1"], "--max-failures"),
    "sweep_connect_timeout_zero": ("sweep.py", ["--space", "smoke", "--connect-timeout", "0"], "--connect-timeout"),
    "sweep_num_samples_word": ("sweep.py", ["--space", "smoke", "--num-samples", "many"], "'many'"),
    "ablate_max_concurrent_zero": ("ablate.py", ["han_incremental", "--max-concurrent", "0"], "--max-concurrent"),
    "ablate_num_cpus_zero": ("ablate.py", ["han_incremental", "--num-cpus", "0"], "--num-cpus"),
    "ablate_max_failures_negative": ("ablate.py", ["han_incremental", "--max-failures", "-1"], "--max-failures"),
    "report_top_k_negative": ("report.py", ["{results}", "--top-k", "-3"], "--top-k"),
    "train_fold_negative": ("train.py", ["--model", "note_voice", "--fold", "-1"], "--fold"),
    "train_threads_zero": ("train.py", ["--model", "note_voice", "--threads", "0"], "--threads"),
    "train_threads_more_than_cpus": ("train.py", ["--model", "note_voice", "--threads", "100000"],
                                     "100000 is more than this machine's"),
    "probe_threads_more_than_cpus": ("degradation_probe.py", ["--threads", "4096"], "--threads: 4096 is more than"),
    "pretrain_symbolic_threads_more_than_cpus": ("pretrain_symbolic.py", ["--encoder", "s1", "--threads", "512"],
                                                 "--threads: 512 is more than"),
    "prepare_workers_more_than_cpus": ("prepare_data.py", ["--workers", "100000"], "--workers: 100000 is more than"),
    "pretrain_audio_workers_more_than_cpus": ("pretrain_audio.py", ["--workers", "100000"], "100000 is more than"),
    "train_seed_negative": ("train.py", ["--model", "note_voice", "--seed", "-3"], "--seed"),
    "prepare_workers_zero": ("prepare_data.py", ["--workers", "0"], "--workers"),
    "pretrain_symbolic_steps_zero": ("pretrain_symbolic.py", ["--encoder", "s1", "--steps", "0"], "--steps"),
    "pretrain_audio_steps_negative": ("pretrain_audio.py", ["--steps", "-5"], "--steps"),
    "pretrain_audio_objective_unknown": ("pretrain_audio.py", ["--objective", "aligned:1,magic:2"], "'magic'"),
    "pretrain_audio_objective_weight": ("pretrain_audio.py", ["--objective", "aligned:-1"], "'-1'"),
    "pretrain_audio_name_climbs": ("pretrain_audio.py", ["--name", "../x"], "'../x'"),
    "pretrain_audio_objective_twice": ("pretrain_audio.py", ["--objective", "aligned,aligned:2"], "named twice"),
    "pretrain_audio_fold_out_of_range": ("pretrain_audio.py", ["--percepiano-fold", "9"], "--percepiano-fold"),
    "reference_tables_no_folder": ("reference_tables.py", ["--runs", "{specs}/no_such_folder"], "no_such_folder"),
    "reference_tables_no_runs": ("reference_tables.py", ["--runs", "{specs}"], "holds no runs"),
    "reference_tables_sweep_no_folder": ("reference_tables.py", ["--sweep", "{specs}/no_such_folder"], "not a folder"),
    "reference_tables_sweep_a_file": ("reference_tables.py", ["--sweep", "{specs}/a_file"], "not a folder"),
    "reference_tables_sweep_no_run": ("reference_tables.py", ["--sweep", "{specs}"], "missing: best.yaml"),
    "reference_tables_sweep_latin1": ("reference_tables.py", ["--sweep", "{specs}/sweep_latin1"], "not UTF-8"),
    "reference_tables_sweep_truncated": ("reference_tables.py", ["--sweep", "{specs}/sweep_truncated"],
                                         "trials.parquet"),
    "probe_epochs_zero": ("degradation_probe.py", ["--epochs", "0"], "--epochs"),
    # run ids are one safe name
    "sweep_run_id_climbs": ("sweep.py", ["--space", "smoke", "--run-id", "../../x"], "'../../x'"),
    "sweep_run_id_nested": ("sweep.py", ["--space", "smoke", "--run-id", "team/run1"], "'team/run1'"),
    "sweep_run_id_hidden": ("sweep.py", ["--space", "smoke", "--run-id", ".hidden"], "'.hidden'"),
    "ablate_run_id_climbs": ("ablate.py", ["han_incremental", "--run-id", "../x"], "'../x'"),
    # existing runs are never overwritten; resuming names a run that exists
    "sweep_run_exists": ("sweep.py", ["--space", "smoke", "--run-id", SWEEP_RUN], "add --resume"),
    "sweep_resume_typo": ("sweep.py", ["--space", "smoke", "--resume", "--run-id", "existing-swep"], SWEEP_RUN),
    # a resumed or extended sweep keeps the space its trials were judged by
    "sweep_resume_changed_config": ("sweep.py", ["--space", "smoke", "--resume", "--run-id", SWEEP_RUN, "--set",
                                                 "model.hidden_size=8"], "--resume: model.hidden_size is 8 now but 16"),
    "sweep_extend_changed_budget": ("sweep.py", ["--space", "smoke", "--resume", "--run-id", SWEEP_RUN, "--num-samples",
                                                 "12", "--set", "budget.max_epochs=2"],
                                    "--resume: budget.max_epochs is 2 now but 3"),
    "ablate_run_exists": ("ablate.py", ["han_incremental", "--run-id", ABLATION_RUN], "add --resume"),
    "ablate_empty_spec": ("ablate.py", ["{specs}/empty.yaml", "--dry-run"], "empty.yaml: the file is empty"),
    "sweep_comments_only_space": ("sweep.py", ["--space", "{specs}/comments.yaml", "--dry-run"],
                                  "comments.yaml: the file is empty"),
    "sweep_resume_typo_dry_run": ("sweep.py", ["--space", "smoke", "--resume", "--run-id", "typo", "--dry-run"],
                                  "no run 'typo'"),
    "ablate_resume_typo": ("ablate.py", ["han_incremental", "--resume", "--run-id", "typo"], ABLATION_RUN),
    # a resumed run continues the runs it recorded, not a changed spec over them
    "ablate_resume_changed_config": ("ablate.py", ["han_incremental", "--resume", "--run-id", ABLATION_RUN, "--set",
                                                   "model.hidden_size=8"],
                                     "--resume: bilstm_baseline/fold0/seed7: model.hidden_size is 8 now but"),
    "ablate_resume_more_seeds": ("ablate.py", ["han_incremental", "--resume", "--run-id", ABLATION_RUN, "--set",
                                               "seeds=[7,8]"], "--resume: bilstm_baseline/fold0/seed8 is not a run of"),
    "staged_resume_changed_config": ("ablate.py", ["staged_elimination", "--resume", "--run-id", STAGED_RUN, "--set",
                                                   "train.lr=0.001"], "train.lr is 0.001 now but"),
    "ablate_resume_changed_budget": ("ablate.py", ["han_incremental", "--resume", "--run-id", ABLATION_RUN, "--set",
                                                   "budget.max_epochs=3"], "train.max_epochs is 3 now but 100"),
    # a finished training run is never rewritten; a checkpoint cut short is named, not a traceback
    "train_resume_completed": ("train.py", ["--out", "{results}/runs/completed", "--resume"],
                               "the run finished (completed in metrics.json); --resume is for a run"),
    "train_resume_diverged": ("train.py", ["--config", "{results}/runs/diverged/resolved.yaml", "--out",
                                           "{results}/runs/diverged", "--resume"], "the run finished (diverged"),
    "train_evaluate_stopped_completed": ("train.py", ["--out", "{results}/runs/completed", "--evaluate-stopped"],
                                         "the run finished (completed in metrics.json); --evaluate-stopped"),
    "train_resume_nothing_there": ("train.py", ["--out", "{results}/runs/no_such_run", "--resume"],
                                   "no run there to resume"),
    "train_resume_checkpoint_cut_short": ("train.py", ["--out", "{results}/runs/cut_short", "--resume"],
                                          "last.ckpt: not a readable checkpoint, truncated or corrupted"),
    "train_evaluate_stopped_checkpoint_cut_short": ("train.py", ["--out", "{results}/runs/cut_short",
                                                                 "--evaluate-stopped"],
                                                    "best.ckpt: not a readable checkpoint, truncated or corrupted"),
    "train_out_holds_a_run": ("train.py", ["--model", "note_voice", "--out", "{specs}/run_with_files"],
                              "add --resume"),
    # paths that are files, not folders
    "sweep_storage_is_a_file": ("sweep.py", ["--space", "smoke", "--storage", "{specs}/a_file"], "a_file"),
    "ablate_storage_is_a_file": ("ablate.py", ["han_incremental", "--storage", "{specs}/a_file"], "a_file"),
    "train_out_is_a_file": ("train.py", ["--model", "note_voice", "--out", "{specs}/a_file"], "a_file"),
    "report_out_is_a_file": ("report.py", ["{results}/sweeps/smoke/" + SWEEP_RUN, "--out", "{specs}/a_file"],
                             "a_file"),
    # a file a runner writes: not a folder, not another kind of file (a run's metrics.json), not other folds
    "check_split_write_out_is_a_folder": ("check_split.py", ["--write", "piece", "--out", "{specs}"], "is a folder"),
    "check_split_write_over_other_folds": ("check_split.py", ["--write", "piece", "--out",
                                                              "{specs}/folds_duplicate_key.json"],
                                           "exists and holds other folds; nothing was overwritten"),
    "check_split_out_without_write": ("check_split.py", ["{specs}/folds_latin1.json", "--out", "{specs}/x.json"],
                                      "only --write writes a file"),
    "reference_tables_out_is_a_folder": ("reference_tables.py", ["--runs", "{results}/runs", "--out", "{specs}"],
                                         "is a folder; give the .md file"),
    "reference_tables_out_over_a_run": ("reference_tables.py", ["--runs", "{results}/runs", "--out",
                                                                "{results}/runs/completed/metrics.json"],
                                        "give a name ending in .md"),
    "probe_out_is_a_folder": ("degradation_probe.py", ["--out", "{specs}"], "is a folder; give the .json file"),
    # encodings, YAML structure, alias bombs
    "sweep_space_latin1": ("sweep.py", ["--space", "{specs}/space_latin1.yaml"], "not UTF-8"),
    "ablate_spec_latin1": ("ablate.py", ["{specs}/ablation_latin1.yaml"], "not UTF-8"),
    "train_config_latin1": ("train.py", ["--config", "{specs}/config_latin1.yaml"], "not UTF-8"),
    "sweep_duplicate_key": ("sweep.py", ["--space", "{specs}/space_duplicate_key.yaml"], "'train.lr' appears twice"),
    "ablate_duplicate_variant": ("ablate.py", ["{specs}/ablation_duplicate_variant.yaml"], "'a' appears twice"),
    "sweep_alias_bomb": ("sweep.py", ["--space", "{specs}/space_bomb.yaml"], "aliases expand"),
    "ablate_alias_bomb": ("ablate.py", ["{specs}/ablation_bomb.yaml"], "aliases expand"),
    "report_sweep_empty_table": ("report.py", ["{specs}/sweep_empty_table"], "trials.parquet: lacks the column"),
    "report_ablation_empty_table": ("report.py", ["{specs}/ablation_empty_table"], "trials.parquet: holds no rows"),
    "report_truncated_table": ("report.py", ["{specs}/truncated"], "trials.parquet"),
    # values checked at load, before any compute
    "sweep_range_high_end": ("sweep.py", ["--space", "{specs}/space_dropout_high.yaml", "--dry-run"],
                             "model.dropout"),
    "sweep_later_category": ("sweep.py", ["--space", "{specs}/space_later_category.yaml", "--dry-run"], "-4"),
    "sweep_missing_parent": ("sweep.py", ["--space", "{specs}/space_missing_parent.yaml"],
                             "extends: no_such_space: no such search space"),
    # a spec name is one name of its folder; a path to a file ends in .yaml
    "sweep_space_name_climbs": ("sweep.py", ["--space", "../search_spaces/smoke", "--dry-run"],
                                "--space ../search_spaces/smoke: not a search space name"),
    "sweep_extends_name_climbs": ("sweep.py", ["--space", "{specs}/space_extends_climbs.yaml", "--dry-run"],
                                  "extends: ../search_spaces/smoke: not a search space name"),
    "ablate_name_climbs": ("ablate.py", ["../ablations/han_zeroed", "--dry-run"],
                           "../ablations/han_zeroed: not an ablation name"),
    "ablate_name_with_space": ("ablate.py", ["han zeroed", "--dry-run"], "han zeroed: not an ablation name"),
    "sweep_boolean_seed": ("sweep.py", ["--space", "{specs}/space_boolean_seed.yaml"], "sampler.seed"),
    "sweep_fixed_field_missing": ("sweep.py", ["--space", "{specs}/space_fixed_field_missing.yaml", "--dry-run"],
                                  "s3_continuous"),
    "sweep_grace_above_epochs": ("sweep.py", ["--space", "smoke", "--set", "budget.grace_period=5", "--dry-run"],
                                 "grace_period"),
    "sweep_unknown_objective": ("sweep.py", ["--space", "smoke", "--set", "objective.metric=val/nope"],
                                "val/nope"),
    "sweep_bad_objective_mode": ("sweep.py", ["--space", "smoke", "--set", "objective.mode=up"], "objective.mode"),
    "sweep_reference_trained": ("sweep.py", ["--space", "smoke", "--set", "reference_baselines=[han]", "--dry-run"],
                                "--set: reference_baselines[0]: han is trained"),
    "sweep_reference_not_names": ("sweep.py", ["--space", "smoke", "--set", "reference_baselines=[1]"],
                                  "reference_baselines: expected a list of model names"),
    "ablate_repeated_folds": ("ablate.py", ["{specs}/ablation_repeated_folds.yaml", "--dry-run"], "folds"),
    "ablate_repeated_seeds": ("ablate.py", ["{specs}/ablation_repeated_seeds.yaml", "--dry-run"], "seeds"),
    "ablate_boolean_seed": ("ablate.py", ["{specs}/ablation_boolean_seed.yaml", "--dry-run"], "seeds"),
    "ablate_asha_metric": ("ablate.py", ["{specs}/ablation_asha_metric.yaml", "--dry-run"], "val/accuracy"),
    "ablate_missing_base_file": ("ablate.py", ["{specs}/ablation_missing_base_file.yaml"], "nowhere/best.yaml"),
    "ablate_from_sweep_path": ("ablate.py", ["{specs}/ablation_from_sweep_path.yaml"], "../../etc"),
    "ablate_until_not_staged": ("ablate.py", ["han_incremental", "--until", "round1"], "--until"),
    "ablate_only_unknown": ("ablate.py", ["han_incremental", "--only", "hann", "--dry-run"], "hann"),
    "staged_stage_name_path": ("ablate.py", ["{specs}/staged_stage_path.yaml", "--dry-run"], "../escape"),
    # a misspelt required key is named as the unknown key, not as the missing one
    "ablate_required_key_misspelt": ("ablate.py", ["{specs}/ablation_required_key_misspelt.yaml", "--dry-run"],
                                     "variant: unknown key (allowed: description, base, variants,"),
    "ablate_extends": ("ablate.py", ["{specs}/ablation_extends.yaml", "--dry-run"], "extends: unknown key"),
    "sweep_required_key_misspelt": ("sweep.py", ["--space", "{specs}/space_required_key_misspelt.yaml", "--dry-run"],
                                    "modle: unknown key (allowed: description, extends, model,"),
    "train_boolean_seed": ("train.py", ["--config", "{specs}/config_boolean_seed.yaml"], "seed"),
    "train_set_fold_out_of_range": ("train.py", ["--model", "note_voice", "--set", "data.fold=9"], "data.fold"),
    "export_limit_negative": ("export_frames.py", ["--model", "han", "--limit", "-3", "--out", "{specs}/f.pt"], "--limit"),
    "check_split_latin1": ("check_split.py", ["{specs}/folds_latin1.json"], "not UTF-8"),
    "check_split_bad_write": ("check_split.py", ["--write", "nope", "--out", "{specs}/x.json"], "--write"),
    "train_labels_duplicate_key": ("train.py", ["--model", "note_voice", "--set",
                                                "data.labels={specs}/labels_duplicate_key.json", "--dry-run"],
                                   "key 'k1' appears twice"),
    "train_split_duplicate_key": ("train.py", ["--model", "note_voice", "--split", "{specs}/folds_duplicate_key.json",
                                               "--dry-run"], "key 'val' appears twice"),
    "train_split_a_folder": ("train.py", ["--model", "note_voice", "--split", "{specs}/folds_folder.json", "--dry-run"],
                             "is a folder, not a folds file"),
    # a frames input no run can read stops a sweep or an ablation before it starts, not every trial in it
    "ablate_frames_unreadable": ("ablate.py", ["frames_probe_vs_transformer", "--set",
                                               "data.frames={specs}/frames_empty.pt"],
                                 "frames_empty.pt: not a readable .pt frames file (EOFError)"),
    "sweep_frames_unreadable": ("sweep.py", ["--space", "frames", "--set", "data.frames={specs}/frames_empty.pt"],
                                "frames_empty.pt: not a readable .pt frames file (EOFError)"),
    "train_split_latin1": ("train.py", ["--model", "note_voice", "--split", "{specs}/folds_latin1.json", "--dry-run"],
                           "not UTF-8"),
    "report_missing_run": ("report.py", ["{results}/sweeps/smoke/nothing-here"], "nothing-here"),
    "report_run_is_a_file": ("report.py", ["{specs}/ablation_extends.yaml"], "a file, not a run folder"),
}


def _run(script: str, args: list[str], capsys, monkeypatch) -> tuple[int, str]:
    """Run ``runners/<script>`` as ``python runners/<script> args``; (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", [f"runners/{script}", *args])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(REPO_ROOT / "runners" / script), run_name="__main__")
    return stop.value.code, capsys.readouterr().err


def _one_line_exit_2(code, err: str, expected: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"exit {code}: {err}"
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{err}"
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_nothing_changes(case, results, specs, capsys, monkeypatch):
    script, args, expected = CASES[case]
    args = [a.format(specs=specs, results=results) for a in args]
    monkeypatch.setenv("PIANOEVAL_RESULTS", str(results))
    before = _files(results)
    code, err = _run(script, args, capsys, monkeypatch)
    _one_line_exit_2(code, err, expected.format(specs=specs, results=results))
    assert _files(results) == before, "the results folder changed"


def test_there_are_at_least_40_cases_over_every_runner():
    assert len(CASES) >= 40
    runners = {p.name for p in (REPO_ROOT / "runners").glob("*.py")} - {"demo.py"}
    assert runners <= {script for script, _, _ in CASES.values()}


@pytest.mark.parametrize("variable,value,runner,args", [
    ("PIANOEVAL_RESULTS", "{specs}/a_file", "sweep.py", ["--space", "smoke"]),
    ("PIANOEVAL_PERCEPIANO", "{specs}/no_such_folder", "prepare_data.py", []),
    ("PIANOEVAL_ASAP", "{specs}/no_such_folder", "pretrain_symbolic.py", ["--encoder", "s1", "--steps", "1"]),
])
def test_environment_pointing_nowhere_is_one_line_exit_2(variable, value, runner, args, specs, results, capsys,
                                                         monkeypatch):
    monkeypatch.setenv(variable, value.format(specs=specs))
    if variable != "PIANOEVAL_RESULTS":
        monkeypatch.setenv("PIANOEVAL_RESULTS", str(results))
    before = _files(results)
    code, err = _run(runner, args, capsys, monkeypatch)
    _one_line_exit_2(code, err, variable if variable != "PIANOEVAL_PERCEPIANO" else "no_such_folder")
    assert _files(results) == before


def test_an_unreachable_cluster_fails_within_the_timeout(results):
    """A cluster address nobody answers: one line within --connect-timeout, not a hang."""
    import socket

    with socket.socket() as probe:  # a port on this machine that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PIANOEVAL_RESULTS": str(results)}
    before = _files(results)
    done = subprocess.run([sys.executable, str(REPO_ROOT / "runners" / "sweep.py"), "--space", "smoke",
                           "--address", f"127.0.0.1:{port}", "--connect-timeout", "3"],
                          capture_output=True, text=True, env=env, timeout=120)
    _one_line_exit_2(done.returncode, done.stderr, f"--address 127.0.0.1:{port}")
    assert _files(results) == before


def test_yaml_loader_refuses_recursive_aliases_and_keeps_merge_keys(tmp_path):
    from pianoeval.config import load_yaml
    from pianoeval.errors import ConfigError

    (tmp_path / "recursive.yaml").write_text("a: &a [1, *a]\n")
    with pytest.raises(ConfigError, match="refers to its own anchor"):
        load_yaml(tmp_path / "recursive.yaml")
    (tmp_path / "merge.yaml").write_text("x: &x {p: 1, q: 2}\ny: {<<: *x, p: 3}\n")
    assert load_yaml(tmp_path / "merge.yaml")["y"] == {"p": 3, "q": 2}  # an override is not a duplicate


def test_resume_command_keeps_the_arguments_and_names_the_run():
    from pianoeval.cli import resume_command

    argv = ["runners/sweep.py", "--space", "my dir/space.yaml", "--run-id", "old", "--set", "budget.max_epochs=2"]
    assert resume_command(argv, "r1") == ("python runners/sweep.py --space 'my dir/space.yaml' --set "
                                          "budget.max_epochs=2 --resume --run-id r1")
