"""Vectorised segment utilities for the HAN hierarchy (notes -> beats -> measures, voices).

Layouts used throughout:

* **Note level**: padded ``[B, T, C]`` plus a boolean ``note_mask`` ``[B, T]`` (True on
  real notes). Padded rows of every note-level output are exactly zero.
* **Flat segments**: ``[S, C]``, one row per beat (or measure, or voice sequence) of the
  *whole batch*, ordered item-major. A segment's row number is its *global id*: its
  per-item index plus the number of segments in the items before it.
* **Padded segments**: ``[B, N_max, C]`` plus per-item counts, for packed LSTMs.

Nothing here loops in Python over batch items, beats, measures or voices; the only
host syncs are the segment totals needed to allocate tensors and pack sequences.

Two quirks of the reference implementation (reference doc, section 3.6) are fixed here
on purpose: padding is never inferred from zero feature sums or index differences;
every function takes the true ``note_mask`` / lengths / counts instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def segment_counts(index: torch.Tensor, note_mask: torch.Tensor) -> torch.Tensor:
    """Segments per item, ``[B]`` int64: ``1 + max(index)`` over the item's real notes.

    ``index`` is ``[B, T]``, 0-based and contiguous per item (``NoteBatch`` contract).
    """
    return index.masked_fill(~note_mask, -1).amax(dim=1) + 1


def global_segment_ids(index: torch.Tensor, note_mask: torch.Tensor,
                       what: str = "segment") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-item contiguous indices -> batch-global segment ids.

    Returns ``(ids, counts)``: ``ids`` ``[B, T]`` with ``ids[b, t] = index[b, t] +
    sum(counts[:b])`` on real notes and 0 on padding (a valid row, so gathers need no
    clamping; callers mask), and ``counts`` ``[B]``.

    Raises ``ValueError`` if an item has a negative index or skips a segment number:
    an empty segment would silently become an all-zero node in the LSTM above it.
    """
    real = index[note_mask]
    if real.numel() and int(real.min()) < 0:
        raise ValueError(f"{what} index must be >= 0 on real notes, got {int(real.min())}")
    counts = segment_counts(index, note_mask)
    offsets = torch.cumsum(counts, 0) - counts
    ids = torch.where(note_mask, index + offsets.unsqueeze(1), torch.zeros_like(index))
    total = int(counts.sum())
    present = torch.bincount(ids[note_mask], minlength=total) > 0
    if not bool(present.all()):
        missing = int((~present).nonzero()[0, 0])
        item = int(torch.searchsorted(torch.cumsum(counts, 0), missing, right=True))
        raise ValueError(
            f"{what} index of batch item {item} is not contiguous: {what} "
            f"{missing - int(offsets[item])} has no notes (indices must be 0-based and "
            f"contiguous per item, empty {what}s removed)"
        )
    return ids, counts


def segment_sum(values: torch.Tensor, segment_ids: torch.Tensor, num_segments: int) -> torch.Tensor:
    """``out[s] = sum of values[n] with segment_ids[n] == s``; ``values`` ``[N, ...]``."""
    out = values.new_zeros((num_segments,) + tuple(values.shape[1:]))
    return out.index_add(0, segment_ids, values)


def segment_softmax(scores: torch.Tensor, segment_ids: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Softmax of ``scores`` ``[N, H]`` over the rows of each segment, per column (head).

    The per-segment maximum is subtracted for stability (``scatter_reduce`` amax); it is
    detached because softmax is shift invariant, so the gradient is unchanged.
    """
    index = segment_ids.unsqueeze(-1).expand_as(scores)
    seg_max = scores.new_full((num_segments, scores.shape[-1]), -math.inf)
    seg_max = seg_max.scatter_reduce(0, index, scores.detach(), reduce="amax", include_self=True)
    exp = torch.exp(scores - seg_max[segment_ids])
    denom = scores.new_zeros((num_segments, scores.shape[-1])).scatter_add(0, index, exp)
    return exp / denom[segment_ids]


def broadcast_to_notes(nodes: torch.Tensor, note_segment: torch.Tensor,
                       note_mask: torch.Tensor) -> torch.Tensor:
    """Give every real note a copy of its own segment's vector: ``[S, C] -> [B, T, C]``.

    A gather by global id (no dense ``B x T x N`` span matrix). Uses the true note mask,
    so every real note of every item is covered (fixes quirk 3.6.2, where the reference
    inferred lengths from index differences and could cut the longest item short);
    padded rows are zero.
    """
    spanned = nodes[note_segment]
    return spanned * note_mask.unsqueeze(-1).to(spanned.dtype)


def segment_parents(child_ids: torch.Tensor, parent_ids: torch.Tensor, num_children: int,
                    what: str = "beat") -> torch.Tensor:
    """The parent of each child segment, ``[num_children]`` (e.g. the measure of each beat).

    ``child_ids`` / ``parent_ids`` are the global ids of the same notes (``[N]``). Raises
    ``ValueError`` if the notes of one child disagree about their parent (a beat that
    straddles a bar line), which the hierarchy cannot represent.
    """
    low = parent_ids.new_full((num_children,), torch.iinfo(parent_ids.dtype).max)
    high = parent_ids.new_full((num_children,), -1)
    low = low.scatter_reduce(0, child_ids, parent_ids, reduce="amin", include_self=True)
    high = high.scatter_reduce(0, child_ids, parent_ids, reduce="amax", include_self=True)
    if not bool(torch.equal(low, high)):
        bad = int((low != high).nonzero()[0, 0])
        raise ValueError(f"global {what} {bad} has notes in different parent segments "
                         f"({int(low[bad])} and {int(high[bad])}); every {what} must lie "
                         f"inside one parent")
    return low


def segment_mask(counts: torch.Tensor, max_count: int | None = None) -> torch.Tensor:
    """``[B, N_max]`` bool, True on the first ``counts[b]`` slots of each row."""
    width = int(counts.max()) if max_count is None else max_count
    return torch.arange(width, device=counts.device).unsqueeze(0) < counts.unsqueeze(1)


def pad_segments(nodes: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Flat item-major segments ``[S, C]`` -> zero-padded ``[B, N_max, C]``.

    Inverse: ``padded[segment_mask(counts)]``.
    """
    mask = segment_mask(counts)
    padded = nodes.new_zeros(mask.shape + tuple(nodes.shape[1:]))
    padded[mask] = nodes
    return padded


def packed_lstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Run a ``batch_first`` (Bi)LSTM on ``[B, T, C]`` as if packed to ``lengths``.

    Same result as ``pack_padded_sequence -> lstm -> pad_packed_sequence``: output
    ``[B, T, dirs * hidden]``, zero at ``t >= lengths[b]``, and each row independent of
    the other rows' lengths. On CUDA it is exactly that (cuDNN runs packed sequences
    natively). On CPU it runs direction by direction on the padded tensor instead, see
    ``_lstm_by_direction``: PyTorch's CPU backward through packed sequences slices the
    packed input once per time step and costs O(T^2) (about 10x slower at T=400 notes).
    The CPU path uses oneDNN's LSTM kernel, which is fast with one intra-op thread but
    spins badly with several threads on busy cores: run CPU trials with
    ``torch.set_num_threads(1)``.

    Under CPU autocast (``train.precision: bf16-mixed`` on a CPU) the LSTM runs in float32
    and returns float32: oneDNN's bfloat16 LSTM needs AVX-512 and fails on other CPUs
    ("could not create a primitive descriptor for the LSTM forward propagation
    primitive"), so a CPU run computes the same on every machine. On CUDA, autocast runs
    cuDNN's LSTM in the autocast type.
    """
    if x.is_cuda:
        packed = pack_padded_sequence(x, lengths.detach().cpu(), batch_first=True, enforce_sorted=False)
        out, _ = lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out
    if torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return _lstm_by_direction(lstm, x.float(), lengths)
    return _lstm_by_direction(lstm, x, lengths)


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse the first ``lengths[b]`` steps of each row of ``[B, T, ...]``; padding stays put.

    Its own inverse.
    """
    steps = torch.arange(x.shape[1], device=x.device)
    ends = lengths.to(x.device).unsqueeze(1)
    order = torch.where(steps < ends, ends - 1 - steps, steps)  # [B, T]
    return x.gather(1, order.view(order.shape + (1,) * (x.dim() - 2)).expand_as(x))


# A bucket of rows is cut where a row is shorter than this fraction of the bucket's
# longest: padded steps cost as much as real ones, and a batch of notes or voices mixes
# lengths from 20 to 300.
BUCKET_RATIO = 0.6


def length_buckets(lengths: torch.Tensor, ratio: float | None = None) -> list[torch.Tensor]:
    """Row indices grouped by similar length (longest first), for padded LSTM runs."""
    ratio = BUCKET_RATIO if ratio is None else ratio
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_lengths = lengths[order].tolist()
    buckets, start = [], 0
    for i in range(1, len(sorted_lengths) + 1):
        if i == len(sorted_lengths) or sorted_lengths[i] < ratio * sorted_lengths[start]:
            buckets.append(order[start:i])
            start = i
    return buckets


def _lstm_by_direction(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Run ``_lstm_padded`` per length bucket (rows are independent: same result, less padding)."""
    buckets = length_buckets(lengths)
    if len(buckets) == 1:
        return _lstm_padded(lstm, x, lengths)
    out = x.new_zeros(x.shape[0], x.shape[1], lstm.hidden_size * (2 if lstm.bidirectional else 1))
    for rows in buckets:
        steps = int(lengths[rows].max())
        out[rows, :steps] = _lstm_padded(lstm, x[rows, :steps], lengths[rows])
    return out


def _lstm_padded(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The packed-equivalent LSTM on padded input, layer by layer and direction by direction.

    A forward direction is causal, so padding after a row's end cannot reach its real
    steps. The backward direction runs on ``reverse_within_lengths(x)``, which puts each
    row's last real step first and padding still at the end. The module's own weights are
    used (``torch.lstm``, the op behind ``nn.LSTM``), so parameters and state dicts are
    those of the ``nn.LSTM``; dropout between layers as in ``nn.LSTM``.
    """
    if not lstm.batch_first or not lstm.bias or lstm.proj_size:
        raise ValueError("packed_lstm needs an nn.LSTM with batch_first=True, bias=True, proj_size=0")
    h0 = x.new_zeros(1, x.shape[0], lstm.hidden_size)
    suffixes = ("", "_reverse") if lstm.bidirectional else ("",)
    for layer in range(lstm.num_layers):
        if layer:
            x = F.dropout(x, lstm.dropout, lstm.training)
        outputs = []
        for suffix in suffixes:
            weights = [getattr(lstm, f"{name}_l{layer}{suffix}")
                       for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            steps = reverse_within_lengths(x, lengths) if suffix else x
            out = torch.lstm(steps, (h0, h0), weights, True, 1, 0.0, lstm.training, False, True)[0]
            outputs.append(reverse_within_lengths(out, lengths) if suffix else out)
        x = torch.cat(outputs, dim=-1)
    return x * segment_mask(lengths.to(x.device), x.shape[1]).unsqueeze(-1).to(x.dtype)


def voicewise_lstm(lstm: nn.LSTM, notes: torch.Tensor, voice: torch.Tensor,
                   note_mask: torch.Tensor) -> torch.Tensor:
    """The reference's voice LSTM (section 2.5), as one packed call.

    Every (item, voice >= 1) pair is one sequence: that item's notes of that voice, in
    note order. All sequences go through the shared ``lstm`` in one packed batch, which
    equals the reference's loop over voice numbers because the LSTM is shared and the
    sequences are independent. Outputs are scattered back to the notes' positions.
    Notes with voice 0 (inserted extra notes) and padding get zeros.

    Args:
        notes: ``[B, T, C]`` embedded notes. voice: ``[B, T]`` int. note_mask: ``[B, T]``.
    Returns:
        ``[B, T, dirs * hidden]``.
    """
    batch, steps, _ = notes.shape
    out_size = lstm.hidden_size * (2 if lstm.bidirectional else 1)
    voiced = note_mask & (voice > 0)
    if not bool(voiced.any()):
        return notes.new_zeros(batch, steps, out_size)
    x = notes[voiced]  # [N, C], item-major, in note order within each item
    item = torch.arange(batch, device=notes.device).unsqueeze(1).expand(batch, steps)[voiced]
    v = voice[voiced]
    # one id per (item, voice) pair; unique() numbers them in (item, voice) order
    _, seq = torch.unique(item * (int(v.max()) + 1) + v, return_inverse=True)
    lengths = torch.bincount(seq)
    order = torch.argsort(seq, stable=True)  # stable: keeps note order inside a sequence
    seq_sorted = seq[order]
    starts = torch.cumsum(lengths, 0) - lengths
    position = torch.arange(seq.numel(), device=notes.device) - starts[seq_sorted]
    padded = x.new_zeros(lengths.numel(), int(lengths.max()), x.shape[-1])
    padded[seq_sorted, position] = x[order]
    out = packed_lstm(lstm, padded, lengths)
    flat = out.new_empty(seq.numel(), out_size)
    flat[order] = out[seq_sorted, position]
    result = out.new_zeros(batch, steps, out_size)  # the LSTM's dtype (float32 under CPU autocast)
    result[voiced] = flat
    return result


def normalised_entropy(weights: torch.Tensor, segment_ids: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Mean normalised attention entropy, a detached scalar in [0, 1].

    ``weights`` ``[N, H]`` are per-segment softmax weights (each segment's column sums to
    1). For every segment with more than one row and every head: ``-sum(a log a) /
    log(size)``; 1 = uniform, 0 = one row takes all. Averaged over those segments and
    heads. NaN when no segment has more than one row (the quantity is undefined).
    """
    with torch.no_grad():
        plogp = torch.special.xlogy(weights, weights)
        entropy = -segment_sum(plogp, segment_ids, num_segments)  # [S, H]
        size = torch.bincount(segment_ids, minlength=num_segments).to(weights.dtype)
        multi = size > 1
        if not bool(multi.any()):
            return weights.new_tensor(float("nan"))
        return (entropy[multi] / size[multi].log().unsqueeze(-1)).mean()


@dataclass
class Hierarchy:
    """Global beat / measure ids of one ``NoteBatch``.

    Attributes:
        note_mask: ``[B, T]`` True on real notes.
        note_beat, note_measure: ``[B, T]`` global beat / measure id of every note (0 on
            padding).
        beats_per_item, measures_per_item: ``[B]``.
        beat_measure: ``[num_beats]`` global measure id of every global beat.
    """

    note_mask: torch.Tensor
    note_beat: torch.Tensor
    note_measure: torch.Tensor
    beats_per_item: torch.Tensor
    measures_per_item: torch.Tensor
    beat_measure: torch.Tensor

    @property
    def num_beats(self) -> int:
        return int(self.beat_measure.shape[0])

    @property
    def num_measures(self) -> int:
        return int(self.measures_per_item.sum())

    @classmethod
    def from_indices(cls, beat_index: torch.Tensor, measure_index: torch.Tensor,
                     note_mask: torch.Tensor) -> "Hierarchy":
        """Validate the per-item indices and derive global ids (see ``global_segment_ids``)."""
        note_beat, beats = global_segment_ids(beat_index, note_mask, "beat")
        note_measure, measures = global_segment_ids(measure_index, note_mask, "measure")
        beat_measure = segment_parents(note_beat[note_mask], note_measure[note_mask],
                                       int(beats.sum()), "beat")
        return cls(note_mask, note_beat, note_measure, beats, measures, beat_measure)
