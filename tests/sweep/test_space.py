"""Search-space files: loading, typed distributions, conditionals, extends, bad input."""

import subprocess
import sys
import textwrap

import optuna
import pytest

from pianoeval.errors import ConfigError
from pianoeval.paths import REPO_ROOT
from pianoeval.sweep.space import Categorical, DefineByRun, FloatRange, IntRange, available_spaces, load_space

GOOD = """
model: {name: han, hidden_size: 16}
data: {split: performer, fold: 0}
parameters:
  train.lr: {distribution: loguniform, low: 1.0e-5, high: 1.0e-2}
  model.dropout: {distribution: uniform, low: 0.0, high: 0.4}
  model.note_layers: {distribution: int, low: 1, high: 3}
  data.batch_sampler: {distribution: categorical, values: [random, grouped]}
  train.lambda_rank: {distribution: loguniform, low: 0.01, high: 1.0, when: {data.batch_sampler: grouped}}
objective: {metric: val/pairwise_acc, record: [val/r2]}
budget: {max_epochs: 4, grace_period: 1, reduction_factor: 2, num_samples: 3}
"""


def write(tmp_path, text, name="space.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_every_shipped_space_loads_and_builds_its_model(exported_frames):
    from pianoeval.models.registry import get_model

    assert {"smoke", "han", "a1_lora", "a2_staged", "a3_unfreeze", "s1_remi", "s2_gnn", "s2h_hetero",
            "s3_continuous", "fusion", "frames"} <= set(available_spaces())
    for name in available_spaces():
        try:
            space = load_space(name)
        except ConfigError as error:  # a model on frames: the space names no frames file of its own
            assert "data.frames: required by model" in str(error), error
            space = load_space(name, {"data.frames": exported_frames})
        entry = get_model(space.base.model_name)
        assert entry.make_config(space.base.model) is not None
        assert space.base.train.max_epochs == space.budget.max_epochs
        # every sampled point is a valid run config (what a trial resolves)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(8):
            trial = study.ask()
            DefineByRun(space.parameters)(trial)
            config = space.base.with_overrides(trial.params, "<sampled config>")
            entry.make_config(config.model)
            study.tell(trial, 0.0)


def test_a1_lora_contrastive_weight_exists_only_with_the_cross_performer_tier():
    space = load_space("a1_lora")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(16):
        trial = study.ask()
        DefineByRun(space.parameters)(trial)
        config = space.base.with_overrides(trial.params, "<sampled config>")
        assert ("train.lambda_contrastive" in trial.params) == ("T3" in config.data.tiers)
        assert "T4" in config.data.tiers and config.train.lambda_invariance > 0
        study.tell(trial, 0.0)


def test_entries_become_typed_distributions(tmp_path):
    space = load_space(write(tmp_path, GOOD))
    kinds = {p.key: p.distribution for p in space.parameters}
    assert kinds["train.lr"] == FloatRange(1e-5, 1e-2, log=True)
    assert kinds["model.dropout"] == FloatRange(0.0, 0.4, log=False)
    assert kinds["model.note_layers"] == IntRange(1, 3, 1, False)
    assert kinds["data.batch_sampler"] == Categorical(("random", "grouped"))
    assert space.mode == "max" and space.record == ("val/r2",)
    keys = [p.key for p in space.parameters]
    assert keys.index("data.batch_sampler") < keys.index("train.lambda_rank")


def test_conditional_parameter_exists_only_when_its_parent_takes_the_value(tmp_path):
    space = load_space(write(tmp_path, GOOD))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {"random": 0, "grouped": 0}
    for _ in range(20):
        trial = study.ask()
        DefineByRun(space.parameters)(trial)
        sampler = trial.params["data.batch_sampler"]
        seen[sampler] += 1
        assert ("train.lambda_rank" in trial.params) == (sampler == "grouped")
        study.tell(trial, 0.0)
    assert seen["random"] and seen["grouped"]


def test_extends_merges_and_overrides(tmp_path):
    write(tmp_path, GOOD, "parent.yaml")
    child = write(tmp_path, f"""
        extends: {tmp_path / 'parent.yaml'}
        model: {{name: han, hidden_size: 32}}
        parameters:
          model.dropout: null
          model.attention_temperature: {{distribution: categorical, values: [0.5, 1.0]}}
    """, "child.yaml")
    # extends names a space; a path works for files outside search_spaces/
    space = load_space(child)
    keys = {p.key for p in space.parameters}
    assert "model.dropout" not in keys and {"train.lr", "model.attention_temperature"} <= keys
    assert space.base.model["hidden_size"] == 32 and space.budget.max_epochs == 4


def test_a_child_that_changes_the_metric_gets_the_new_metrics_direction_not_the_parents_mode(tmp_path):
    write(tmp_path, GOOD.replace("metric: val/pairwise_acc,", "metric: val/pairwise_acc, mode: max,"), "parent.yaml")
    child = write(tmp_path, "extends: parent.yaml\nobjective: {metric: val/loss}\n", "child.yaml")
    space = load_space(child)
    assert (space.metric, space.mode) == ("val/loss", "min")
    assert load_space(child, {"objective.metric": "val/r2"}).mode == "max"
    with pytest.raises(ConfigError, match="--set: objective.mode: max for val/loss, which is minimised"):
        load_space(child, {"objective.mode": "max"})


def test_set_overrides_budget_and_fixed_config(tmp_path):
    space = load_space(write(tmp_path, GOOD), {"budget.max_epochs": 2, "model.hidden_size": 8, "sampler.name": "random"})
    assert space.budget.max_epochs == 2 and space.base.train.max_epochs == 2
    assert space.base.model["hidden_size"] == 8 and space.sampler.name == "random"


def test_reference_baselines_default_follow_the_base_data_and_turn_off_with_an_empty_list(tmp_path):
    space = load_space(write(tmp_path, GOOD), {"data.max_train_segments": 40})
    references = space.references()
    assert list(references) == ["global_mean", "music_mean"]  # the default
    assert all(c.data.split == "performer" and c.data.max_train_segments == 40 for c in references.values())
    assert load_space(write(tmp_path, GOOD), {"reference_baselines": []}).references() == {}
    assert list(load_space(write(tmp_path, GOOD + "reference_baselines: [ridge_probe]\n")).references()) == ["ridge_probe"]


BAD = {
    "malformed_yaml": ("model: {name: han\nparameters: [", "malformed YAML (line"),
    "unknown_top_key": (GOOD + "schedule: {}\n", "schedule: unknown key"),
    "unknown_param_field": (GOOD.replace("low: 0.0, high: 0.4", "low: 0.0, hi: 0.4"), "parameters.model.dropout.hi: unknown key"),
    "unknown_config_key": (GOOD.replace("model.dropout:", "model.dropuot:"), "parameters.model.dropuot: unknown key"),
    "wrong_type": (GOOD.replace("max_epochs: 4", "max_epochs: four"), "budget.max_epochs: Input should be a valid integer"),
    "loguniform_nonpositive": (GOOD.replace("low: 1.0e-5", "low: 0.0"), "parameters.train.lr: loguniform needs low > 0"),
    "low_above_high": (GOOD.replace("low: 1, high: 3", "low: 3, high: 1"), "parameters.model.note_layers: low > high"),
    "unknown_condition": (GOOD.replace("when: {data.batch_sampler: grouped}", "when: {data.sampler: grouped}"),
                          "parameters.train.lambda_rank.when: 'data.sampler' is not a parameter of this space"),
    "unknown_model": (GOOD.replace("name: han", "name: hann"), "model.name: unknown model 'hann'"),
    "mode_against_a_score": (GOOD.replace("metric: val/pairwise_acc,", "metric: val/pairwise_acc, mode: min,"),
                             "objective.mode: min for val/pairwise_acc, which is maximised; leave mode out"),
    "mode_against_the_loss": (GOOD.replace("metric: val/pairwise_acc,", "metric: val/loss, mode: max,"),
                              "objective.mode: max for val/loss, which is minimised"),
    "unknown_metric": (GOOD.replace("metric: val/pairwise_acc", "metric: val/accuracy"), "objective.metric: unknown metric 'val/accuracy'"),
    "reference_unknown": (GOOD + "reference_baselines: [median]\n",
                          "reference_baselines[0]: model.name: unknown model 'median'"),
    "reference_trained": (GOOD + "reference_baselines: [han]\n",
                          "reference_baselines[0]: han is trained, not fitted in closed form; drop it from "
                          "reference_baselines"),
    "reference_listed_twice": (GOOD + "reference_baselines: [music_mean, music_mean]\n",
                               "reference_baselines[1]: music_mean is listed twice"),
    # a mistake that would otherwise change the sweep silently
    "categorical_value_twice": (GOOD.replace("values: [random, grouped]", "values: [random, grouped, random]"),
                                "parameters.data.batch_sampler: 'random' is listed twice in 'values'"),
    "null_without_extends": (GOOD.replace("{distribution: uniform, low: 0.0, high: 0.4}", "null"),
                             "parameters.model.dropout: null removes an inherited parameter, but this space "
                             "extends none"),
    "null_removes_nothing": ("extends: smoke\nparameters:\n  model.dropuot: null\n",
                             "parameters.model.dropuot: null removes an inherited parameter, but smoke has no "
                             "parameter model.dropuot (its parameters: train.lr, model.dropout"),
    "condition_on_a_float": (GOOD.replace("when: {data.batch_sampler: grouped}", "when: {model.dropout: 0.2}"),
                             "parameters.train.lambda_rank.when: model.dropout is continuous"),
    "condition_off_the_int_range": (GOOD.replace("when: {data.batch_sampler: grouped}",
                                                 "when: {model.note_layers: [2, 5]}"),
                                    "parameters.train.lambda_rank.when: model.note_layers never takes 5 (values: 1..3)"),
}


def _sweep_args(path, **extra):
    import argparse

    defaults = dict(space=str(path), set=None, num_samples=None, max_concurrent=None, address=None, storage=None,
                    resume=False, run_id=None, dashboard=False, dashboard_host="127.0.0.1", num_cpus=None, dry_run=False,
                    max_failures=2, connect_timeout=30.0, logger=None)
    return argparse.Namespace(**{**defaults, **extra})


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_space_is_a_one_line_error_with_exit_code_2(case, tmp_path, monkeypatch, capsys):
    from pianoeval.cli import run_cli
    from pianoeval.sweep.cli import main

    text, message = BAD[case]
    path = write(tmp_path, text)
    results = tmp_path / "results"
    monkeypatch.setenv("PIANOEVAL_RESULTS", str(results))
    assert run_cli(lambda: main(_sweep_args(path))) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: ") and message in lines[0], lines
    assert not results.exists()  # nothing started


@pytest.mark.parametrize("case", ["unknown_config_key", "loguniform_nonpositive"])
def test_the_runner_itself_exits_2_on_bad_input(case, tmp_path):
    text, message = BAD[case]
    path = write(tmp_path, text)
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "runners" / "sweep.py"), "--space", str(path)],
                          capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PIANOEVAL_RESULTS": str(results)})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and message in proc.stderr
    assert not results.exists()


def test_grid_sampler_needs_discrete_parameters(tmp_path):
    with pytest.raises(ConfigError, match="grid needs categorical or int parameters"):
        load_space(write(tmp_path, GOOD + "sampler: {name: grid}\n"))
    # chosen by --set: the same error, naming --set, not an AttributeError in the dry run
    with pytest.raises(ConfigError, match="^--set: sampler.name: grid needs categorical or int parameters"):
        load_space(write(tmp_path, GOOD), {"sampler.name": "grid"})


@pytest.mark.parametrize("folds, message", [([0, 7], "fold 7 is out of range"), ([], "the list is empty")])
def test_bad_folds_from_set_are_named_as_set_not_as_the_file(tmp_path, folds, message):
    with pytest.raises(ConfigError, match=f"^--set: budget.folds: {message}"):
        load_space(write(tmp_path, GOOD), {"budget.folds": folds})


def test_a_condition_on_an_int_parameter_holds_for_the_values_it_lists(tmp_path):
    space = load_space(write(tmp_path, GOOD.replace("when: {data.batch_sampler: grouped}",
                                                    "when: {model.note_layers: [2, 3]}")))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(12):
        trial = study.ask()
        DefineByRun(space.parameters)(trial)
        assert ("train.lambda_rank" in trial.params) == (trial.params["model.note_layers"] >= 2)
        study.tell(trial, 0.0)
