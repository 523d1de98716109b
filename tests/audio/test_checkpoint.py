"""MuQ's published checkpoint format (config.json + model.safetensors) and ours."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from pianoeval.audio.backbones import BackboneSpec, ConformerBackbone
from pianoeval.audio.checkpoint import checkpoint_spec, load_backbone, save_backbone, write_muq_checkpoint
from pianoeval.audio.lora import attach_lora
from pianoeval.errors import DataError

# MuQ's layout (12 conformer layers, linear_q/k/v/out) at a tiny width
TINY_MUQ = BackboneSpec(kind="muq", n_fft=2048, hop_length=240, n_mels=16, conv_channels=4, hidden_size=32,
                        num_layers=12, num_heads=2, intermediate_size=64, conv_kernel=5, db_mean=6.77, db_std=18.42)


@pytest.fixture(scope="module")
def muq_folder(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("muq")
    write_muq_checkpoint(ConformerBackbone(TINY_MUQ), folder)
    return folder


def test_muq_format_loads_through_the_same_code(muq_folder):
    config = json.loads((muq_folder / "config.json").read_text())
    keys = load_file(str(muq_folder / "model.safetensors")).keys()
    assert config["encoder_depth"] == 12 and "w2v2_config" in config and "stat" in config
    assert "model.conformer.layers.11.self_attn.linear_q.weight" in keys and "model.cls_token" in keys
    assert checkpoint_spec(muq_folder) == TINY_MUQ
    model = load_backbone(muq_folder).eval()
    mel = torch.randn(1, 16, 80) * 18 + 6
    reference = ConformerBackbone(TINY_MUQ).eval()
    reference.load_state_dict({k[len("model."):]: v for k, v in load_file(str(muq_folder / "model.safetensors")).items()
                               if k.startswith("model.conv.") or k.startswith("model.conformer.")}, strict=False)
    with torch.no_grad():
        assert torch.equal(model.hidden_states(mel, torch.tensor([80]))[0][-1],
                           reference.hidden_states(mel, torch.tensor([80]))[0][-1])


def test_a1_attaches_lora_to_layers_9_to_12_of_a_muq_checkpoint(muq_folder):
    top = load_backbone(muq_folder, first_layer=8)  # hidden state 8 is cached; layers 9-12 train
    top = attach_lora(top, range(9, 13), rank=4, alpha=8, dropout=0.0)
    adapted = sorted({name.split(".")[2] for name, p in top.named_parameters() if p.requires_grad})
    assert adapted == ["10", "11", "8", "9"]  # 0-based module indices of layers 9-12
    trainable = {name.rsplit(".", 3)[0].split("self_attn.")[1] for name, p in top.named_parameters() if p.requires_grad}
    assert trainable == {"linear_q", "linear_k", "linear_v", "linear_out"}
    assert all("lora_" in name for name, p in top.named_parameters() if p.requires_grad)


def test_a_missing_or_misshapen_tensor_is_a_clear_error(muq_folder, tmp_path):
    state = load_file(str(muq_folder / "model.safetensors"))
    (tmp_path / "config.json").write_text((muq_folder / "config.json").read_text())
    del state["model.conformer.layers.3.self_attn.linear_v.weight"]
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(DataError, match="layers.3.self_attn.linear_v.weight' missing"):
        load_backbone(tmp_path)
    config = json.loads((muq_folder / "config.json").read_text())
    config["encoder_dim"] = 64
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match="has shape"):
        load_backbone(tmp_path)
    with pytest.raises(DataError, match="config.json missing"):
        load_backbone(tmp_path / "nowhere")


def test_a_muq_label_rate_other_than_25_is_refused(tmp_path):
    # MuQ builds its conv front end with time strides (2, 1) at label_rate 50: same weight
    # shapes as (2, 2), so only the config can tell
    write_muq_checkpoint(ConformerBackbone(TINY_MUQ), tmp_path, extra_config={"label_rate": 50})
    with pytest.raises(DataError, match="label_rate: 50 is not supported"):
        load_backbone(tmp_path)

def test_our_format_round_trips(tmp_path):
    torch.manual_seed(1)
    spec = BackboneSpec(hidden_size=32, num_heads=2, intermediate_size=64, conv_channels=8, db_mean=-40, db_std=20)
    model = ConformerBackbone(spec)
    save_backbone(model, tmp_path, {"steps": 0})
    loaded = load_backbone(tmp_path)
    assert loaded.spec == spec
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items()
               if not k.startswith("conformer.embed_positions"))


def test_weights_that_no_longer_match_their_config_name_the_file_and_the_rebuild_command(tmp_path):
    import json

    from pianoeval.audio.backbones import BackboneSpec, ConformerBackbone
    from pianoeval.audio.checkpoint import load_backbone, save_backbone
    from pianoeval.errors import DataError

    spec = BackboneSpec(hidden_size=16, num_heads=2, intermediate_size=32, conv_channels=4, num_layers=2)
    save_backbone(ConformerBackbone(spec), tmp_path / "bb", {"command": "python runners/pretrain_audio.py --name bb"})
    assert len(json.loads((tmp_path / "bb" / "config.json").read_text())["weights_sha256"]) == 64
    load_backbone(tmp_path / "bb")
    other = tmp_path / "other"
    torch.manual_seed(1)
    save_backbone(ConformerBackbone(spec), other, {})
    (tmp_path / "bb" / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises(DataError, match=r"bb/model.safetensors: content hash .* does not match weights_sha256 .*"
                                        r"rebuild it with `python runners/pretrain_audio.py --name bb --force`"):
        load_backbone(tmp_path / "bb")


def test_a_shipped_backbone_is_found_recorded_and_overridden_by_one_built_here(tmp_path, monkeypatch, tiny_backbone):
    import shutil

    from pianoeval.audio.source import backbone_source
    from pianoeval.experiment import ExperimentConfig
    from pianoeval.models.configs import audio as audio_configs

    shipped = tmp_path / "weights"
    shutil.copytree(tiny_backbone, shipped / "tiny")
    monkeypatch.setattr(audio_configs, "SHIPPED_BACKBONES", shipped)
    monkeypatch.setenv("PIANOEVAL_RESULTS", str(tmp_path / "results"))
    assert backbone_source("pianoeval", "tiny", None, "pretrained").folder == shipped / "tiny"
    config = ExperimentConfig.model_validate({"model": {"name": "a1_lora", "backbone_name": "tiny"}})
    assert config.input_files() == {"model.backbone": str(shipped / "tiny" / "model.safetensors")}
    built = tmp_path / "results" / "pretrained" / "audio" / "tiny"
    shutil.copytree(tiny_backbone, built)
    assert backbone_source("pianoeval", "tiny", None, "pretrained").folder == built
    with pytest.raises(ValueError, match="not one folder name"):
        ExperimentConfig.model_validate({"model": {"name": "a1_lora", "backbone_name": "../x"}}).model_spec()


def test_a_fresh_clone_reads_the_shipped_default_backbone(tmp_path, monkeypatch):
    import json

    from pianoeval.audio.source import source_of
    from pianoeval.experiment import ExperimentConfig
    from pianoeval.models.configs.audio import DEFAULT_BACKBONE_NAME
    from pianoeval.paths import SHIPPED_BACKBONES

    monkeypatch.setenv("PIANOEVAL_RESULTS", str(tmp_path))  # nothing pre-trained here
    config = ExperimentConfig.resolve({"model": {"name": "a1_lora"}})
    source = source_of(config.model_spec())
    assert source.folder == SHIPPED_BACKBONES / DEFAULT_BACKBONE_NAME
    assert load_backbone(source.folder).spec.num_layers == 4  # and its weights match config.json's hash
    record = json.loads((source.folder / "config.json").read_text())["pretraining"]
    assert record["objective"].startswith("aligned") and record["command"].startswith("python runners/pretrain_audio.py")
    assert config.input_files() == {"model.backbone": str(source.folder / "model.safetensors")}


def test_a_config_json_that_is_not_utf8_is_a_one_line_error(tmp_path):
    (tmp_path / "config.json").write_bytes(b"\xff\xfe{not json")
    with pytest.raises(DataError, match="config.json: not UTF-8 text"):
        checkpoint_spec(tmp_path)
