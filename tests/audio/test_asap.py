"""ASAP cross-performer windows from the real metadata and beat annotations."""

import pytest
from pianoeval.audio.asap import ASAP_GROUP_OFFSET, asap_windows, split_by_piece


@pytest.mark.asap
def test_windows_are_same_passages_of_several_performers(percepiano):
    windows = asap_windows(window_seconds=4.0, windows_per_performance=2, max_pieces=5)
    assert len({w.piece for w in windows}) == 5
    by_group = {}
    for w in windows:
        by_group.setdefault(w.group, []).append(w)
    for group, members in by_group.items():
        assert len({m.piece for m in members}) == 1 and len({m.performance for m in members}) == len(members) >= 2
        assert group >= ASAP_GROUP_OFFSET > max(percepiano.group_of.values())
    assert all(w.item.duration == 4.0 and w.item.start >= 0 and w.item.midi.is_file() for w in windows)
    train, held = split_by_piece(windows, 0.2)
    assert not {w.piece for w in train} & {w.piece for w in held} and len(held) > 0
