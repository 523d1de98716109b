"""Score side of the note features: MusicXML -> one row per score note.

Follows ``percepiano_han_reference.md`` sections 1 and 2:

* rows are the score's notes with ties merged, sorted by (onset, grace order, -pitch):
  onsets in time order, grace notes before their main note, chords high to low;
* the beat grid is built per measure from the time signature (numerator, except
  6->2, 9->3, 12->4, 18->3, 24->4 for compound meters), evenly spaced; an incomplete
  measure gets ceil(length ratio x beats) beats, anchored to the bar line that ends
  it when it is the first (a pickup) and to its start otherwise;
* a note's beat / measure is the last grid position <= its onset; empty beats and
  measures are removed so indices are continuous. Every beat lies in one measure.
* voice = MusicXML voice (default 1) + 10 x part index.

Positions are in quarter notes (``*_q``). ``parse_score`` raises ``ScoreError`` with
a one-line reason for a score that cannot be used.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pianoeval.data import directions as dirs
from pianoeval.setup_assets import ensure_partitura_soundfont

COMPOUND_BEATS = {6: 2, 9: 3, 12: 4, 18: 3, 24: 4}
COMPOSERS = (
    "Bach", "Balakirev", "Beethoven", "Brahms", "Chopin", "Debussy", "Glinka", "Haydn", "Liszt",
    "Mozart", "Prokofiev", "Rachmaninoff", "Ravel", "Schubert", "Schumann", "Scriabin",
)
# The reference labels every PercePiano segment "Schubert" (Beethoven included), so the
# composer one-hot is constant; we keep that for input fidelity (see docs/features.md).
REFERENCE_COMPOSER = "Schubert"
NOTATION_FLAGS = ("trill", "tenuto", "accent", "staccato", "fermata", "arpeggiate", "strong_accent", "cue", "slash")


class ScoreError(ValueError):
    """A score that cannot be parsed or has no usable notes."""


@dataclass
class ScoreTable:
    """Columnar score notes (score order) plus the grids the performance side needs."""

    ids: np.ndarray  # [N] str, unique note ids (assigned here: s0, s1, ...)
    onset_q: np.ndarray  # [N] float
    duration_q: np.ndarray  # [N] float, ties merged; 0 for grace notes
    pitch: np.ndarray  # [N] int
    voice: np.ndarray  # [N] int >= 1
    is_grace: np.ndarray  # [N] bool
    beat_index: np.ndarray  # [N] int, continuous
    measure_index: np.ndarray  # [N] int, continuous
    features: dict[str, np.ndarray]  # score feature columns (see features.py)
    beat_grid_q: np.ndarray  # all beat positions of the score (for tempo)
    measure_grid_q: np.ndarray  # all measure starts
    section_starts_q: np.ndarray  # tempo-marking sections (for section tempo)
    end_q: float  # end of the last measure
    onset_beats: np.ndarray = field(default=None)  # [N] score time in beats (for the aligner)
    duration_beats: np.ndarray = field(default=None)


def _load(path: Path):
    ensure_partitura_soundfont()
    import partitura as pt

    if not path.is_file():
        raise ScoreError(f"score file not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # partitura warns on every metronome mark
            score = pt.load_musicxml(str(path))
    except Exception as err:  # partitura raises many types on malformed XML
        raise ScoreError(f"{path.name}: MusicXML does not parse ({type(err).__name__}: {str(err)[:120]})") from None
    if not score.parts:
        raise ScoreError(f"{path.name}: no parts in the score")
    return score


def _grace_order(note, grace_cls) -> int:
    """0 for normal notes; -1 for the grace note right before the main note, -2 before it..."""
    if not isinstance(note, grace_cls):
        return 0
    steps, nxt = -1, note.grace_next
    while isinstance(nxt, grace_cls):
        steps -= 1
        nxt = nxt.grace_next
    return steps


def beat_importance(beat_position: float, numerator: int) -> float:
    """Metric strength code 0-4 of a position inside a measure (reference section 1.2)."""
    def on(k: int) -> bool:
        return abs(beat_position * k - round(beat_position * k)) < 1e-3

    if beat_position < 1e-6:
        return 4.0
    if abs(beat_position - 0.5) < 1e-6 and numerator in (2, 4, 6, 12):
        return 3.0
    if abs(beat_position - 1 / 3) < 1e-3 and numerator in (3, 9):
        return 2.0
    if on(4) and numerator in (2, 4):
        return 1.0
    if on(5) and numerator == 5:
        return 2.0
    if on(6) and numerator in (3, 6, 12):
        return 1.0
    if on(8) and numerator in (2, 4):
        return 0.5
    if on(9) and numerator == 9:
        return 1.0
    if on(12) and numerator in (3, 6, 12):
        return 0.5
    if numerator == 7 and (abs(beat_position * 7 - 2) < 1e-3 or abs(beat_position * 5 - 2) < 1e-3):
        return 2.0
    return 0.0


def time_signature_vector(numerator: int, denominator: int) -> list[float]:
    """Numerator multi-hot (2, 3, 4, 6/9 marker, other) + denominator one-hot {2, 4, 8, 16/32}."""
    num = {2: [0], 3: [1], 4: [0, 2], 6: [0, 3], 9: [1, 3], 12: [0, 2, 3], 24: [0, 2, 3]}.get(numerator, [4])
    vec = [0.0] * 9
    for i in num:
        vec[i] = 1.0
    den = {2: 0, 4: 1, 8: 2, 16: 3, 32: 3}.get(denominator, 1)
    vec[5 + den] = 1.0
    return vec


def _beat_grid(measures: list[tuple[float, float]], signatures: list[tuple[int, int]]) -> list[np.ndarray]:
    """Beat positions per measure (quarters)."""
    grids = []
    for m, ((start, end), (num, den)) in enumerate(zip(measures, signatures)):
        beats = COMPOUND_BEATS.get(num, num)
        nominal = num * 4.0 / den
        length = end - start
        if length < nominal - 1e-6:
            count = max(1, math.ceil(length / nominal * beats - 1e-6))
            step = nominal / beats
            if m == 0:  # a pickup: anchored to the bar line that ends it
                grid = end - step * np.arange(count, 0, -1)
            else:
                grid = start + step * np.arange(count)
        else:
            grid = start + (length / beats) * np.arange(beats)
        grids.append(np.maximum(grid, start))
    return grids


def parse_score(path: Path) -> ScoreTable:
    """Parse one MusicXML score (``.musicxml`` or ``.mxl``) into a ScoreTable."""
    import partitura.score as ps

    score = _load(Path(path))
    rows = []
    measure_bounds: list[tuple[float, float]] = []
    measure_sigs: list[tuple[int, int]] = []
    rests: dict[int, list[tuple[float, float, bool]]] = {}
    dynamics_abs: list[tuple[float, float]] = []
    accents: list[tuple[float, int, float]] = []
    hairpins: list[tuple[float, float, float]] = []
    tempo_marks: list[tuple[float, float | None, list[float]]] = []
    slurs: list[tuple[object, object, float, float]] = []

    for part_index, part in enumerate(score.parts):
        qmap = part.quarter_map
        voice_offset = 10 * part_index if len(score.parts) > 1 else 0
        sigs = sorted(part.iter_all(ps.TimeSignature), key=lambda ts: ts.start.t)
        for measure in part.measures:
            if part_index == 0:
                start_q, end_q = float(qmap(measure.start.t)), float(qmap(measure.end.t))
                active = [ts for ts in sigs if ts.start.t <= measure.start.t] or sigs[:1]
                sig = (int(active[-1].beats), int(active[-1].beat_type)) if active else (4, 4)
                measure_bounds.append((start_q, end_q))
                measure_sigs.append(sig)
        for note in part.notes_tied:
            if getattr(note, "midi_pitch", None) is None:
                continue
            grace = isinstance(note, ps.GraceNote)
            onset = float(qmap(note.start.t))
            end = onset if grace else float(qmap(note.start.t + note.duration_tied))
            rows.append((part_index, note, onset, end - onset, grace, _grace_order(note, ps.GraceNote),
                         (note.voice or 1) + voice_offset))
        for rest in part.iter_all(ps.Rest):
            rests.setdefault((rest.voice or 1) + voice_offset, []).append(
                (float(qmap(rest.start.t)), float(qmap(rest.start.t + rest.duration_tied)), rest.fermata is not None)
            )
        for d in part.iter_all(ps.Direction, include_subclasses=True):
            pos = float(qmap(d.start.t))
            end = float(qmap(d.end.t)) if d.end is not None else None
            text = d.text or ""
            word = dirs.normalise_word(text)
            if isinstance(d, (ps.IncreasingLoudnessDirection, ps.DecreasingLoudnessDirection)):
                sign = 1.0 if isinstance(d, ps.IncreasingLoudnessDirection) else -1.0
                length = (end - pos) if end is not None and end > pos else dirs.HAIRPIN_DEFAULT_LENGTH_Q
                hairpins.append((pos, pos + length, sign * dirs.HAIRPIN_VALUE))
            elif isinstance(d, (ps.IncreasingTempoDirection, ps.DecreasingTempoDirection)):
                vec = dirs.tempo_word_vector(text) or [0.0] * dirs.TEMPO_SLOTS
                if not any(vec):
                    vec[2] = dirs.GRADUAL_TEMPO["increasing" if isinstance(d, ps.IncreasingTempoDirection) else "decreasing"]
                tempo_marks.append((pos, end, vec))
            elif isinstance(d, (ps.TempoDirection,)):
                vec = dirs.tempo_word_vector(text)
                if vec is not None or isinstance(d, ps.ResetTempoDirection):
                    tempo_marks.append((pos, None, vec or [0.0] * dirs.TEMPO_SLOTS))
            elif isinstance(d, ps.LoudnessDirection) or type(d) is ps.Direction:
                if word in ("fp", "ffp", "sfp"):  # loud attack, then piano right after
                    head = {"fp": "f", "ffp": "ff", "sfp": "sf"}[word]
                    if head in dirs.ABSOLUTE_DYNAMICS:
                        dynamics_abs.append((pos, dirs.ABSOLUTE_DYNAMICS[head]))
                    else:
                        accents.append((pos, 2, dirs.ACCENT_DYNAMICS[head]))
                    dynamics_abs.append((pos + 1e-3, dirs.ABSOLUTE_DYNAMICS["p"]))
                    continue
                slot = dirs.dynamic_word_slot(text)
                if slot is None:
                    continue
                if slot[0] == 0:
                    dynamics_abs.append((pos, slot[1]))
                else:
                    accents.append((pos, slot[0], slot[1]))
        for slur in part.iter_all(ps.Slur):
            if slur.start_note is not None and slur.end_note is not None:
                slurs.append((slur.start_note, slur.end_note, float(qmap(slur.start.t)), float(qmap(slur.end.t))))

    if not rows:
        raise ScoreError(f"{Path(path).name}: the score has no pitched notes")
    if not measure_bounds:
        raise ScoreError(f"{Path(path).name}: the score has no measures")
    rows.sort(key=lambda r: (r[2], r[5], -r[1].midi_pitch))
    n = len(rows)
    notes = [r[1] for r in rows]
    onset = np.array([r[2] for r in rows])
    duration = np.array([r[3] for r in rows])
    pitch = np.array([r[1].midi_pitch for r in rows], dtype=np.int64)
    voice = np.array([r[6] for r in rows], dtype=np.int64)
    is_grace = np.array([r[4] for r in rows])
    grace_order = np.array([r[5] for r in rows], dtype=np.float64)
    position = {id(note): i for i, note in enumerate(notes)}

    # --- hierarchy -----------------------------------------------------------------
    starts = np.array([b[0] for b in measure_bounds])
    ends = np.array([b[1] for b in measure_bounds])
    measure_of = np.clip(np.searchsorted(starts, onset + 1e-9, side="right") - 1, 0, len(starts) - 1)
    grids = _beat_grid(measure_bounds, measure_sigs)
    grid_all = np.concatenate(grids)
    first_beat_of_measure = np.cumsum([0] + [len(g) for g in grids])[:-1]
    beat_raw = np.searchsorted(grid_all, onset + 1e-9, side="right") - 1
    beat_raw = np.clip(beat_raw, first_beat_of_measure[measure_of], first_beat_of_measure[measure_of] + [len(grids[m]) - 1 for m in measure_of])
    beat_index = np.unique(beat_raw, return_inverse=True)[1]
    measure_index = np.unique(measure_of, return_inverse=True)[1]

    # --- per-note score features -----------------------------------------------------
    m_len = ends[measure_of] - starts[measure_of]
    beat_pos = (onset - starts[measure_of]) / np.maximum(m_len, 1e-9)
    numerators = np.array([measure_sigs[m][0] for m in measure_of])
    score_start, score_end = float(starts[0]), float(ends[-1])
    feats: dict[str, np.ndarray] = {
        "duration": duration,
        "beat_importance": np.array([beat_importance(b, k) for b, k in zip(beat_pos, numerators)]),
        "measure_length": m_len,
        "beat_position": beat_pos,
        "xml_position": (onset - score_start) / max(score_end - score_start, 1e-9),
        "grace_order": grace_order,
        "midi_pitch": pitch.astype(np.float64),
    }
    preceded = np.zeros(n)
    for i, note in enumerate(notes):
        if is_grace[i] and getattr(note, "main_note", None) is not None and id(note.main_note) in position:
            preceded[position[id(note.main_note)]] = 1.0
    feats["preceded_by_grace_note"] = preceded

    following_rest = np.zeros(n)
    fermata_rest = np.zeros(n)
    for voice_rests in rests.values():
        voice_rests.sort()
    for i in range(n):
        if is_grace[i]:
            continue
        t = onset[i] + duration[i]
        for r_start, r_end, r_fermata in rests.get(int(voice[i]), ()):
            if abs(r_start - t) < 1e-6:
                following_rest[i] += r_end - r_start
                fermata_rest[i] = max(fermata_rest[i], float(r_fermata))
                t = r_end
    feats["following_rest"] = following_rest
    feats["followed_by_fermata_rest"] = fermata_rest

    octave = (pitch // 12 - 1 - 4) / 4.0
    feats["pitch_octave"] = octave
    pitch_class = np.zeros((n, 12))
    pitch_class[np.arange(n), pitch % 12] = 1.0
    for k in range(12):
        feats[f"pitch_class_{k}"] = pitch_class[:, k]

    ts = np.array([time_signature_vector(*measure_sigs[m]) for m in measure_of])
    for k in range(9):
        feats[f"time_signature_{k}"] = ts[:, k]

    slur_flags = np.zeros((n, 3))
    for start_note, end_note, s_q, e_q in slurs:
        i0, i1 = position.get(id(start_note)), position.get(id(end_note))
        if i0 is not None:
            slur_flags[i0, 0] = 1.0
        if i1 is not None:
            slur_flags[i1, 2] = 1.0
        slur_voice = voice[i0] if i0 is not None else (voice[i1] if i1 is not None else None)
        inside = (onset > s_q + 1e-9) & (onset < e_q - 1e-9) & (voice == slur_voice)
        slur_flags[inside & (slur_flags[:, 0] == 0) & (slur_flags[:, 2] == 0), 1] = 1.0
    beam_flags = np.zeros((n, 3))
    for i, note in enumerate(notes):
        beam = getattr(note, "beam", None)
        if beam is None or len(beam.notes) < 2:
            continue
        members = sorted(beam.notes, key=lambda x: x.start.t)
        k = 0 if note is members[0] else (2 if note is members[-1] else 1)
        beam_flags[i, k] = 1.0
    for k, name in enumerate(("slur_start", "slur_continue", "slur_stop")):
        feats[name] = slur_flags[:, k]
    for k, name in enumerate(("beam_start", "beam_continue", "beam_stop")):
        feats[name] = beam_flags[:, k]

    composer = np.zeros(len(COMPOSERS) + 1)
    composer[COMPOSERS.index(REFERENCE_COMPOSER)] = 1.0
    for k in range(len(COMPOSERS) + 1):
        feats[f"composer_{k}"] = np.full(n, composer[k])

    notation = np.zeros((n, len(NOTATION_FLAGS)))
    for i, note in enumerate(notes):
        arts = set(note.articulations or ())
        orns = set(note.ornaments or ())
        notation[i] = [
            float(bool(orns & {"trill-mark", "wavy-line"})),
            float(bool(arts & {"tenuto", "detached-legato"})),
            float("accent" in arts),
            float(bool(arts & {"staccato", "staccatissimo", "detached-legato", "spiccato"})),
            float(getattr(note, "fermata", None) is not None),
            float("arpeggiate" in orns),  # partitura does not report <arpeggiate>; stays 0
            float("strong-accent" in arts),
            0.0,  # cue notes are not imported by partitura
            float(is_grace[i] and getattr(note, "grace_type", "") == "acciaccatura"),
        ]
    for k, name in enumerate(NOTATION_FLAGS):
        feats[f"notation_{name}"] = notation[:, k]

    dyn, dist_dyn = _dynamic_vectors(onset, dynamics_abs, accents, hairpins, score_start)
    tempo, dist_tempo, sections = _tempo_vectors(onset, tempo_marks, score_start)
    for k in range(dirs.DYNAMIC_SLOTS):
        feats[f"dynamic_{k}"] = dyn[:, k]
    for k in range(dirs.TEMPO_SLOTS):
        feats[f"tempo_{k}"] = tempo[:, k]
    feats["distance_from_abs_dynamic"] = dist_dyn
    feats["distance_from_recent_tempo"] = dist_tempo
    first_words = [vec for pos, _, vec in tempo_marks if pos <= onset[0] + 1e-9 and any(vec[:2])]
    primo = first_words[-1][:2] if first_words else [0.0, 0.0]
    feats["tempo_primo_0"] = np.full(n, primo[0])
    feats["tempo_primo_1"] = np.full(n, primo[1])

    part0 = score.parts[0]
    bmap = part0.beat_map
    qinv = part0.inv_quarter_map
    onset_beats = np.asarray(bmap(qinv(onset)), dtype=float)
    offset_beats = np.asarray(bmap(qinv(onset + duration)), dtype=float)
    return ScoreTable(
        ids=np.array([f"s{i}" for i in range(n)]),
        onset_q=onset,
        duration_q=duration,
        pitch=pitch,
        voice=voice,
        is_grace=is_grace,
        beat_index=beat_index.astype(np.int64),
        measure_index=measure_index.astype(np.int64),
        features=feats,
        beat_grid_q=grid_all,
        measure_grid_q=starts,
        section_starts_q=sections,
        end_q=score_end,
        onset_beats=onset_beats,
        duration_beats=offset_beats - onset_beats,
    )


def _dynamic_vectors(onset, absolutes, accents, hairpins, score_start):
    n = len(onset)
    vec = np.zeros((n, dirs.DYNAMIC_SLOTS))
    distance = onset - score_start
    if absolutes:
        absolutes = sorted(absolutes)
        pos = np.array([a[0] for a in absolutes])
        val = np.array([a[1] for a in absolutes])
        idx = np.searchsorted(pos, onset + 1e-9, side="right") - 1
        has = idx >= 0
        vec[has, 0] = val[idx[has]]
        distance = np.where(has, onset - pos[np.maximum(idx, 0)], distance)
    for pos, slot, value in accents:
        vec[np.abs(onset - pos) < 1e-6, slot] = value
    for start, end, value in hairpins:
        inside = (onset >= start - 1e-9) & (onset < end - 1e-9)
        ratio = (onset[inside] - start) / (end - start)
        vec[inside, 1] = value * (ratio + 0.05)
    return vec, distance


def _tempo_vectors(onset, marks, score_start):
    """Tempo words in force at each note, quarters since the last one, section starts."""
    n = len(onset)
    vec = np.zeros((n, dirs.TEMPO_SLOTS))
    distance = onset - score_start
    marks = sorted(marks, key=lambda m: m[0])
    sections = [score_start]
    for pos, end, word_vec in marks:
        after = onset >= pos - 1e-9
        distance = np.where(after, onset - pos, distance)
        if end is not None:  # gradual change: only over its span
            span = after & (onset < end - 1e-9)
            vec[span, 2] = word_vec[2]
            continue
        for slot, value in enumerate(word_vec):
            if value != 0.0 or slot == 1:
                # An absolute word replaces the absolute slot and clears relative ones;
                # a relative word ("a tempo", "più mosso") replaces the relative slot.
                vec[after, slot] = value
        if word_vec[0] != 0.0 or not any(word_vec):
            sections.append(pos)
    return vec, distance, np.unique(np.array(sections))
