"""Score-to-performance note alignment with parangonar.

The reference aligned with Nakamura's tool; we use parangonar's automatic note
matcher, which takes a score note array (onsets in beats) and a performance note
array (seconds). The result is a list of (score row, performance row) matches;
score notes without a partner were not played, performance notes without one are
extra notes (ornament realisations, tremolos, wrong or added notes).

parangonar samples combinations at random in crowded windows, so each call is
seeded from the segment name: the alignment of a segment never changes between runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
from dataclasses import dataclass

import numpy as np

from pianoeval.data.performance import PerformanceTable
from pianoeval.data.score import ScoreTable


class AlignmentError(ValueError):
    """The aligner failed or matched too little to be usable."""


@dataclass
class Alignment:
    score_rows: np.ndarray  # [K] int, rows of the ScoreTable
    performance_rows: np.ndarray  # [K] int, rows of the PerformanceTable

    def to_pairs(self) -> np.ndarray:
        return np.stack([self.score_rows, self.performance_rows], axis=1).astype(np.int32)

    @classmethod
    def from_pairs(cls, pairs: np.ndarray) -> "Alignment":
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        return cls(pairs[:, 0], pairs[:, 1])


def score_note_array(score: ScoreTable) -> np.ndarray:
    dtype = [("onset_beat", "f4"), ("duration_beat", "f4"), ("onset_quarter", "f4"),
             ("duration_quarter", "f4"), ("pitch", "i4"), ("is_grace", "b"), ("id", "U16")]
    arr = np.zeros(len(score.ids), dtype=dtype)
    arr["onset_beat"] = score.onset_beats
    arr["duration_beat"] = score.duration_beats
    arr["onset_quarter"] = score.onset_q
    arr["duration_quarter"] = score.duration_q
    arr["pitch"] = score.pitch
    arr["is_grace"] = score.is_grace
    arr["id"] = score.ids
    return arr


def align(score: ScoreTable, performance: PerformanceTable, seed_key: str, min_match_rate: float = 0.3) -> Alignment:
    """Match score notes to performed notes; AlignmentError if under ``min_match_rate``
    of the performed notes could be matched (the files are not the same music)."""
    from parangonar.match import AutomaticNoteMatcher

    seed = int(hashlib.sha256(seed_key.encode()).hexdigest()[:8], 16)
    state = np.random.get_state()
    np.random.seed(seed)
    parangonar_log = logging.getLogger("parangonar")
    level = parangonar_log.level
    parangonar_log.setLevel(logging.ERROR)
    try:
        # parangonar prints progress chatter ("high number of combinations") to stdout
        with contextlib.redirect_stdout(io.StringIO()):
            matches = AutomaticNoteMatcher()(score_note_array(score), performance.note_array())
    except Exception as err:
        raise AlignmentError(f"aligner failed ({type(err).__name__}: {str(err)[:120]})") from None
    finally:
        np.random.set_state(state)
        parangonar_log.setLevel(level)
    score_row = {sid: i for i, sid in enumerate(score.ids)}
    perf_row = {pid: i for i, pid in enumerate(performance.ids)}
    pairs = sorted(
        (score_row[str(m["score_id"])], perf_row[str(m["performance_id"])])
        for m in matches
        if m["label"] == "match" and str(m["score_id"]) in score_row and str(m["performance_id"]) in perf_row
    )
    # one partner each: keep the first claim on either side
    seen_s, seen_p, unique = set(), set(), []
    for s, p in pairs:
        if s not in seen_s and p not in seen_p:
            unique.append((s, p))
            seen_s.add(s)
            seen_p.add(p)
    rate = len(unique) / max(len(performance), 1)
    if rate < min_match_rate:
        raise AlignmentError(
            f"only {len(unique)}/{len(performance)} performed notes matched the score ({rate:.0%} < {min_match_rate:.0%})"
        )
    arr = np.array(unique, dtype=np.int64).reshape(-1, 2)
    return Alignment(arr[:, 0], arr[:, 1])
