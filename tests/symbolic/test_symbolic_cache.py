"""The symbolic pre-processing cache: bad MIDI skipped and counted, warm loads, keys."""

import shutil

import numpy as np
import pytest

from pianoeval.paths import BUNDLED_PERCEPIANO
from pianoeval.symbolic import cache as symbolic_cache
from pianoeval.symbolic.cache import build_store
from pianoeval.symbolic.corpus import PERCEPIANO, SymbolicItem

GOOD = ["Schubert_D960_mv3_8bars_8_13", "Schubert_D960_mv3_8bars_1_13", "Beethoven_WoO80_var27_8bars_3_15"]
CORRUPT, EMPTY = "Schubert_D960_mv3_8bars_2_13", "Schubert_D960_mv3_8bars_3_13"


@pytest.fixture
def small_corpus(tmp_path, monkeypatch):
    """Three real performances, one garbled, one empty, and a window with no notes."""
    monkeypatch.setenv("PIANOEVAL_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "percepiano"
    (root / "performance_midi").mkdir(parents=True)
    for sid in GOOD + [CORRUPT, EMPTY]:
        shutil.copy(BUNDLED_PERCEPIANO / "performance_midi" / f"{sid}.mid", root / "performance_midi")
    midi = root / "performance_midi" / f"{CORRUPT}.mid"
    midi.write_bytes(midi.read_bytes()[:14] + bytes(len(midi.read_bytes()) - 14))
    (root / "performance_midi" / f"{EMPTY}.mid").write_bytes(b"")
    items = [SymbolicItem(sid, PERCEPIANO, f"performance_midi/{sid}.mid", 0.0, None, sid, "piece", "p")
             for sid in GOOD + [CORRUPT, EMPTY]]
    items.append(SymbolicItem("late_window", PERCEPIANO, f"performance_midi/{GOOD[0]}.mid", 900.0, 910.0, "", "piece", "p"))
    return items, {PERCEPIANO: root}


@pytest.mark.parametrize("kind", ["tokens", "graphs", "curves"])
def test_bad_items_are_skipped_counted_and_reported(small_corpus, kind):
    items, roots = small_corpus
    messages = []
    store = build_store(kind, items, roots, "test", workers=1, progress=False, warn=messages.append)
    assert store.item_ids == GOOD
    assert {reason: [i for i, _ in entries] for reason, entries in store.skipped.items()} == {
        "midi_unusable": [CORRUPT, EMPTY], "no_representation": ["late_window"]}
    skips = [m for m in messages if m.startswith("[symbolic] skip")]
    assert len(skips) == 3 and all("\n" not in m for m in skips)
    assert any("empty MIDI file" in m for m in skips)
    assert "3 items, 3 skipped" in messages[-1]


def test_second_load_hits_the_cache_and_degradation_changes_the_key(small_corpus, monkeypatch):
    items, roots = small_corpus
    first = build_store("curves", items, roots, "test", workers=1, progress=False, warn=lambda m: None)
    with monkeypatch.context() as patch:  # counted, not timed: a loaded machine is slow
        patch.setattr(symbolic_cache, "_represent_files", lambda *a, **k: pytest.fail("the cache was not read"))
        second = build_store("curves", items, roots, "test", workers=1, progress=False, warn=lambda m: None)
    assert second.key == first.key and np.array_equal(second.values["curves"], first.values["curves"])
    assert second.skipped.keys() == first.skipped.keys()
    poor = build_store("curves", items, roots, "test", tier="poor", workers=1, progress=False, warn=lambda m: None)
    assert poor.key != first.key and poor.item_ids == first.item_ids
    assert not np.array_equal(poor.get(GOOD[0])["curves"], first.get(GOOD[0])["curves"])


def test_parallel_build_equals_serial(small_corpus):
    items, roots = small_corpus
    serial = build_store("tokens", items, roots, "a", workers=1, progress=False, warn=lambda m: None)
    parallel = build_store("tokens", items, roots, "b", workers=2, progress=False, warn=lambda m: None, force=True)
    assert serial.item_ids == parallel.item_ids
    assert np.array_equal(serial.values["tokens"], parallel.values["tokens"])
