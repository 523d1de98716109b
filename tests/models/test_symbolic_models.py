"""Symbolic encoders: registration, padding independence, the pre-trained-weights contract."""

import json

import pytest
import torch

from pianoeval.errors import ConfigError, DataError
from pianoeval.experiment import ExperimentConfig
from pianoeval.models.registry import get_model, list_models
from pianoeval.models.symbolic_common import save_pretrained
from pianoeval.symbolic.batches import GraphCollate, collate_curves, collate_tokens
from pianoeval.symbolic.datamodule import DATA_MODULES
from pianoeval.symbolic.graphs import HETERO_EDGES, HOMOGENEOUS_EDGES
from pianoeval.symbolic.sources import corpus_store, input_dim_of, percepiano_data

NAMES = ["s1_remi", "s2_gnn", "s2h_hetero", "s3_continuous"]
TINY = {"hidden_size": 16, "num_heads": 4, "num_layers": 1}


def test_every_symbolic_family_is_registered_and_builds_at_gpu_size():
    from pianoeval.models.symbolic import GPU_SIZES

    assert set(GPU_SIZES) == set(NAMES)
    for name in NAMES:
        entry = get_model(name)
        assert name in list_models() and entry.input_kind in DATA_MODULES
        assert entry.make_config({}).hidden_size == 128
        kind = DATA_MODULES[entry.input_kind].kind
        large = entry.build(entry.make_config(GPU_SIZES[name]), input_dim_of(kind), 19)
        assert sum(p.numel() for p in large.encoder.parameters()) > 1_000_000  # S1 19.3M, S2 1.6M, S2H 6.3M, S3 22.0M
    with pytest.raises(ConfigError, match="not divisible"):
        ExperimentConfig.resolve({"model": {"name": "s1_remi", "hidden_size": 30, "num_heads": 4}})
    with pytest.raises(ConfigError, match="freeze_encoder needs pretrained"):
        ExperimentConfig.resolve({"model": {"name": "s3_continuous", "freeze_encoder": True}})


def _items(kind, ids):
    data = percepiano_data()
    from pianoeval.symbolic.batches import ItemMeta

    store = corpus_store(kind, "percepiano")
    return [{"meta": ItemMeta(i, data.by_id[i].labels, data.by_id[i].label_std, 0, True), **store.get(i)} for i in ids]


@pytest.mark.parametrize("name, kind, collate", [
    ("s1_remi", "tokens", collate_tokens), ("s3_continuous", "curves", collate_curves),
    ("s2_gnn", "graphs", GraphCollate(HOMOGENEOUS_EDGES)), ("s2h_hetero", "graphs", GraphCollate(HETERO_EDGES))])
def test_an_item_encodes_the_same_alone_and_beside_a_longer_one(name, kind, collate):
    torch.manual_seed(0)
    entry = get_model(name)
    model = entry.build(entry.make_config({**TINY, "chunk_len": 64} if kind != "graphs" else TINY),
                        input_dim_of(kind), 19).eval()
    ids = ["Schubert_D960_mv3_8bars_0_30", "Schubert_D960_mv2_8bars_8_09"]  # short, then long
    items = _items(kind, ids)
    together = model(collate(items))
    alone = model(collate(items[:1]))
    assert torch.allclose(together.logits[0], alone.logits[0], atol=1e-4)
    assert torch.allclose(together.embedding[0], alone.embedding[0], atol=1e-4)


def test_pretrained_weights_missing_or_for_another_architecture_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("PIANOEVAL_RESULTS", str(tmp_path))
    entry = get_model("s2_gnn")
    config = entry.make_config({**TINY, "pretrained": True})
    with pytest.raises(DataError, match=r"runners/pretrain_symbolic.py --encoder s2 --set hidden_size=16"):
        entry.build(config, 27, 19)
    # a checkpoint made for 2 layers does not load into a 1-layer encoder
    from pianoeval.models.symbolic_gnn import ARCH_FIELDS, NoteGraphEncoder

    made = entry.make_config({**TINY, "num_layers": 2})
    folder = tmp_path / "pretrained" / "symbolic" / "s2" / "h16-l1-a4"
    save_pretrained(folder, NoteGraphEncoder(made, 27), {"encoder": "s2", "input_dim": 27,
                                                          "architecture": {k: getattr(made, k) for k in ARCH_FIELDS}})
    with pytest.raises(ConfigError, match="was pre-trained with"):
        entry.build(config, 27, 19)
    # the right one loads, and its weights are the model's
    encoder = NoteGraphEncoder(entry.make_config(TINY), 27)
    save_pretrained(folder, encoder, {"encoder": "s2", "input_dim": 27, "steps": 1, "corpus_items": 1, "final_loss": 0.5,
                                      "architecture": {k: getattr(config, k) for k in ARCH_FIELDS}})
    model = entry.build(config, 27, 19)
    assert all(torch.equal(a, b) for a, b in zip(model.encoder.state_dict().values(), encoder.state_dict().values()))
    assert json.loads((folder / "config.json").read_text())["encoder"] == "s2"
    frozen = entry.build(entry.make_config({**TINY, "pretrained": str(folder), "freeze_encoder": True}), 27, 19)
    assert not any(p.requires_grad for p in frozen.encoder.parameters())
