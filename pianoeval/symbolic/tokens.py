"""REMI tokens (S1) through miditok 3.1.

The tokenizer is fixed here (the cache key includes this file):

* pitch 21-108 (the piano), **32 velocity bins**, sustain-pedal tokens (``Pedal`` /
  ``PedalOff``), ``Bar`` and ``Position`` tokens, ``Tempo`` tokens (32 bins, 40-250 qpm)
  and ``Duration`` tokens; special tokens ``PAD`` (id 0), ``BOS``, ``EOS``, ``MASK``.
* Time: performance MIDI has no musical grid (PercePiano and ASAP files both carry one
  constant tempo), so every sequence is laid on the fixed clock of
  ``pianoeval.data.midi.to_score`` (120 qpm, 4/4): a ``Bar`` is 2 s of performance
  and ``Position`` counts 1/16 beat = 31.25 ms inside it. miditok's REMI expresses time
  by Bar + Position; it has no ``TimeShift`` token (that is TSD / MIDI-like), and the
  position inside the bar plays that role. The Tempo token therefore always reads the
  clock's 120 qpm and carries no information here; it stays in the vocabulary so a
  beat-warped grid (a possible extension) keeps the same token set.
* Durations: 1/16 beat up to 4 beats (2 s), then 1/4 beat up to 16 beats (8 s).

Vocabulary: 398 tokens (the design's "~500").
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from pianoeval.data.midi import NoteSequence, RepresentationError, to_score

PAD_ID = 0
SPECIAL_TOKENS = ("PAD", "BOS", "EOS", "MASK")


@lru_cache(maxsize=1)
def tokenizer():
    """The project's REMI tokenizer (built once per process)."""
    import miditok

    config = miditok.TokenizerConfig(
        pitch_range=(21, 109),
        beat_res={(0, 4): 16, (4, 16): 4},
        num_velocities=32,
        special_tokens=list(SPECIAL_TOKENS),
        use_sustain_pedals=True,
        use_tempos=True,
        num_tempos=32,
        tempo_range=(40, 250),
        use_time_signatures=False,
        use_programs=False,
    )
    return miditok.REMI(config)


def vocab_size() -> int:
    return len(tokenizer())


def mask_id() -> int:
    return int(tokenizer().vocab["MASK_None"])


def special_ids() -> np.ndarray:
    """Ids of the special tokens (never chosen as random replacements in masking)."""
    vocab = tokenizer().vocab
    return np.array([vocab[f"{name}_None"] for name in SPECIAL_TOKENS])


def represent(seq: NoteSequence) -> dict[str, np.ndarray]:
    """``{"tokens": [T] int16}``: the REMI token ids of one performance segment."""
    if len(seq) == 0:
        raise RepresentationError("no notes in the segment")
    keep = (seq.pitch >= 21) & (seq.pitch <= 108)
    if not keep.any():
        raise RepresentationError("no notes inside the piano range 21-108")
    if not keep.all():  # notes outside the piano range have no Pitch token
        seq = NoteSequence(seq.onset[keep], seq.offset[keep], seq.pitch[keep], seq.velocity[keep],
                           seq.pedal_time, seq.pedal_value)
    encoded = tokenizer().encode(to_score(seq))
    ids = encoded[0].ids if isinstance(encoded, list) else encoded.ids
    if not ids:
        raise RepresentationError("the tokenizer returned no tokens")
    return {"tokens": np.asarray(ids, dtype=np.int16)}


def describe(ids) -> list[str]:
    """Token names, for inspection and docs."""
    tok = tokenizer()
    return [tok[int(i)] for i in ids]
