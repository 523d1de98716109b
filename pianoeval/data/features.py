"""Score-aligned note features: one row per note, as the HAN reads them.

``build_rows`` turns a ScoreTable, a PerformanceTable and their Alignment into the
per-row raw table (reference section 1.1):

* rows are score notes in score order; performed notes without a score partner are
  inserted as extra rows just before the matched row whose performed note follows
  them (at the end if none does). An inserted row has zero score features except
  beat_position, xml_position and measure_length, copies its neighbour's beat /
  measure indices and tempo / dynamics context, has voice 0, and carries its own
  velocity, pedal and raw MIDI attributes;
* score notes that were not played keep their score features; their raw MIDI
  attributes are 0; velocity and pedal_at_start / at_end / cut / soft repeat the
  previous row's; onset deviation, articulation, pedal_refresh and both pedal times
  are 0.

Tempo (our algorithm, documented in docs/features.md): matched non-grace notes give
anchors (score quarter -> median performed onset of that score position); anchors
that go back in time are dropped; the performed time of any score position is the
piecewise-linear interpolation of the anchors (linear extrapolation at the ends). The
tempo of a beat (measure, section) is its length in quarters over its interpolated
duration, in quarter notes per minute; features use log10(qpm). Onset deviation is
the distance, in quarters at the beat's tempo, between the performed onset and the
in-tempo position of the note inside its beat.

``COLUMNS`` is the ordered column spec (index, name, scaling, source) of the
``full`` (101) and ``perf_only`` (9) feature sets; docs/features.md is generated
from it and a test keeps the two identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pianoeval.data.alignment import Alignment
from pianoeval.data.performance import PerformanceTable
from pianoeval.data.score import NOTATION_FLAGS, ScoreTable

ROW_MATCHED, ROW_UNPLAYED, ROW_EXTRA = 0, 1, 2
QPM_RANGE = (10.0, 1000.0)


class FeatureError(ValueError):
    """A segment whose features cannot be computed (e.g. too few matched notes)."""


@dataclass(frozen=True)
class Column:
    name: str
    source: str  # key of the raw row table
    scaling: str  # "z" (z-scored on training folds), "raw", "binary"
    origin: str  # "score", "performance", "midi"
    description: str


def _cols(prefix: str, count: int, scaling: str, origin: str, description: str) -> list[Column]:
    return [Column(f"{prefix}_{k}", f"{prefix}_{k}", scaling, origin, description.format(k=k)) for k in range(count)]


_PITCH_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

FULL_COLUMNS: tuple[Column, ...] = tuple(
    [
        Column("duration", "duration", "z", "score", "notated duration in quarter notes (ties merged)"),
        Column("beat_importance", "beat_importance", "z", "score", "metric strength code 0-4 of the onset"),
        Column("measure_length", "measure_length", "z", "score", "length of the note's measure in quarters"),
        Column("qpm_primo", "qpm_primo", "z", "performance", "log10 of the mean of the first <=10 performed beat tempos (per segment)"),
        Column("following_rest", "following_rest", "z", "score", "rests after the note in its voice, in quarters"),
        Column("distance_from_abs_dynamic", "distance_from_abs_dynamic", "z", "score", "quarters since the last absolute dynamic marking"),
        Column("distance_from_recent_tempo", "distance_from_recent_tempo", "z", "score", "quarters since the last tempo word"),
        Column("beat_position", "beat_position", "raw", "score", "position inside the measure, 0-1"),
        Column("xml_position", "xml_position", "raw", "score", "position inside the segment, 0-1"),
        Column("grace_order", "grace_order", "raw", "score", "0 normal; -1, -2, ... grace notes before their main note"),
        Column("preceded_by_grace_note", "preceded_by_grace_note", "binary", "score", "a grace note leads into this note"),
        Column("followed_by_fermata_rest", "followed_by_fermata_rest", "binary", "score", "the following rest has a fermata"),
        Column("pitch_octave", "pitch_octave", "raw", "score", "(floor(pitch/12) - 1 - 4) / 4"),
    ]
    + [Column(f"pitch_class_{_PITCH_NAMES[k]}", f"pitch_class_{k}", "binary", "score", f"pitch class {_PITCH_NAMES[k]} one-hot") for k in range(12)]
    + _cols("tempo", 5, "raw", "score", "tempo-word embedding slot {k} (0 absolute, 1 relative, 2 rit./accel., 3 ritenuto, 4 dance type)")
    + _cols("dynamic", 4, "raw", "score", "dynamic embedding slot {k} (0 absolute, 1 hairpin, 2 accent, 3 relative/character)")
    + _cols("time_signature", 9, "binary", "score", "time signature: numerator multi-hot (0-4), denominator one-hot (5-8); slot {k}")
    + [
        Column(name, name, "binary", "score", desc)
        for name, desc in (
            ("slur_start", "first note of a slur"), ("slur_continue", "inside a slur (same voice)"),
            ("slur_stop", "last note of a slur"), ("beam_start", "first note of a beam"),
            ("beam_continue", "inside a beam"), ("beam_stop", "last note of a beam"),
        )
    ]
    + _cols("composer", 17, "binary", "score", "composer one-hot slot {k}; constant 'Schubert' (slot 13) as in the reference")
    + [Column(f"notation_{f}", f"notation_{f}", "binary", "score", f"notation flag: {f}") for f in NOTATION_FLAGS]
    + _cols("tempo_primo", 2, "raw", "score", "slot {k} of the opening tempo word's embedding")
    + [
        Column("beat_tempo", "beat_tempo", "z", "performance", "log10 performed qpm of the note's beat"),
        Column("measure_tempo", "measure_tempo", "z", "performance", "log10 performed qpm of the note's measure"),
        Column("section_tempo", "section_tempo", "z", "performance", "log10 performed qpm of the note's tempo-marking section"),
        Column("velocity", "velocity", "z", "performance", "MIDI velocity (previous row's when not played)"),
        Column("onset_deviation", "onset_deviation", "z", "performance", "quarters from the in-tempo onset inside the beat"),
        Column("beat_dynamics", "beat_dynamics", "z", "performance", "(mean + max velocity) / 2 of the beat's matched notes"),
        Column("measure_dynamics", "measure_dynamics", "z", "performance", "(mean + max velocity) / 2 of the measure's matched notes"),
        Column("articulation", "articulation", "z", "performance", "log10(played seconds / in-tempo notated seconds)"),
        Column("pedal_refresh_time", "pedal_refresh_time", "z", "performance", "seconds from key press to a re-pedal while held"),
        Column("pedal_cut_time", "pedal_cut_time", "z", "performance", "seconds from key release to the lowest sustain before the next onset"),
        Column("pedal_at_start", "pedal_at_start", "z", "performance", "sigmoid(sustain at key press)"),
        Column("pedal_at_end", "pedal_at_end", "z", "performance", "sigmoid(sustain at key release)"),
        Column("soft_pedal", "soft_pedal", "z", "performance", "sigmoid(soft pedal at key press)"),
        Column("pedal_refresh", "pedal_refresh", "z", "performance", "sigmoid(lowest sustain while held)"),
        Column("pedal_cut", "pedal_cut", "z", "performance", "sigmoid(lowest sustain after release)"),
        Column("mmidi_pitch", "mmidi_pitch", "raw", "midi", "performed MIDI pitch (0 when not played)"),
        Column("mmidi_velocity", "mmidi_velocity", "raw", "midi", "performed MIDI velocity (0 when not played)"),
        Column("mmidi_start_time", "mmidi_start_time", "raw", "midi", "performed key press, seconds (0 when not played)"),
        Column("mmidi_end_time", "mmidi_end_time", "raw", "midi", "performed key release, seconds (0 when not played)"),
        Column("midi_pitch_unnorm", "midi_pitch", "raw", "score", "score MIDI pitch 21-108, unscaled"),
        Column("duration_unnorm", "duration", "raw", "score", "notated duration in quarters, unscaled"),
        Column("beat_importance_unnorm", "beat_importance", "raw", "score", "beat importance, unscaled"),
        Column("measure_length_unnorm", "measure_length", "raw", "score", "measure length in quarters, unscaled"),
        Column("following_rest_unnorm", "following_rest", "raw", "score", "following rest in quarters, unscaled"),
    ]
)
_PERF_ONLY = (
    "mmidi_pitch", "mmidi_velocity", "mmidi_start_time", "mmidi_end_time", "midi_pitch_unnorm",
    "duration_unnorm", "beat_importance_unnorm", "measure_length_unnorm", "following_rest_unnorm",
)
PERF_ONLY_COLUMNS: tuple[Column, ...] = tuple(c for c in FULL_COLUMNS if c.name in _PERF_ONLY)
FEATURE_SETS: dict[str, tuple[Column, ...]] = {"full": FULL_COLUMNS, "perf_only": PERF_ONLY_COLUMNS}

SCORE_SOURCES = sorted({c.source for c in FULL_COLUMNS if c.origin == "score"})
# Score features an inserted row keeps from its neighbour (the rest are 0).
INSERTED_ROW_KEEPS = ("beat_position", "xml_position", "measure_length")
PEDAL_VALUE_KEYS = ("pedal_at_start", "pedal_at_end", "soft_pedal", "pedal_refresh", "pedal_cut")
CARRY_WHEN_UNPLAYED = ("velocity", "pedal_at_start", "pedal_at_end", "pedal_cut", "soft_pedal")
CONTEXT_KEYS = ("beat_tempo", "measure_tempo", "section_tempo", "beat_dynamics", "measure_dynamics")


def pedal_sigmoid(value: np.ndarray) -> np.ndarray:
    """The reference's squashing of pedal values: 127 / (1 + exp(-(v - 64) / 8))."""
    return 127.0 / (1.0 + np.exp(-(np.asarray(value, dtype=float) - 64.0) / 8.0))


class TempoCurve:
    """Performed time (s) of any score position (quarters), from matched notes."""

    def __init__(self, score_q: np.ndarray, perf_s: np.ndarray):
        order = np.argsort(score_q, kind="stable")
        score_q, perf_s = score_q[order], perf_s[order]
        positions = np.unique(score_q)
        times = np.array([np.median(perf_s[score_q == q]) for q in positions])
        keep_q, keep_t = [], []
        for q, t in zip(positions, times):
            if not keep_t or t > keep_t[-1] + 1e-4:
                keep_q.append(q)
                keep_t.append(t)
        if len(keep_q) < 2:
            raise FeatureError(f"only {len(keep_q)} usable tempo anchor(s) among the matched notes")
        self.q = np.array(keep_q)
        self.t = np.array(keep_t)

    def __call__(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=float)
        t = np.interp(q, self.q, self.t)
        head = (self.t[1] - self.t[0]) / (self.q[1] - self.q[0])
        tail = (self.t[-1] - self.t[-2]) / (self.q[-1] - self.q[-2])
        t = np.where(q < self.q[0], self.t[0] + (q - self.q[0]) * head, t)
        return np.where(q > self.q[-1], self.t[-1] + (q - self.q[-1]) * tail, t)

    def qpm(self, grid: np.ndarray, end_q: float) -> np.ndarray:
        """Tempo of each interval [grid[k], grid[k+1]) (the last ends at end_q), in qpm."""
        edges = np.append(grid, max(end_q, grid[-1] + 1e-6))
        seconds = np.diff(self(edges))
        quarters = np.diff(edges)
        with np.errstate(divide="ignore", invalid="ignore"):
            qpm = np.where(seconds > 1e-6, quarters / seconds * 60.0, np.nan)
        # an empty or degenerate interval takes its neighbour's tempo
        if np.all(np.isnan(qpm)):
            qpm[:] = (self.q[-1] - self.q[0]) / (self.t[-1] - self.t[0]) * 60.0
        idx = np.where(~np.isnan(qpm), np.arange(len(qpm)), 0)
        qpm = qpm[np.maximum.accumulate(idx)]
        qpm = np.where(np.isnan(qpm), qpm[~np.isnan(qpm)][0], qpm)
        return np.clip(qpm, *QPM_RANGE)


def _interval_of(grid: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(grid, q + 1e-9, side="right") - 1, 0, len(grid) - 1)


def _level_dynamics(level_index: np.ndarray, velocity: np.ndarray, matched: np.ndarray) -> np.ndarray:
    """(mean + max)/2 of matched velocities per level segment, filled to every row."""
    levels = np.unique(level_index)
    value = np.full(len(levels), np.nan)
    for k, level in enumerate(levels):
        v = velocity[(level_index == level) & matched]
        if len(v):
            value[k] = (v.mean() + v.max()) / 2.0
    valid = ~np.isnan(value)
    if not valid.any():
        return np.zeros(len(level_index))
    idx = np.where(valid, np.arange(len(value)), -1)
    forward = np.maximum.accumulate(idx)
    value = np.where(forward >= 0, value[np.maximum(forward, 0)], value[np.argmax(valid)])
    return value[np.searchsorted(levels, level_index)]


def build_rows(score: ScoreTable, performance: PerformanceTable, alignment: Alignment) -> dict[str, np.ndarray]:
    """The raw per-row table of one segment (see module docstring)."""
    n = len(score.ids)
    perf_of = np.full(n, -1)
    perf_of[alignment.score_rows] = alignment.performance_rows
    matched = perf_of >= 0
    anchors = matched & ~score.is_grace
    curve = TempoCurve(score.onset_q[anchors], performance.onset_s[perf_of[anchors]])

    beat_qpm = curve.qpm(score.beat_grid_q, score.end_q)
    beat_k = _interval_of(score.beat_grid_q, score.onset_q)
    rows: dict[str, np.ndarray] = {k: np.asarray(v, dtype=float).copy() for k, v in score.features.items()}
    rows["beat_tempo"] = np.log10(beat_qpm[beat_k])
    rows["measure_tempo"] = np.log10(curve.qpm(score.measure_grid_q, score.end_q)[_interval_of(score.measure_grid_q, score.onset_q)])
    rows["section_tempo"] = np.log10(curve.qpm(score.section_starts_q, score.end_q)[_interval_of(score.section_starts_q, score.onset_q)])
    rows["qpm_primo"] = np.full(n, np.log10(beat_qpm[:10].mean()))

    qpm = beat_qpm[beat_k]
    p = perf_of[matched]
    onset_s = performance.onset_s[p]
    beat_start = score.beat_grid_q[beat_k[matched]]
    in_tempo = curve(beat_start) + (score.onset_q[matched] - beat_start) * 60.0 / qpm[matched]
    deviation = np.zeros(n)
    deviation[matched] = (onset_s - in_tempo) * qpm[matched] / 60.0
    articulation = np.zeros(n)
    notated_s = score.duration_q[matched] * 60.0 / qpm[matched]
    played_s = performance.offset_s[p] - onset_s
    ok = (notated_s > 0) & (played_s > 0) & (score.features["notation_trill"][matched] == 0)
    art = np.zeros(len(p))
    art[ok] = np.log10(played_s[ok] / notated_s[ok])
    articulation[matched] = art
    rows["onset_deviation"] = deviation
    rows["articulation"] = articulation

    perf_values = {
        "velocity": performance.velocity.astype(float),
        **{k: pedal_sigmoid(performance.pedal[k]) for k in PEDAL_VALUE_KEYS},
        "pedal_refresh_time": performance.pedal["pedal_refresh_time"],
        "pedal_cut_time": performance.pedal["pedal_cut_time"],
        "mmidi_pitch": performance.pitch.astype(float),
        "mmidi_velocity": performance.velocity.astype(float),
        "mmidi_start_time": performance.onset_s,
        "mmidi_end_time": performance.offset_s,
    }
    for key, values in perf_values.items():
        column = np.zeros(n)
        column[matched] = values[p]
        if key in CARRY_WHEN_UNPLAYED:
            previous = 64.0 if key == "velocity" else 0.0
            for i in range(n):
                if matched[i]:
                    previous = column[i]
                else:
                    column[i] = previous
        rows[key] = column
    rows["beat_dynamics"] = _level_dynamics(score.beat_index, rows["velocity"], matched)
    rows["measure_dynamics"] = _level_dynamics(score.measure_index, rows["velocity"], matched)
    rows["beat_index"] = score.beat_index.astype(float)
    rows["measure_index"] = score.measure_index.astype(float)
    rows["voice"] = score.voice.astype(float)
    rows["row_kind"] = np.where(matched, ROW_MATCHED, ROW_UNPLAYED).astype(float)
    return _insert_extra_notes(rows, performance, perf_of, perf_values)


def _insert_extra_notes(rows, performance, perf_of, perf_values) -> dict[str, np.ndarray]:
    """Splice unmatched performed notes in before the row whose matched note follows them."""
    n = len(perf_of)
    row_of_perf = np.full(len(performance), -1)
    row_of_perf[perf_of[perf_of >= 0]] = np.nonzero(perf_of >= 0)[0]
    extra = np.nonzero(row_of_perf < 0)[0]
    if len(extra) == 0:
        return {k: v.astype(np.float32) for k, v in rows.items()}
    # the next matched performed note (in performance order) after each extra note
    matched_perf = np.nonzero(row_of_perf >= 0)[0]
    nxt = np.searchsorted(matched_perf, extra, side="right")
    before_row = np.where(nxt < len(matched_perf), row_of_perf[matched_perf[np.minimum(nxt, len(matched_perf) - 1)]], n)
    neighbour = np.minimum(before_row, n - 1)

    insert: dict[str, np.ndarray] = {k: np.zeros(len(extra)) for k in rows}
    for key in INSERTED_ROW_KEEPS + CONTEXT_KEYS + ("qpm_primo", "beat_index", "measure_index"):
        insert[key] = rows[key][neighbour]
    for key, values in perf_values.items():
        insert[key] = values[extra]
    insert["voice"] = np.zeros(len(extra))
    insert["row_kind"] = np.full(len(extra), float(ROW_EXTRA))
    # stable order: original rows keep position; extras go before `before_row`
    key_rows = np.arange(n, dtype=float)
    key_extra = before_row - 0.5 + np.arange(len(extra)) * 1e-6
    order = np.argsort(np.concatenate([key_rows, key_extra]), kind="stable")
    return {k: np.concatenate([rows[k], insert[k]])[order].astype(np.float32) for k in rows}
