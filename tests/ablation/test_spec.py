"""Ablation specs: shipped files, trial sets, and bad input (one line, exit code 2, nothing started)."""

import argparse
import re
import subprocess
import sys
import textwrap

import pytest

from pianoeval.ablation import available_ablations, load_ablation
from pianoeval.ablation.staged import is_staged, load_staged, screened_candidates
from pianoeval.errors import ConfigError
from pianoeval.cli import run_cli
from pianoeval.paths import REPO_ROOT


def test_shipped_ablations_load_and_pair_folds_and_seeds():
    assert {"han_incremental", "han_zeroed", "attention_temperature", "staged_elimination"} <= set(available_ablations())
    spec = load_ablation("han_incremental")
    assert list(spec.variants) == ["bilstm_baseline", "note_sa", "note_voice", "note_beat", "note_voice_beat", "han",
                                   "flat_bilstm_7"]
    assert len(spec.trials) == 7 * 4 * 1 + 2 * 4  # + the default reference baselines, per fold
    assert list(spec.references) == ["global_mean", "music_mean"]
    assert [t.fold for t in spec.trials if t.reference and t.variant == "music_mean"] == [0, 1, 2, 3]
    assert load_ablation("han_incremental", {"reference_baselines": []}).references == {}
    assert spec.variants["bilstm_baseline"].data.feature_set == "perf_only"
    assert spec.variants["han"].train.max_epochs == 100 and spec.variants["han"].train.early_stopping_patience == 20
    zeroed = load_ablation("han_zeroed")
    source, config = zeroed.eval_only["zero_beat_eval"]
    assert source == "han_total_cat" and config.model["zero_mode"] == "eval_only"
    staged = load_staged(REPO_ROOT / "ablations" / "staged_elimination.yaml")
    assert list(staged.stages) == ["round1", "round2", "round3"] and staged.stages["round3"].fuse == "round2"
    fusion = load_ablation("fusion_variants")
    # variants of the same family keep the base's encoders; each has its own fusion
    assert {v.model["symbolic_encoder"]["pretrained"] for v in fusion.variants.values()} == {True}
    assert [v.model["fusion"] for v in fusion.variants.values()] == [
        "audio_only", "symbolic_only", "cross_attention", "concat", "gated", "score_conditioned"]


STAGED_FUSION = """
candidates:
  han: {track: symbolic, config: {model: {name: han}}}
  f2: {track: fusion, config: {model: {name: fusion_f2_concat}}}
stages:
  round1: {folds: [0], rule: {name: track_winner}}
  round2: {fuse: round1, candidates: [f2], folds: [0]}
"""


@pytest.mark.parametrize("change, message", [
    (("round2: {fuse: round1", "round2: {fuse: round3"), "stages.round2.fuse: must name an earlier stage (round1)"),
    (("round1: {folds: [0], rule: {name: track_winner}}", "round1: {folds: [0]}"),
     "stages.round2.fuse: stage round1 picks no track winners"),
    (("candidates: [f2], folds: [0]", "candidates: [f2], folds: [0, 1]"),
     "stages.round2.folds: [1] not trained in round1 (folds [0])"),
])
def test_a_bad_fusion_stage_is_a_one_line_error(tmp_path, change, message):
    path = tmp_path / "staged.yaml"
    path.write_text(textwrap.dedent(STAGED_FUSION).replace(*change))
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_staged(path)


STAGED = """
candidates:
  note_sa: {track: symbolic, config: {model: {name: note_sa}}}
  note_voice: {track: symbolic, config: {model: {name: note_voice}}}
stages:
  round1: {folds: [0], budget: {max_epochs: 2, asha_grace_period: 1}}
  round2: {candidates: {survivors_of: round1}, folds: [0, 1]}
"""


@pytest.mark.parametrize("change, message", [
    # every stage is checked at load, not when an earlier stage has spent its compute
    (("folds: [0, 1]", "folds: [0, 9]"), "stages.round2.folds: 9 is out of range (allowed: 0-3)"),
    (("folds: [0, 1]}", "folds: [0, 1], overrides: {train: {lr: -1.0}}}"),
     "candidates.note_sa (stage round2): train.lr: Input should be greater than 0"),
    (("folds: [0], budget", "folds: [4], budget"), "stages.round1.folds: 4 is out of range"),
    (("asha_grace_period: 1", "asha_grace_period: 3"),
     "stages.round1.budget: asha_grace_period 3 > max_epochs 2"),
    (("name: note_voice}", "name: note_vioce}"),
     "candidates.note_voice (stage round1): model.name: unknown model 'note_vioce'"),
    (("candidates: {survivors_of: round1}", "candidates: []"), "stages.round2.candidates: the list is empty"),
])
def test_a_bad_staged_spec_is_a_one_line_error_naming_the_file(tmp_path, change, message):
    path = tmp_path / "staged.yaml"
    path.write_text(textwrap.dedent(STAGED).replace(*change))
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        load_staged(path)
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)


@pytest.mark.parametrize("name", ["../han", "h a n", "a/b", ".hidden"])
def test_a_candidate_name_is_one_safe_file_name(tmp_path, name):
    path = tmp_path / "staged.yaml"
    path.write_text(textwrap.dedent(STAGED_FUSION).replace("  han: {track", f"  '{name}': {{track"))
    with pytest.raises(ConfigError, match=re.escape(f"candidate name {name!r}: use letters")):
        load_staged(path)


def test_set_reaches_one_candidate_of_a_staged_spec(tmp_path):
    path = tmp_path / "staged.yaml"
    path.write_text(textwrap.dedent(STAGED_FUSION))
    staged = load_staged(path, {"candidates.han.model.hidden_size": 16})
    assert staged.stage_spec("round1", ["han"]).variants["han"].model["hidden_size"] == 16
    with pytest.raises(ConfigError, match="--set candidates.nope.model.x: use candidates.<candidate>.<config key>"):
        load_staged(path, {"candidates.nope.model.x": 1})
    assert screened_candidates(staged) == ["han"]  # "all" leaves the fusion stage's candidates out


def test_set_overrides_every_variant():
    spec = load_ablation("han_incremental", {"folds": [0], "seeds": [0], "budget.max_epochs": 1, "model.hidden_size": 16})
    trained = [t for t in spec.trials if not t.reference]
    assert len(trained) == 7 and all(t.config.model["hidden_size"] == 16 for t in trained)
    assert all(t.config.train.max_epochs == 1 and t.seed == 0 for t in trained)
    references = [t for t in spec.trials if t.reference]  # the model settings are not theirs
    assert [t.config.model_name for t in references] == ["global_mean", "music_mean"]
    assert all(t.config.data.split == "performer" and t.seed == 0 for t in references)


def _args(name, **extra):
    defaults = dict(name=str(name), dry_run=True, no_estimate=True, resume=False, run_id=None, address=None,
                    storage=None, num_cpus=None, max_concurrent=None, only=None, set=None, until=None,
                    max_failures=2, connect_timeout=30.0, logger=None)
    return argparse.Namespace(**{**defaults, **extra})


GOOD = """
base: {model: {name: note_sa}, data: {split: performer}}
variants:
  note_sa: {}
  note_voice: {model: {name: note_voice}}
baseline: note_sa
folds: [0]
seeds: [0]
eval_only:
  probe: {source: note_voice, overrides: {train: {lr: 1.0e-3}}}
"""
BAD = {
    "unknown_key_in_variant": (GOOD.replace("note_voice: {model: {name: note_voice}}",
                                            "note_voice: {model: {name: note_voice, hidden: 3}}"),
                               "variants.note_voice: model.hidden: unknown key"),
    "baseline_not_a_variant": (GOOD.replace("baseline: note_sa", "baseline: han"),
                               "baseline: 'han' is not a variant (variants: note_sa, note_voice)"),
    "empty_folds": (GOOD.replace("folds: [0]", "folds: []"), "folds: the list is empty"),
    "eval_only_missing_source": (GOOD.replace("source: note_voice", "source: han_total_cat"),
                                 "eval_only.probe.source: 'han_total_cat' is not a trained variant"),
    "reference_unknown": (GOOD + "reference_baselines: [median]\n",
                          "reference_baselines[0]: model.name: unknown model 'median'"),
    "reference_trained": (GOOD + "reference_baselines: [han]\n",
                          "reference_baselines[0]: han is trained, not fitted in closed form"),
    "reference_listed_twice": (GOOD + "reference_baselines: [music_mean, music_mean]\n",
                               "reference_baselines[1]: music_mean is listed twice"),
    "reference_also_a_variant": (GOOD.replace("note_voice: {model: {name: note_voice}}",
                                              "music_mean: {model: {name: music_mean}}")
                                 .replace("source: note_voice", "source: note_sa"),
                                 "reference_baselines[1]: music_mean is also a variant of this ablation"),
    "asha_grace_past_the_last_epoch": (GOOD + "budget: {max_epochs: 2, asha_grace_period: 3}\n",
                                       "budget: asha_grace_period 3 > max_epochs 2"),
    # a variant's name is part of its runs' folder names: one safe file name
    "variant_name_climbs": (GOOD.replace("note_voice: {model", "../note_voice: {model")
                            .replace("source: note_voice", "source: note_sa"),
                            "variants: variant name '../note_voice': use letters"),
    "variant_name_nests": (GOOD.replace("note_voice: {model", "a/b: {model").replace("source: note_voice", "source: note_sa"),
                           "variant name 'a/b'"),
    "eval_only_name_with_space": (GOOD.replace("probe: {source", "zero beat: {source"),
                                  "eval_only: variant name 'zero beat'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_spec_is_a_one_line_error_exit_2_nothing_started(case, tmp_path, monkeypatch, capsys):
    from pianoeval.ablation.cli import main

    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(BAD[case][0]))
    monkeypatch.setenv("PIANOEVAL_RESULTS", str(tmp_path / "results"))
    assert run_cli(lambda: main(_args(path, dry_run=False))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: ") and BAD[case][1] in err[0], err
    assert not (tmp_path / "results").exists()


def test_until_names_a_stage_of_a_staged_spec(tmp_path, monkeypatch, capsys):
    from pianoeval.ablation.cli import main

    monkeypatch.setenv("PIANOEVAL_RESULTS", str(tmp_path / "results"))
    assert run_cli(lambda: main(_args("staged_elimination", dry_run=False, until="round9"))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--until round9: not a stage of this spec; use one of round1, round2, round3" in err[0]
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(GOOD))
    assert run_cli(lambda: main(_args(path, dry_run=False, until="round1"))) == 2
    assert "only a staged spec (one with stages:) runs in stages" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_runner_exits_2_and_dry_run_prints_the_trial_table(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(BAD["baseline_not_a_variant"][0]))
    bad = subprocess.run([sys.executable, str(REPO_ROOT / "runners" / "ablate.py"), str(path)], capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and "baseline" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    dry = subprocess.run([sys.executable, str(REPO_ROOT / "runners" / "ablate.py"), "han_incremental", "--dry-run",
                          "--no-estimate"], capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[0].split()[:4] == ["variant", "model", "fold", "seed"]
    assert sum(line.startswith("note_voice_beat ") for line in lines) == 4
    assert sum(line.startswith("music_mean (reference) ") for line in lines) == 4
    assert ("36 runs (28 trained, 0 eval-only, 8 reference fits in closed form) over 7 variants + 2 reference "
            "baselines x 4 folds x 1 seeds") in dry.stdout


def test_dry_run_estimates_the_cost_from_a_timed_step(capsys):
    from pianoeval.ablation.cli import main

    assert main(_args("attention_temperature", no_estimate=False, set=["folds=[0]", "model.hidden_size=16"])) == 0
    out = capsys.readouterr().out
    assert "estimated cost:" in out and "CPU-hours" in out


def test_an_ablation_on_a_label_set_and_a_folds_file_counts_the_files_folds(percepiano, tmp_path):
    import json

    from pianoeval.data.folds import builtin_fold_file

    folds = builtin_fold_file(percepiano.segments, "piece")
    folds["folds"] = folds["folds"][:3]
    split = tmp_path / "three_folds.json"
    split.write_text(json.dumps(folds))
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(f"""\
        base:
          model: {{name: han}}
          data: {{labels: percepiano_categories, split: {split}}}
        baseline: han
        variants: {{han: {{}}, note_sa: {{model: {{name: note_sa}}}}}}
        folds: [0, 1, 2]
        """))
    spec = load_ablation(path)
    assert len([t for t in spec.trials if not t.reference]) == 2 * 3  # + the reference fits, per fold
    assert {t.config.data.labels for t in spec.trials} == {"percepiano_categories"}
    assert sorted({t.config.data.fold for t in spec.trials}) == [0, 1, 2]
    with pytest.raises(ConfigError, match=rf"folds: 3 is out of range \(allowed: 0-2, the folds of {split}\)"):
        load_ablation(path, {"folds": [0, 3]})
