"""Note graphs (S2 homogeneous, S2H heterogeneous) from performance MIDI.

Nodes are performed notes (sorted by onset, pitch). The cache stores six raw
attributes per node, ``NODE_ATTRIBUTES``, and ``node_features`` turns them into the
model input (fixed scaling, no fitted statistics):

    pitch/127, pitch class one-hot (12), velocity/127, onset position in the segment
    (seconds/60), log1p(duration s), log1p(IOI s: onset minus the previous onset group),
    sustain pedal at the onset (0-1), voice/MAX_VOICES, voice one-hot (MAX_VOICES)

Onset groups: notes whose onsets lie within ``CHORD_TOLERANCE`` (35 ms) of the
group's first onset are one chord (a performed chord is never exactly together).

Edge sets (each a list of directed ``(source, target)`` pairs, both directions stored):

* S2 (``HOMOGENEOUS_EDGES``): ``temporal`` -- every note of onset group g to every note
  of group g+1 (temporal adjacency); ``harmonic`` -- notes of the same onset group (the
  harmonic intervals; the encoder sees the interval through the edge attribute);
  ``voice`` -- consecutive notes of one voice.
* S2H (``HETERO_EDGES``, the score-graph relations of Karystinaios & Widmer, with
  performance tolerances): ``onset`` -- same onset group; ``during`` -- j starts while i
  sounds (onset_i < onset_j < offset_i, other group); ``follow`` -- j starts where i ends
  (|onset_j - offset_i| <= tolerance); ``silence`` -- i has no ``follow`` partner and j
  belongs to the first onset group after i's release (a rest lies between them).

Voices (performance MIDI has none): ``assign_voices`` is a greedy pitch-contour
separation, ours. Onset groups are visited in time order; inside a group notes go
from the highest pitch down. A note joins the free voice (its last note released, with
``CHORD_TOLERANCE`` slack) whose last pitch is nearest, if that leap is at most
``MAX_LEAP`` (12) semitones; otherwise it opens a new voice, up to ``MAX_VOICES`` (8),
after which it joins the nearest voice, free or not. No voice takes two notes of one
onset group. Voices are numbered 1.. in order of first appearance.
"""

from __future__ import annotations

import numpy as np

from pianoeval.data.midi import CHORD_TOLERANCE, NoteSequence, RepresentationError, onset_groups

MAX_LEAP = 12  # semitones
MAX_VOICES = 8
NODE_ATTRIBUTES = ("onset", "duration", "pitch", "velocity", "pedal", "voice")
HOMOGENEOUS_EDGES = ("temporal", "harmonic", "voice")
HETERO_EDGES = ("onset", "during", "follow", "silence")
EDGE_SETS = HOMOGENEOUS_EDGES + HETERO_EDGES
NODE_FEATURE_DIM = 1 + 12 + 1 + 4 + 1 + MAX_VOICES
VELOCITY_FEATURE = 13  # columns of node_features masked and predicted in pre-training
TIMING_FEATURES = (14, 15, 16)  # onset position, log duration, log IOI


def assign_voices(seq: NoteSequence, groups: np.ndarray | None = None) -> np.ndarray:
    """[N] int voice of each note, 1..MAX_VOICES (see the module docstring)."""
    groups = onset_groups(seq.onset) if groups is None else groups
    pitch, onset, offset = seq.pitch.tolist(), seq.onset.tolist(), seq.offset.tolist()  # plain floats: fast loop
    voice = [0] * len(pitch)
    last_pitch: list[int] = []
    last_offset: list[float] = []
    starts = _group_starts(groups).tolist()
    for g in range(len(starts) - 1):
        taken: set[int] = set()
        for i in sorted(range(starts[g], starts[g + 1]), key=lambda n: -pitch[n]):
            candidates = [v for v in range(len(last_pitch)) if v not in taken]
            free = [v for v in candidates if last_offset[v] <= onset[i] + CHORD_TOLERANCE]
            best = min(free, key=lambda v: abs(last_pitch[v] - pitch[i]), default=None)
            if best is None or abs(last_pitch[best] - pitch[i]) > MAX_LEAP:
                if len(last_pitch) < MAX_VOICES:
                    last_pitch.append(0)
                    last_offset.append(0.0)
                    best = len(last_pitch) - 1
                elif best is None:
                    best = min(candidates or range(len(last_pitch)), key=lambda v: abs(last_pitch[v] - pitch[i]))
            voice[i] = best + 1
            taken.add(best)
            last_pitch[best] = pitch[i]
            last_offset[best] = offset[i]
    return np.asarray(voice, dtype=np.int64)


def _both_ways(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[E, 2] unique directed pairs, each edge in both directions."""
    src, dst = np.concatenate([source, target]).astype(np.int64), np.concatenate([target, source]).astype(np.int64)
    if len(src) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    size = int(max(src.max(), dst.max())) + 1
    keys = np.unique(src * size + dst)
    return np.stack([keys // size, keys % size], axis=1)


def _group_starts(groups: np.ndarray) -> np.ndarray:
    """[G + 1] index of each onset group's first note (notes are sorted by group)."""
    return np.searchsorted(groups, np.arange(int(groups.max()) + 2))


def _ranges(first: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(first[k], first[k] + sizes[k])`` over k."""
    total = int(sizes.sum())
    return np.repeat(first, sizes) + np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)


def _members(starts: np.ndarray, group_ids: np.ndarray) -> np.ndarray:
    """The notes of each listed group, concatenated in order."""
    group_ids = np.asarray(group_ids, dtype=np.int64)
    return _ranges(starts[group_ids], starts[group_ids + 1] - starts[group_ids])


def _group_pairs(starts: np.ndarray, first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) with i in group first[k] and j in group second[k], over all k."""
    sizes_a, sizes_b = starts[first + 1] - starts[first], starts[second + 1] - starts[second]
    total = sizes_a * sizes_b
    pair = np.repeat(np.arange(len(first)), total)
    local = _ranges(np.zeros(len(first), dtype=np.int64), total)
    return starts[first][pair] + local // sizes_b[pair], starts[second][pair] + local % sizes_b[pair]


def edge_sets(seq: NoteSequence, groups: np.ndarray, voice: np.ndarray) -> dict[str, np.ndarray]:
    """Every edge set of ``EDGE_SETS`` as [E, 2] int arrays (see the module docstring)."""
    starts = _group_starts(groups)
    g_count = len(starts) - 1
    edges: dict[str, np.ndarray] = {}
    edges["temporal"] = _both_ways(*_group_pairs(starts, np.arange(g_count - 1), np.arange(1, g_count)))
    same_i, same_j = _group_pairs(starts, np.arange(g_count), np.arange(g_count))
    edges["harmonic"] = edges["onset"] = _both_ways(same_i[same_i < same_j], same_j[same_i < same_j])
    by_voice = np.lexsort((seq.onset, voice))
    consecutive = voice[by_voice[:-1]] == voice[by_voice[1:]]
    edges["voice"] = _both_ways(by_voice[:-1][consecutive], by_voice[1:][consecutive])
    # pairwise relations on onsets / offsets: N is one segment's notes (hundreds), N x N is fine
    onset_j, offset_i = seq.onset[None, :], seq.offset[:, None]
    other_group = groups[:, None] != groups[None, :]
    during = (seq.onset[:, None] < onset_j) & (onset_j < offset_i - CHORD_TOLERANCE) & other_group
    follow = (np.abs(onset_j - offset_i) <= CHORD_TOLERANCE) & other_group
    edges["during"] = _both_ways(*np.nonzero(during))
    edges["follow"] = _both_ways(*np.nonzero(follow))
    lonely = np.nonzero(~follow.any(axis=1))[0]
    after = np.searchsorted(seq.onset[starts[:-1]], seq.offset[lonely] + CHORD_TOLERANCE, side="right")
    lonely, after = lonely[after < g_count], after[after < g_count]
    edges["silence"] = _both_ways(np.repeat(lonely, starts[after + 1] - starts[after]), _members(starts, after))
    return {name: edges[name] for name in EDGE_SETS}


def represent(seq: NoteSequence) -> dict[str, np.ndarray]:
    """Raw node attributes ``nodes`` [N, 6] float32 and ``edges_<set>`` [E, 2] int16."""
    if len(seq) < 2:
        raise RepresentationError(f"{len(seq)} note(s): a graph needs at least 2")
    if len(seq) > np.iinfo(np.int16).max:
        raise RepresentationError(f"{len(seq)} notes: more than the int16 edge store allows")
    groups = onset_groups(seq.onset)
    voice = assign_voices(seq, groups)
    pedal = seq.sustain_at(seq.onset) / 127.0
    nodes = np.stack([seq.onset, seq.duration, seq.pitch, seq.velocity, pedal, voice], axis=1).astype(np.float32)
    out = {"nodes": nodes}
    for name, pairs in edge_sets(seq, groups, voice).items():
        out[f"edges_{name}"] = pairs.astype(np.int16)
    return out


def node_features(nodes: np.ndarray) -> np.ndarray:
    """Model input [N, NODE_FEATURE_DIM] from the raw attributes of one graph's nodes."""
    onset, duration, pitch, velocity, pedal, voice = (nodes[:, k] for k in range(6))
    groups = onset_groups(onset.astype(np.float64))
    group_onset = onset[np.searchsorted(groups, np.arange(groups.max() + 1))]
    ioi = np.diff(group_onset, prepend=group_onset[0])[groups]
    pitch_class = np.eye(12, dtype=np.float32)[pitch.astype(np.int64) % 12]
    voice_hot = np.eye(MAX_VOICES, dtype=np.float32)[np.clip(voice.astype(np.int64) - 1, 0, MAX_VOICES - 1)]
    columns = [pitch / 127.0, *pitch_class.T, velocity / 127.0, onset / 60.0, np.log1p(np.maximum(duration, 0)),
               np.log1p(np.maximum(ioi, 0)), pedal, voice / MAX_VOICES, *voice_hot.T]
    return np.stack(columns, axis=1).astype(np.float32)
