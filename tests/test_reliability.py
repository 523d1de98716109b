"""What a careful user relies on beyond one-line errors: sampled model variants keep the
space's fixed fields, relative paths in specs are read from the spec's folder, dry runs show
what must be prepared, the report's resume hint is a command that works, and the dashboard
URL comes with how to get past its token prompt."""

from __future__ import annotations

import runpy
import sys
import time
from pathlib import Path

import pytest

from pianoeval.config import dump_yaml, load_yaml
from pianoeval.errors import ConfigError
from pianoeval.paths import REPO_ROOT
from pianoeval.sweep import load_space


def _space(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_a_sampled_model_variant_keeps_the_fixed_model_fields(tmp_path):
    from pianoeval.experiment import ExperimentConfig
    from pianoeval.sweep.space import model_variants, variant_config

    space = load_space(_space(tmp_path, """
model: {name: note_voice, hidden_size: 24, num_heads: 4}
data: {max_train_segments: 24}
parameters:
  model.name: {distribution: categorical, values: [note_voice, han]}
  model.measure_layers: {distribution: int, low: 1, high: 2, when: {model.name: han}}
"""))
    assert model_variants(space) == ["note_voice", "han"]
    han = variant_config(space.base, space.fixed_model, "han", "test")
    assert han.model["hidden_size"] == 24 and han.model["num_heads"] == 4  # fixed, not han's defaults
    # what a trial resolves from the base and a sampled config (the trainable's path)
    sampled = ExperimentConfig.resolve(space.base.to_dict()).with_overrides(
        {"model.name": "han", "model.measure_layers": 2}, keep_model=space.fixed_model)
    assert sampled.model_name == "han" and sampled.model["hidden_size"] == 24 and sampled.model["measure_layers"] == 2


def test_a_parameter_only_one_variant_has_needs_a_condition(tmp_path):
    text = """
model: {name: note_voice, hidden_size: 24}
parameters:
  model.name: {distribution: categorical, values: [note_voice, s3_continuous]}
  model.conv_layers: {distribution: int, low: 1, high: 2}
"""
    with pytest.raises(ConfigError, match=r"parameters.model.conv_layers.*model note_voice"):
        load_space(_space(tmp_path, text))
    conditioned = text.replace("high: 2}", "high: 2, when: {model.name: s3_continuous}}")
    assert [p.key for p in load_space(_space(tmp_path, conditioned)).parameters] == ["model.name", "model.conv_layers"]


def test_dry_run_shows_each_sampled_variants_model(tmp_path, capsys, monkeypatch):
    path = _space(tmp_path, """
model: {name: note_voice, hidden_size: 24}
parameters:
  model.name: {distribution: categorical, values: [note_voice, han]}
""")
    monkeypatch.setattr(sys, "argv", ["runners/sweep.py", "--space", str(path), "--dry-run"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(REPO_ROOT / "runners" / "sweep.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert stop.value.code == 0
    assert "  han: hidden_size=24" in out and "  note_voice: hidden_size=24" in out


def test_extends_and_base_file_paths_are_read_from_the_specs_folder(tmp_path, monkeypatch):
    from pianoeval.ablation import load_ablation

    (tmp_path / "specs" / "parents").mkdir(parents=True)
    (tmp_path / "specs" / "parents" / "wide.yaml").write_text(
        "extends: smoke\nmodel: {name: note_voice, hidden_size: 32, num_heads: 4}\n")
    child = tmp_path / "specs" / "child.yaml"
    child.write_text("extends: parents/wide.yaml\nbudget: {max_epochs: 2, grace_period: 1, num_samples: 2}\n")
    dump_yaml({"model": {"name": "note_voice", "hidden_size": 16}, "data": {"split": "performer"}},
              tmp_path / "specs" / "parents" / "best.yaml")
    ablation = tmp_path / "specs" / "ablation.yaml"
    ablation.write_text("base: {file: parents/best.yaml}\nvariants: {a: {}}\nbaseline: a\nfolds: [0]\n")
    monkeypatch.chdir(tmp_path)  # neither file is found from the working directory
    assert load_space(child).base.model["hidden_size"] == 32
    assert load_ablation(ablation).variants["a"].model["hidden_size"] == 16


def test_objective_mode_and_record_can_be_set():
    space = load_space("smoke", {"objective.metric": "val/loss", "objective.mode": "min", "objective.record": ["val/r2"]})
    assert (space.metric, space.mode, space.record) == ("val/loss", "min", ("val/r2",))


def test_a_dry_run_lists_what_must_be_prepared_instead_of_failing(tmp_path, capsys, monkeypatch):
    from pianoeval.models.configs import audio as audio_configs

    monkeypatch.setenv("PIANOEVAL_RESULTS", str(tmp_path / "fresh"))  # no pre-trained encoders here
    monkeypatch.setattr(audio_configs, "SHIPPED_BACKBONES", tmp_path / "not-shipped")  # nor the shipped audio default
    monkeypatch.setattr(sys, "argv", ["runners/ablate.py", "fusion_variants", "--dry-run"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(REPO_ROOT / "runners" / "ablate.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert stop.value.code == 0
    assert "to prepare before running" in out and "python runners/pretrain_audio.py" in out
    assert not (tmp_path / "fresh").exists()


def test_the_reports_resume_hint_is_a_command_that_names_the_spec_file(tmp_path):
    from pianoeval.report.runs import run_kind
    from pianoeval.sweep.record import write_sweep_file

    spec = _space(tmp_path, "extends: smoke\n")
    run = tmp_path / "elsewhere" / "sweeps" / "space" / "r1"
    run.mkdir(parents=True)
    write_sweep_file(load_space(spec), str(run), [("", 2)])
    with pytest.raises(ConfigError) as err:
        run_kind(run)
    hint = str(err.value).split("`")[1]
    assert hint == (f"python runners/sweep.py --space {spec.resolve()} --storage {tmp_path / 'elsewhere'} "
                    "--resume --run-id r1")


def test_the_dashboard_url_says_how_to_authenticate():
    from pianoeval.sweep.ray_session import dashboard_lines

    lines = dashboard_lines("http://127.0.0.1:8265")
    assert lines[0].endswith("http://127.0.0.1:8265") and "ray get-auth-token" in lines[1]


def test_an_alias_bomb_is_refused_in_milliseconds(tmp_path):
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"{chr(97 + i)}: &{chr(97 + i)} [{', '.join([f'*{chr(96 + i)}'] * 9)}]" for i in range(1, 10)]
    (tmp_path / "bomb.yaml").write_text("\n".join(levels) + "\n")  # 9**10 values once expanded
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="aliases expand"):
        load_yaml(tmp_path / "bomb.yaml")
    assert time.perf_counter() - started < 1.0
