"""Every registered model name, and every YAML under search_spaces/ and ablations/, through
config resolution and a forward pass on a real batch of two training segments.

The habit of timm's ``list_models()`` tests and litgpt's config-hub tests: a new variant or
spec is covered the day it is added, with no edit here. Models run at tiny widths (the
sizes of benchmarks/gpu_check.py, which tests/train/test_precision.py trains under bf16),
keeping each spec's own structure (depth, levels, fusion type, zeroing, ...). Inputs that
are not in the checkout come as tiny ones in the real format: a random audio backbone
checkpoint (``tiny_backbone``) and a frames file exported from ``note_sa``
(``exported_frames``). Weights that runners/pretrain_*.py would make are switched off
(``pretrained: false``). A closed-form reference (``fit == "closed_form"``) is fitted on two
training items and predicts them instead.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from pianoeval.ablation import load_ablation
from pianoeval.ablation.staged import is_staged, load_staged, screened_candidates
from pianoeval.data.labels import label_dimensions
from pianoeval.errors import ConfigError
from pianoeval.experiment import ExperimentConfig
from pianoeval.models.registry import get_model, list_models
from pianoeval.paths import REPO_ROOT, asap_root
from pianoeval.sweep.space import load_space, model_variants, variant_config
from pianoeval.train.data import build_datamodule, labelled_items
from pianoeval.train.module import PerformanceModule

_spec = importlib.util.spec_from_file_location("gpu_check", REPO_ROOT / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)

SPECS = sorted([*(REPO_ROOT / "search_spaces").glob("*.yaml"), *(REPO_ROOT / "ablations").glob("*.yaml")])
DATA = {"batch_size": 2, "max_train_segments": 8, "eval_batch_size": 2}
DEPTH = ("layers", "num_layers")  # structure a spec may vary (frames_transformer's k): kept as the spec has it
_RUN: set[str] = set()  # model + data configs already run forward (the specs repeat many variants)


def needs_asap(model: dict) -> bool:
    """A2's stage 1 pre-trains on ASAP windows (not bundled)."""
    return "stage1_steps" in model or "stage1_steps" in (model.get("audio_encoder") or {})


def tiny_model(model: dict, backbone: str) -> dict:
    """Overrides that shrink ``model`` (a resolved model config) to tiny widths and turn off
    pre-trained weights; its other fields stay as they are."""
    entry = get_model(model["name"])
    if entry.fit == "closed_form":
        return {}
    if entry.input_kind == "fusion":  # the fusion layers, and each frozen encoder shrunk in turn
        sizes = {**gpu_check.HEADS_TINY, "fusion_dim": 8, "fusion_heads": 2,
                 **{key: tiny_model(model[key], backbone) for key in ("audio_encoder", "symbolic_encoder")}}
    else:
        sizes = {k: v for k, v in gpu_check.model_overrides(model["name"], "tiny", backbone).items() if k not in DEPTH}
    if "pretrained" in model:
        sizes["pretrained"] = False
    return sizes


def forward_on_two(config: ExperimentConfig, backbone: str) -> None:
    """``config`` at tiny widths: its model's output on one real batch of two (a closed-form
    reference: fitted on two training items, then its predictions of them)."""
    config = config.with_overrides({"model": tiny_model(config.model, backbone),
                                    **{f"data.{k}": v for k, v in DATA.items()}}, f"<tiny {config.model_name}>")
    key = json.dumps([config.model, config.data.model_dump(mode="json")], sort_keys=True, default=str)
    if key in _RUN:
        return
    entry = get_model(config.model_name)
    labels = len(label_dimensions(config.data.labels))
    torch.manual_seed(0)
    datamodule = build_datamodule(config)
    datamodule.setup()
    if entry.fit == "closed_form":
        two = labelled_items(datamodule, "train").subset([0, 1])
        predictor = entry.build(config.model_spec(), datamodule.input_dim, labels)
        predictor.fit(two)
        predictions, _ = predictor.predict(two)
    else:
        batch = next(iter(datamodule.train_dataloader()))
        module = PerformanceModule(config, datamodule.input_dim, steps_per_epoch=1).eval()
        with torch.no_grad():
            predictions = module(batch).logits.numpy()
    assert predictions.shape == (2, labels), (config.model_name, predictions.shape)
    assert np.isfinite(predictions).all(), config.model_name
    _RUN.add(key)


@pytest.fixture(autouse=True)
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("PIANOEVAL_RESULTS", str(tmp_path / "results"))  # A2's stage-1 checkpoints go here


def _name_params():
    return [pytest.param(name, marks=[pytest.mark.asap] if "stage1_steps" in get_model(name).config_cls.model_fields
                         else []) for name in list_models()]


@pytest.mark.parametrize("name", _name_params())
def test_every_registered_model_resolves_and_runs_forward_on_two_segments(name, tiny_backbone, exported_frames):
    entry = get_model(name)
    data = {"frames": exported_frames} if "frames" in entry.required_data else {}
    config = ExperimentConfig.resolve({"model": {"name": name}, "data": data}, f"<registry {name}>")
    assert config.model_name == name and entry.make_config(config.model) is not None
    forward_on_two(config, tiny_backbone)


def spec_configs(path: Path, frames: str) -> list[ExperimentConfig]:
    """Every run config a spec file resolves to: a space's base (and each sampled model's),
    an ablation's variants, eval-only variants and references, a staged spec's screened and
    fusion candidates. A spec on frames names no frames file of its own: it gets ``frames``."""
    def load(loader, *args):
        try:
            return loader(*args)
        except ConfigError as error:
            assert "data.frames: required by model" in str(error), error
            return loader(*args[:-1], {**args[-1], "data.frames": frames})

    if path.parent.name == "search_spaces":
        space = load(load_space, path.stem, {})
        return [space.base, *[variant_config(space.base, space.fixed_model, name, str(path))
                              for name in model_variants(space) if name != space.base.model_name]]
    if is_staged(path):
        staged = load(load_staged, path, {})
        configs = list(staged.stage_spec(next(iter(staged.stages)), screened_candidates(staged)).variants.values())
        for stage, stage_spec in staged.stages.items():  # a fusion stage's candidates, on their default encoders
            if stage_spec.fuse and isinstance(stage_spec.candidates, list):
                configs += staged.stage_spec(stage, stage_spec.candidates).variants.values()
        return configs
    spec = load(load_ablation, path, {})
    references = [t.config for t in spec.trials if t.reference]
    return [*spec.variants.values(), *(config for _, config in spec.eval_only.values()), *references]


@pytest.mark.parametrize("path", SPECS, ids=[f"{p.parent.name}/{p.name}" for p in SPECS])
def test_every_shipped_spec_resolves_and_each_of_its_models_runs_forward_on_two_segments(path, tiny_backbone,
                                                                                        exported_frames):
    configs = spec_configs(path, exported_frames)
    assert configs, path
    for config in configs:
        if needs_asap(config.model) and asap_root(required=False) is None:
            continue  # resolved above; A2's stage 1 needs ASAP (not bundled) to run
        forward_on_two(config, tiny_backbone)


def test_every_model_a_spec_names_is_registered_and_every_family_is_in_a_spec():
    """The registry and the YAML files agree: a spec never names an unregistered model
    (resolution refuses it, see above), and every trained family has a spec that uses it;
    the closed-form references come into ablations by default (``reference_baselines``)."""
    text = "\n".join(path.read_text() for path in SPECS)
    unused = [n for n in list_models() if get_model(n).fit == "gradient" and not re.search(rf"\bname: {n}\b", text)]
    assert unused == [], f"registered models that no spec uses: {unused}"
