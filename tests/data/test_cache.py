"""Extraction, caching and bad input: real files, corrupted on purpose."""

import json
import shutil
import time

import numpy as np
import pytest

from pianoeval.data import load_percepiano
from pianoeval.data import cache as cache_module
from pianoeval.data.cache import ALIGNMENTS_FILE, build_store, load_alignments
from pianoeval.paths import BUNDLED_PERCEPIANO

GOOD = ["Schubert_D960_mv3_8bars_8_13", "Schubert_D960_mv3_8bars_1_13", "Beethoven_WoO80_var27_8bars_3_15"]
CORRUPT, EMPTY, BAD_SCORE, WRONG_PIECE = (
    "Schubert_D960_mv3_8bars_2_13", "Schubert_D960_mv3_8bars_3_13",
    "Schubert_D935_no.3_4bars_2_42", "Schubert_D960_mv2_8bars_3_05",
)


@pytest.fixture
def small_root(tmp_path, monkeypatch):
    """A PercePiano folder with three good segments and four broken on purpose."""
    monkeypatch.setenv("PIANOEVAL_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "percepiano"
    for sub in ("performance_midi", "score_mxl", "labels"):
        (root / sub).mkdir(parents=True)
    src = BUNDLED_PERCEPIANO
    ids = GOOD + [CORRUPT, EMPTY, BAD_SCORE, WRONG_PIECE]
    for sid in ids:
        shutil.copy(src / "performance_midi" / f"{sid}.mid", root / "performance_midi")
        piece, _, seg = sid.rsplit("_", 2)
        shutil.copy(src / "score_mxl" / f"{piece}_Score_{seg}.mxl", root / "score_mxl")
    midi = (root / "performance_midi" / f"{CORRUPT}.mid").read_bytes()
    (root / "performance_midi" / f"{CORRUPT}.mid").write_bytes(midi[:14] + bytes(len(midi) - 14))  # garbled track data
    (root / "performance_midi" / f"{EMPTY}.mid").write_bytes(b"")
    score = root / "score_mxl" / "Schubert_D935_no.3_4bars_Score_42.mxl"
    score.write_bytes(score.read_bytes()[:500])  # a score cut short
    # a performance of another piece under this segment's name: cannot be aligned
    shutil.copy(src / "performance_midi" / "Beethoven_WoO80_var3_8bars_7_2.mid", root / "performance_midi" / f"{WRONG_PIECE}.mid")
    for name in ("label_2round_mean_reg_19_with0_rm_highstd0.json", "label_2round_std_reg_19_with0_rm_highstd0.json"):
        labels = json.loads((src / "labels" / name).read_text())
        (root / "labels" / name).write_text(json.dumps({k: labels[k] for k in ids}))
    alignments = tmp_path / "alignments.npz"
    shutil.copy(ALIGNMENTS_FILE, alignments)
    return root, alignments


def test_bad_items_are_skipped_counted_and_reported(small_root):
    root, alignments = small_root
    before = ALIGNMENTS_FILE.read_bytes()
    messages = []
    store = build_store(root, workers=1, progress=False, warn=messages.append, alignments_file=alignments)
    assert store.segment_ids == sorted(GOOD)
    reasons = {reason: [sid for sid, _ in items] for reason, items in store.skipped.items()}
    assert reasons == {"midi_unusable": [CORRUPT, EMPTY], "score_unusable": [BAD_SCORE], "alignment_failed": [WRONG_PIECE]}
    skip_lines = [m for m in messages if m.startswith("[data] skip")]
    assert len(skip_lines) == 4 and all(len(line.splitlines()) == 1 for line in skip_lines)
    assert any("empty MIDI" in line for line in skip_lines)
    assert "4 skipped" in messages[-1]
    assert ALIGNMENTS_FILE.read_bytes() == before  # the shipped alignments are never touched by tests


def test_second_load_hits_the_cache(small_root, monkeypatch):
    root, alignments = small_root
    first = build_store(root, workers=1, progress=False, warn=lambda m: None, alignments_file=alignments)

    def no_extraction(*args, **kwargs):
        raise AssertionError("the second load extracted features again instead of reading the cache")

    monkeypatch.setattr(cache_module, "_extract_group", no_extraction)  # counted, not timed: a loaded machine is slow
    second = build_store(root, workers=1, progress=False, warn=lambda m: None, alignments_file=alignments)
    assert second.key == first.key and np.array_equal(second.values, first.values)
    assert second.skipped.keys() == first.skipped.keys()


def test_stale_alignment_is_detected_and_recomputed(small_root):
    root, alignments = small_root
    stored = load_alignments(alignments)
    sid = GOOD[0]
    stored[sid] = stored[sid][:, ::-1].copy()  # score and performance rows swapped: pitches no longer agree
    np.savez_compressed(open(alignments, "wb"), **stored)
    messages = []
    build_store(root, workers=1, progress=False, warn=messages.append, alignments_file=alignments)
    assert any("stale" in m for m in messages)
    repaired = load_alignments(alignments)[sid]
    assert not np.array_equal(repaired, stored[sid])


def test_warm_load_of_all_segments_is_fast(percepiano):
    started = time.time()
    data = load_percepiano(warn=lambda m: None)
    store = data.note_features
    for split in ("performer", "piece"):
        data.note_datasets(split, 0, "full")
    assert len(store.segment_ids) == 1202
    assert time.time() - started < 2.0 * 3  # load + two sets of tensors; the load alone is timed in benchmarks
