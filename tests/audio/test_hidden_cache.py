"""Hidden-state cache: a miss computes, a hit reads, a change of weights / audio / layer misses."""

import numpy as np
import pytest
import torch

from pianoeval.audio.augment import AugmentConfig
from pianoeval.audio.backbones import BackboneSpec, ConformerBackbone
from pianoeval.audio.checkpoint import save_backbone
from pianoeval.audio.features import AudioItem, Frontend, build_mels
from pianoeval.audio.hidden_cache import build_hidden
from pianoeval.audio.source import BackboneSource

SPEC = BackboneSpec(hidden_size=32, num_heads=2, intermediate_size=64, conv_channels=8, db_mean=-45, db_std=20)


@pytest.fixture
def setup(percepiano, tmp_path, monkeypatch):
    monkeypatch.setenv("PIANOEVAL_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    save_backbone(ConformerBackbone(SPEC), tmp_path / "bb", {})
    items = [AudioItem(s.segment_id, s.performance_midi(percepiano.root)) for s in percepiano.segments[:2]]
    mels = build_mels(items, ["timgm6mb"], 1, Frontend.of(SPEC), AugmentConfig(rir_bank_size=2, p_noise=1.0), max_seconds=3.0,
                      workers=1, progress=False, warn=lambda m: None)
    return tmp_path, items, mels


def test_hit_miss_and_stale(setup, monkeypatch):
    tmp_path, items, mels = setup
    source = BackboneSource(tmp_path / "bb")
    keys = [(items[0].item_id, "timgm6mb", 0), (items[0].item_id, "timgm6mb", 1)]
    lines = []
    first = build_hidden(source, 2, mels, keys, progress=False, warn=lines.append)
    assert "2 computed" in lines[-1]
    assert first[keys[0]].shape[1] == 32 and first[keys[0]].dtype == np.float16
    assert not np.array_equal(first[keys[0]], first[keys[1]])  # the augmented view differs

    def no_model(*args, **kwargs):
        raise AssertionError("a cache hit must not run the backbone")

    with monkeypatch.context() as patch:
        patch.setattr(BackboneSource, "load", no_model)
        again = build_hidden(source, 2, mels, keys, progress=False, warn=lines.append)
    assert all(np.array_equal(first[k], again[k]) for k in keys)

    # new weights -> new checkpoint hash -> a different folder, recomputed
    torch.manual_seed(1)
    save_backbone(ConformerBackbone(SPEC), tmp_path / "bb", {})
    fresh = build_hidden(BackboneSource(tmp_path / "bb"), 2, mels, keys[:1], progress=False, warn=lines.append)
    assert "1 computed" in lines[-1] and not np.array_equal(fresh[keys[0]], first[keys[0]])
    # another layer, another audio item: misses too
    build_hidden(BackboneSource(tmp_path / "bb"), 1, mels, keys[:1], progress=False, warn=lines.append)
    assert "1 computed" in lines[-1]
    other = (items[1].item_id, "timgm6mb", 0)
    build_hidden(BackboneSource(tmp_path / "bb"), 1, mels, keys[:1] + [other], progress=False, warn=lines.append)
    assert "1 computed" in lines[-1] and "1 cached" in lines[-1]


def test_random_init_has_its_own_key(setup):
    tmp_path, _, _ = setup
    pretrained, random = BackboneSource(tmp_path / "bb"), BackboneSource(tmp_path / "bb", init="random", seed=3)
    assert pretrained.key() != random.key() == BackboneSource(tmp_path / "bb", init="random", seed=3).key()
    lines = []
    model = random.load(0, announce=lines.append)
    assert "RANDOM initialisation" in lines[0]
    assert not torch.equal(model.state_dict()["conv.linear.weight"], pretrained.load().state_dict()["conv.linear.weight"])


def test_a_silent_cached_render_is_skipped_with_a_warning(setup, percepiano):
    tmp_path, items, _ = setup
    job = items[0].render_job("timgm6mb")
    np.save(job.path(), np.zeros(24_000, np.int16))  # a corrupt (silent) render in the cache
    for path in (tmp_path / "cache" / "audio" / "mel").rglob("*.npy"):
        path.unlink()
    lines = []
    mels = build_mels(items, ["timgm6mb"], 0, Frontend.of(SPEC), AugmentConfig(), max_seconds=3.0, workers=1,
                      progress=False, warn=lines.append)
    assert (items[0].item_id, "timgm6mb", 0) not in mels and (items[1].item_id, "timgm6mb", 0) in mels
    assert sum("skip" in line and "silent" in line for line in lines) == 1
