"""pianoeval.models.registry: lazy entries whose import paths resolve, torch-free lookups, and the
facts an entry states about its data module and encoders agreeing with the code they name."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pianoeval.errors import ConfigError
from pianoeval.models.configs.fusion import MIDI_ENCODERS, SYMBOLIC_KINDS
from pianoeval.models.registry import get_model, list_models

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "lightning", "ray", "pandas", "scipy", "sklearn", "matplotlib", "transformers", "peft")


@pytest.mark.parametrize("name", list_models())
def test_each_entry_names_a_builder_and_a_data_module_that_exist(name):
    entry = get_model(name)
    assert callable(entry.build) and callable(entry.datamodule_class())
    module, _, builder = entry.builder.partition(":")
    assert callable(getattr(__import__(module, fromlist=[builder]), builder))
    # the tiers the registry states (read by the staged protocol) are the data module's own
    assert entry.tiers == getattr(entry.datamodule_class(), "SUPPORTED_TIERS", ("T1",))


def test_resolving_every_registered_config_imports_no_heavy_stack():
    """What keeps a config error under a second: the registry, the configs and the run config
    import no torch, Lightning, Ray, pandas or scipy (their models load when a run builds them)."""
    code = ("import json, sys\nfrom pianoeval.experiment import ExperimentConfig\n"
            "from pianoeval.models.registry import list_models\n"
            "for name in list_models():\n"
            "    ExperimentConfig.resolve({'model': {'name': name}}, name)\n"
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"exp.yaml: model.name: unknown model 'hann' \(available: .*han"):
        get_model("hann", "exp.yaml")


def test_the_midi_encoders_fusion_names_are_the_registered_encoders_of_midi():
    midi_kinds = set(SYMBOLIC_KINDS) - {"notes"}
    assert set(MIDI_ENCODERS) == {n for n in list_models() if get_model(n).input_kind in midi_kinds}


def test_a_fusion_entry_resolves_its_encoders_and_refuses_one_of_the_wrong_track():
    config = get_model("fusion_f2_concat").make_config({"symbolic_encoder": {"name": "s2_gnn", "hidden_size": 32}})
    assert config.symbolic_encoder["hidden_size"] == 32 and "num_layers" in config.symbolic_encoder
    assert config.audio_encoder["name"] == "a1_lora" and "lora_rank" in config.audio_encoder
    with pytest.raises(ConfigError, match="run.yaml: model.audio_encoder: s2_gnn reads note_graph input"):
        get_model("fusion_f2_concat").make_config({"audio_encoder": {"name": "s2_gnn"}}, "run.yaml")
    with pytest.raises(ConfigError, match="model.symbolic_encoder: needs a registered model name"):
        get_model("fusion_f2_concat").make_config({"symbolic_encoder": {"hidden_size": 8}})


def test_the_soundfonts_a_config_may_name_are_the_ones_the_renderer_has():
    from pianoeval.audio.render import SOUNDFONTS
    from pianoeval.models.configs.audio import SOUNDFONT_NAMES

    assert tuple(SOUNDFONTS) == SOUNDFONT_NAMES


def test_the_pretraining_defaults_are_the_families_default_variants():
    from pianoeval.models.symbolic import ENCODERS
    from pianoeval.symbolic.pretrain_config import DEFAULT_VARIANTS

    assert DEFAULT_VARIANTS == {name: variant for name, (_, _, variant) in ENCODERS.items()}
