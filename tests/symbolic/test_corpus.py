"""ASAP windows at annotated downbeats, cross-performer music keys, PercePiano items."""

import pytest

from pianoeval.errors import DataError
from pianoeval.paths import asap_root
from pianoeval.symbolic.corpus import (WINDOW_BARS, asap_items, music_groups, percepiano_items, read_downbeats,
                                       windows_at_downbeats)

FUGUE = "Bach/Fugue/bwv_848"  # nine performers of one fugue


def test_windows_cover_eight_bars_each_and_keep_a_long_remainder():
    downbeats = [float(k) for k in range(21)]  # 20 bars + the closing downbeat
    assert windows_at_downbeats(downbeats) == [(0.0, 8.0), (8.0, 16.0), (16.0, None)]
    assert windows_at_downbeats(downbeats[:19]) == [(0.0, 8.0), (8.0, 16.0)]  # 2-bar tail dropped
    assert windows_at_downbeats([0.0, 1.0, 2.0]) == [(0.0, None)]  # a short piece is one window


@pytest.mark.asap
def test_asap_windows_of_one_fugue_share_music_keys_across_performers():
    items, skipped = asap_items(folders=[FUGUE], warn=lambda m: None)
    performers = {i.performer for i in items}
    assert len(performers) == 9 and skipped == {"missing_file": 0, "bad_annotations": 0, "short_window": 0}
    downbeats = read_downbeats(asap_root() / FUGUE / "Lee01M_annotations.txt")
    lee = [i for i in items if i.performer == "Lee01M"]
    assert len(lee) == len(windows_at_downbeats(downbeats))
    assert lee[1].start == downbeats[WINDOW_BARS] and lee[1].end == downbeats[2 * WINDOW_BARS]
    groups = music_groups(items, offset=1_000_000)
    assert min(groups.values()) == 1_000_000
    first = [i for i in items if i.music_key == f"{FUGUE}#w0"]
    assert len(first) == 9 and f"{FUGUE}#w0" in groups


def test_percepiano_items_are_whole_files_with_score_keys(percepiano):
    items = percepiano_items(percepiano)
    assert len(items) == 1202 and all(i.start == 0.0 and i.end is None for i in items)
    assert {i.music_key for i in items} == {s.score_key for s in percepiano.segments}


def test_missing_asap_gives_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("PIANOEVAL_ASAP", str(tmp_path))
    monkeypatch.setattr("pianoeval.paths.REPO_ROOT", tmp_path / "nowhere")
    with pytest.raises(DataError, match="PIANOEVAL_ASAP"):
        asap_items()
