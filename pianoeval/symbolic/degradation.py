"""Controlled degradation of performance MIDI (seeds 003 / 004): quality tiers on demand.

Three operations on a ``NoteSequence``, each seeded and each doing exactly what it says:

* ``jitter_timing(seq, ms, rng)``: independent Gaussian noise of std ``ms``
  milliseconds on every onset and every offset (a note keeps at least 10 ms; onsets
  stay >= 0); notes are re-sorted afterwards.
* ``inject_wrong_notes(seq, rate, rng)``: exactly ``round(rate * N)`` notes, chosen
  without replacement, get a different pitch: a neighbour 1 or 2 semitones up or down
  (the slips a pianist makes), kept inside the piano range 21-108.
* ``compress_dynamics(seq, amount)``: velocities are pulled towards their mean,
  ``v' = mean + (1 - amount) * (v - mean)`` (rounded, 1-127), so the velocity std
  shrinks by the factor ``1 - amount`` (up to rounding): ``amount = 0.5`` halves it.

``TIERS`` are the four quality tiers of 004 with its parameters: pristine (none),
good (10 ms jitter), moderate (30 ms jitter, 2% wrong notes, dynamics compression),
poor (60 ms jitter, 5% wrong notes, 50% dynamics compression). 004 gives no amount
for the moderate tier's compression; we use 0.25, half the poor tier's. (004's
audio-side parameters -- noise SNR, band-pass -- do not apply to MIDI.) A tier's
label is the middle of its score range / 100 (pristine 95-100 -> 0.975, good 80-95
-> 0.875, moderate 65-80 -> 0.725, poor 50-65 -> 0.575).

Seeds: ``item_seed(item_id, tier, seed)`` derives a stable seed from the item id, so a
degraded version is the same in every process and every run.

The seeds' warning (003): a model that scores these tiers well may only detect the
artefacts, not judge quality; ``runners/degradation_probe.py`` checks both.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np

from pianoeval.data.midi import MIN_DURATION, NoteSequence

PIANO_RANGE = (21, 108)


def jitter_timing(seq: NoteSequence, ms: float, rng: np.random.Generator) -> NoteSequence:
    """Gaussian jitter (std ``ms`` milliseconds) on onsets and offsets."""
    if ms < 0:
        raise ValueError(f"jitter must be >= 0 ms, got {ms}")
    if ms == 0 or len(seq) == 0:
        return seq
    std = ms / 1000.0
    onset = np.maximum(seq.onset + rng.normal(0.0, std, len(seq)), 0.0)
    offset = np.maximum(seq.offset + rng.normal(0.0, std, len(seq)), onset + MIN_DURATION)
    return replace(seq, onset=onset, offset=offset).sorted()


def inject_wrong_notes(seq: NoteSequence, rate: float, rng: np.random.Generator) -> NoteSequence:
    """Give exactly ``round(rate * N)`` randomly chosen notes a neighbouring wrong pitch."""
    if not 0 <= rate <= 1:
        raise ValueError(f"wrong-note rate must be in [0, 1], got {rate}")
    count = int(round(rate * len(seq)))
    if count == 0:
        return seq
    chosen = rng.choice(len(seq), size=count, replace=False)
    step = rng.choice(np.array([-2, -1, 1, 2]), size=count)
    shifted = seq.pitch[chosen] + step
    outside = (shifted < PIANO_RANGE[0]) | (shifted > PIANO_RANGE[1])
    shifted[outside] = seq.pitch[chosen][outside] - step[outside]  # mirror back inside the keyboard
    pitch = seq.pitch.copy()
    pitch[chosen] = shifted
    return replace(seq, pitch=pitch).sorted()


def compress_dynamics(seq: NoteSequence, amount: float) -> NoteSequence:
    """Pull velocities towards their mean: the std shrinks by ``1 - amount``."""
    if not 0 <= amount <= 1:
        raise ValueError(f"compression amount must be in [0, 1], got {amount}")
    if amount == 0 or len(seq) == 0:
        return seq
    mean = seq.velocity.mean()
    velocity = np.clip(np.round(mean + (1.0 - amount) * (seq.velocity - mean)), 1, 127).astype(np.int64)
    return replace(seq, velocity=velocity)


@dataclass(frozen=True)
class Tier:
    """One quality tier: its degradation parameters and its label."""

    name: str
    jitter_ms: float
    wrong_note_rate: float
    compression: float
    score_range: tuple[float, float]  # 004's score range (0-100)

    @property
    def label(self) -> float:
        """Middle of the score range, in 0-1."""
        return (self.score_range[0] + self.score_range[1]) / 200.0

    def apply(self, seq: NoteSequence, rng: np.random.Generator) -> NoteSequence:
        """Jitter, then wrong notes, then compression (each a no-op at 0)."""
        seq = jitter_timing(seq, self.jitter_ms, rng)
        seq = inject_wrong_notes(seq, self.wrong_note_rate, rng)
        return compress_dynamics(seq, self.compression)

    def key(self) -> str:
        """A short stable description, part of cache keys."""
        return f"{self.name}:j{self.jitter_ms:g}:w{self.wrong_note_rate:g}:c{self.compression:g}"


TIERS: tuple[Tier, ...] = (
    Tier("pristine", 0.0, 0.0, 0.0, (95.0, 100.0)),
    Tier("good", 10.0, 0.0, 0.0, (80.0, 95.0)),
    Tier("moderate", 30.0, 0.02, 0.25, (65.0, 80.0)),
    Tier("poor", 60.0, 0.05, 0.5, (50.0, 65.0)),
)
TIER_BY_NAME = {tier.name: tier for tier in TIERS}


def tier(name: str) -> Tier:
    if name not in TIER_BY_NAME:
        raise ValueError(f"unknown degradation tier {name!r} (tiers: {', '.join(TIER_BY_NAME)})")
    return TIER_BY_NAME[name]


def item_seed(item_id: str, tier_name: str, seed: int = 0) -> int:
    """A stable 63-bit seed for (item, tier, seed), the same in every process."""
    digest = hashlib.sha256(f"{item_id}|{tier_name}|{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def degrade(seq: NoteSequence, tier_name: str, item_id: str, seed: int = 0) -> NoteSequence:
    """``seq`` at quality tier ``tier_name``, deterministically for (item_id, seed)."""
    return tier(tier_name).apply(seq, np.random.default_rng(item_seed(item_id, tier_name, seed)))


def degradation_pairs(seq: NoteSequence, item_id: str, tier_name: str = "poor", seed: int = 0):
    """(clean, degraded) versions of one performance: an invariance or ranking pair."""
    return seq, degrade(seq, tier_name, item_id, seed)
