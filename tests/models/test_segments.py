"""Vectorised segment utilities, checked against slow per-segment loops."""

import math

import pytest
import torch
from torch import nn

from pianoeval.models.segments import (Hierarchy, broadcast_to_notes, global_segment_ids, normalised_entropy,
                                       pad_segments, packed_lstm, reverse_within_lengths, segment_mask,
                                       segment_softmax, voicewise_lstm)

# Two items padded to T=7. Item 0 starts in a new beat at note 1 (the case where the
# reference's length inference cut the longest item short, quirk 3.6.2).
BEAT = torch.tensor([[0, 1, 1, 2, 3, 3, 4], [0, 0, 1, 1, 2, 0, 0]])
MEASURE = torch.tensor([[0, 0, 0, 1, 1, 1, 2], [0, 0, 0, 0, 1, 0, 0]])
LENGTHS = torch.tensor([7, 5])
MASK = torch.arange(7).unsqueeze(0) < LENGTHS.unsqueeze(1)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread, as in sweeps: on shared cores oneDNN's multi-threaded LSTM spins badly."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_global_ids_offset_by_earlier_items():
    ids, counts = global_segment_ids(BEAT, MASK)
    assert counts.tolist() == [5, 3]
    assert ids.tolist() == [[0, 1, 1, 2, 3, 3, 4], [5, 5, 6, 6, 7, 0, 0]]


def test_non_contiguous_or_negative_index_raises():
    gap = BEAT.clone()
    gap[1, 2:5] = torch.tensor([2, 2, 3])  # item 1 skips beat 1
    with pytest.raises(ValueError, match="item 1 is not contiguous: beat 1 has no notes"):
        global_segment_ids(gap, MASK, "beat")
    negative = BEAT.clone()
    negative[0, 0] = -1
    with pytest.raises(ValueError, match=">= 0"):
        global_segment_ids(negative, MASK)


def test_hierarchy_and_beat_to_measure():
    hier = Hierarchy.from_indices(BEAT, MEASURE, MASK)
    assert hier.num_beats == 8 and hier.num_measures == 5
    assert hier.beat_measure.tolist() == [0, 0, 1, 1, 2, 3, 3, 4]
    straddling = MEASURE.clone()
    straddling[0, 2] = 1  # beat 1 of item 0 now has notes in measures 0 and 1
    with pytest.raises(ValueError, match="inside one parent"):
        Hierarchy.from_indices(BEAT, straddling, MASK)


def test_segment_softmax_sums_to_one_inside_each_beat_and_measure():
    torch.manual_seed(0)
    hier = Hierarchy.from_indices(BEAT, MEASURE, MASK)
    note_beat = hier.note_beat[MASK]
    scores = 50 * torch.randn(note_beat.numel(), 3)  # large scores: the max shift keeps it finite
    weights = segment_softmax(scores, note_beat, hier.num_beats)
    per_beat = torch.zeros(hier.num_beats, 3).index_add(0, note_beat, weights)
    assert torch.allclose(per_beat, torch.ones_like(per_beat))
    for s in range(hier.num_beats):  # and equals a plain softmax inside each beat
        assert torch.allclose(weights[note_beat == s], torch.softmax(scores[note_beat == s], 0))
    beat_scores = torch.randn(hier.num_beats, 3)
    beat_weights = segment_softmax(beat_scores, hier.beat_measure, hier.num_measures)
    per_measure = torch.zeros(hier.num_measures, 3).index_add(0, hier.beat_measure, beat_weights)
    assert torch.allclose(per_measure, torch.ones_like(per_measure))


def test_broadcast_gives_each_note_its_own_beat_vector():
    hier = Hierarchy.from_indices(BEAT, MEASURE, MASK)
    beat_vectors = torch.arange(hier.num_beats, dtype=torch.float).unsqueeze(1).repeat(1, 4) + 1
    spanned = broadcast_to_notes(beat_vectors, hier.note_beat, MASK)
    assert spanned.shape == (2, 7, 4)
    for b in range(2):
        offset = int(hier.beats_per_item[:b].sum())
        for t in range(7):
            expected = beat_vectors[BEAT[b, t] + offset] if MASK[b, t] else torch.zeros(4)
            assert torch.equal(spanned[b, t], expected)


def test_pad_segments_round_trip():
    nodes = torch.randn(8, 3)
    counts = torch.tensor([5, 3])
    padded = pad_segments(nodes, counts)
    assert padded.shape == (2, 5, 3)
    assert torch.equal(padded[segment_mask(counts)], nodes)
    assert torch.all(padded[1, 3:] == 0)


def test_packed_lstm_ignores_padding():
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True)
    x = torch.randn(2, 6, 3)
    out = packed_lstm(lstm, x, torch.tensor([6, 4]))
    alone = packed_lstm(lstm, x[1:, :4], torch.tensor([4]))
    assert torch.allclose(out[1, :4], alone[0], atol=1e-6)
    assert torch.all(out[1, 4:] == 0)


def _voicewise_loop(lstm, notes, voice, mask):
    """Slow reference: each (item, voice >= 1) sequence through the LSTM on its own."""
    out = torch.zeros(notes.shape[0], notes.shape[1], 2 * lstm.hidden_size)
    for b in range(notes.shape[0]):
        for v in voice[b][mask[b]].unique().tolist():
            if v == 0:
                continue
            where = (voice[b] == v) & mask[b]
            out[b, where] = lstm(notes[b, where].unsqueeze(0))[0][0]
    return out


def test_voicewise_lstm_equals_per_voice_loop():
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True).eval()
    notes = torch.randn(3, 9, 3)
    voice = torch.tensor([[1, 2, 1, 0, 2, 1, 3, 3, 1],
                          [12, 12, 1, 0, 1, 12, 0, 0, 0],
                          [0, 0, 2, 0, 0, 0, 0, 0, 0]])
    mask = torch.arange(9).unsqueeze(0) < torch.tensor([[9], [6], [2]])
    voice = voice * mask  # padding carries voice 0 (the NoteBatch contract)
    fast = voicewise_lstm(lstm, notes, voice, mask)
    assert torch.allclose(fast, _voicewise_loop(lstm, notes, voice, mask), atol=1e-6)
    assert torch.all(fast[voice == 0] == 0)  # inserted extra notes and padding get zeros
    fast.sum().backward()
    assert all(p.grad is not None for p in lstm.parameters())


def test_voicewise_lstm_without_voiced_notes_is_zero():
    lstm = nn.LSTM(3, 4, batch_first=True, bidirectional=True)
    out = voicewise_lstm(lstm, torch.randn(2, 4, 3), torch.zeros(2, 4, dtype=torch.long),
                         torch.ones(2, 4, dtype=torch.bool))
    assert out.shape == (2, 4, 8) and torch.all(out == 0)


def test_normalised_entropy():
    ids = torch.tensor([0, 0, 0, 0, 1, 2, 2])
    uniform = torch.tensor([[0.25], [0.25], [0.25], [0.25], [1.0], [0.5], [0.5]]).repeat(1, 2)
    assert math.isclose(float(normalised_entropy(uniform, ids, 3)), 1.0, rel_tol=1e-6)  # size-1 segment ignored
    one_hot = torch.tensor([[1.0], [0.0], [0.0], [0.0], [1.0], [0.0], [1.0]])
    assert float(normalised_entropy(one_hot, ids, 3)) == 0.0
    assert math.isnan(float(normalised_entropy(torch.ones(2, 1), torch.tensor([0, 1]), 2)))


@pytest.mark.parametrize("layers, bidirectional", [(2, True), (1, False)])
def test_cpu_lstm_path_equals_pack_padded(layers, bidirectional):
    """The CPU direction-by-direction path matches nn.LSTM on packed sequences, gradients too."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, num_layers=layers, batch_first=True, bidirectional=bidirectional).eval()
    x = torch.randn(3, 6, 3, requires_grad=True)
    lengths = torch.tensor([4, 6, 1])
    ours = packed_lstm(lstm, x, lengths)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    reference = pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=6)[0]
    assert torch.allclose(ours, reference, atol=1e-6)
    inputs = [x, *lstm.parameters()]
    for g_ours, g_ref in zip(torch.autograd.grad(ours.square().sum(), inputs),
                             torch.autograd.grad(reference.square().sum(), inputs)):
        assert torch.allclose(g_ours, g_ref, atol=1e-5)


def test_reverse_within_lengths_is_an_involution():
    x = torch.arange(10.0).view(2, 5)
    flipped = reverse_within_lengths(x, torch.tensor([3, 5]))
    assert flipped.tolist() == [[2, 1, 0, 3, 4], [9, 8, 7, 6, 5]]
    assert torch.equal(reverse_within_lengths(flipped, torch.tensor([3, 5])), x)


def test_segment_softmax_gradient():
    scores = torch.randn(6, 2, dtype=torch.double, requires_grad=True)
    ids = torch.tensor([0, 0, 1, 2, 2, 2])
    assert torch.autograd.gradcheck(lambda s: segment_softmax(s, ids, 3), (scores,))


def test_length_buckets_cover_every_row_once_longest_first():
    from pianoeval.models.segments import length_buckets

    lengths = torch.tensor([10, 300, 250, 40, 190, 35])
    buckets = length_buckets(lengths, ratio=0.6)
    assert [b.tolist() for b in buckets] == [[1, 2, 4], [3, 5], [0]]
    assert sorted(torch.cat(buckets).tolist()) == list(range(6))
