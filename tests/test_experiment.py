import pytest

from pianoeval.config import load_yaml
from pianoeval.errors import ConfigError
from pianoeval.experiment import ExperimentConfig, load_experiment


def test_defaults_are_the_reference_training():
    cfg = ExperimentConfig.resolve({"model": {"name": "han"}})
    t = cfg.train
    assert (t.optimizer, t.lr, t.weight_decay, t.grad_clip, t.scheduler, t.step_size, t.gamma, t.max_epochs) == (
        "adam", 2.5e-5, 1e-5, 2.0, "step", 3000, 0.98, 100)
    assert cfg.data.batch_size == 8 and cfg.seed == 7 and t.monitor == "val/loss"
    assert cfg.model["hidden_size"] == 256 and cfg.model["readout"] == "measure"


def test_variant_defaults_fill_the_feature_set():
    assert ExperimentConfig.resolve({"model": {"name": "bilstm_baseline"}}).data.feature_set == "perf_only"
    assert ExperimentConfig.resolve({"model": {"name": "note_sa"}}).data.feature_set == "full"
    explicit = ExperimentConfig.resolve({"model": {"name": "bilstm_baseline"}, "data": {"feature_set": "full"}})
    assert explicit.data.feature_set == "full"


def test_overrides_and_model_switch():
    cfg = ExperimentConfig.resolve({"model": {"name": "han", "hidden_size": 64}})
    lr = cfg.with_overrides({"train.lr": 1e-3, "model.attention_temperature": 0.5})
    assert lr.train.lr == 1e-3 and lr.model["attention_temperature"] == 0.5 and lr.model["hidden_size"] == 64
    switched = cfg.with_overrides({"model.name": "note_voice"})
    assert switched.model["readout"] == "voice" and switched.model["hidden_size"] == 256


@pytest.mark.parametrize("raw, message", [
    ({"model": {"name": "hann"}}, "model.name: unknown model 'hann' (available: "),
    ({"model": {"name": "han", "hidden": 3}}, "model.hidden: unknown key (allowed: hidden_size"),
    ({"model": {"name": "han"}, "train": {"lr": "fast"}}, "train.lr: Input should be a valid number"),
    ({"model": {"name": "han"}, "train": {"lr": -1}}, "train.lr: Input should be greater than 0"),
    ({"model": {"name": "han"}, "train": {"monitor": "val/accuracy"}}, "train.monitor"),
    ({"model": {"name": "han"}, "data": {"fold": 7}}, "data.fold"),
    ({"model": {"name": "han"}, "optimiser": {}}, "optimiser: unknown key"),
    ({}, "model.name: required key is missing"),
])
def test_bad_configs_are_one_line_errors_naming_the_key(raw, message):
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.resolve(raw, "spec.yaml")
    text = str(err.value)
    assert text.startswith("spec.yaml: ") and message in text and "\n" not in text


def test_config_files(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: {name: note_voice}\ntrain: {max_epochs: 3}\n")
    assert load_experiment(path, {"seed": 3}).seed == 3
    path.write_text("model: {name: han\n")
    with pytest.raises(ConfigError, match=r"run.yaml: malformed YAML \(line"):
        load_yaml(path)
