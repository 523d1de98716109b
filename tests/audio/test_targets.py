"""Alignment targets of rendered items: the notes the render played, on the backbone's grid."""

import numpy as np
import pytest

from pianoeval.audio.asap import asap_windows
from pianoeval.audio.features import AudioItem
from pianoeval.audio.targets import build_targets, item_notes, item_targets
from pianoeval.data.curves import CHANNELS
from pianoeval.data.midi import read_midi


def test_a_segment_targets_its_whole_performance(percepiano):
    segment = percepiano.segments[5]
    midi = segment.performance_midi(percepiano.root)
    curves, roll = item_targets(AudioItem(segment.segment_id, midi), 12.5, 40)
    seq = read_midi(midi)
    assert curves.shape == (40, len(CHANNELS)) and roll.shape == (40, 88) and curves.dtype == np.float32
    assert roll.sum() == len({(int(np.floor(o * 12.5)), p) for o, p in zip(seq.onset, seq.pitch) if o * 12.5 < 40})


@pytest.mark.asap
def test_an_excerpt_targets_only_the_notes_rendered_on_its_clock():
    window = asap_windows(4.0, 2, max_pieces=1, warn=lambda msg: None)[-1]  # the second window: start > 0
    item = window.item
    assert item.start > 0
    notes = item_notes(item)
    full = read_midi(item.midi)
    inside = (full.onset >= item.start) & (full.onset < item.start + item.duration)
    assert len(notes) == inside.sum() and notes.onset.min() >= 0 and notes.offset.max() <= item.duration
    np.testing.assert_allclose(np.sort(notes.onset), np.sort(full.onset[inside] - item.start))


def test_unusable_items_are_skipped_and_counted(percepiano, tmp_path):
    good = percepiano.segments[0]
    broken = tmp_path / "broken.mid"
    broken.write_bytes(b"MThd not really")
    items = [AudioItem(good.segment_id, good.performance_midi(percepiano.root)),
             AudioItem("broken", broken),
             AudioItem("silent-excerpt", good.performance_midi(percepiano.root), start=10_000.0, duration=5.0),
             AudioItem("no-frames", good.performance_midi(percepiano.root))]
    lines = []
    table = build_targets(items, {good.segment_id: 30, "broken": 30, "silent-excerpt": 30}, 12.5, warn=lines.append)
    assert list(table.targets) == [good.segment_id]
    assert set(table.skipped) == {"broken", "silent-excerpt"}  # "no-frames" had no render: not an item here
    assert "does not parse" in table.skipped["broken"] and "no notes" in table.skipped["silent-excerpt"]
    assert lines == [table.line()] and "2 skipped" in lines[0]
