"""Score directions (dynamics and tempo words) as the HAN's embedding vectors.

The reference encodes the words in force at each note as a 4-slot dynamic vector
and a 5-slot tempo vector (``percepiano_han_reference.md`` section 1.2, columns
25-33). The values below are the reference's published numbers for the words that
partitura reports in PercePiano's scores and their usual spellings; words not in
the tables contribute nothing, as in the original.

Dynamic slots: 0 absolute marking, 1 crescendo/diminuendo (scaled by how far the
note is into the hairpin), 2 accents (sf, fz, ...), 3 relative and character words.
Tempo slots: 0 absolute tempo, 1 relative words, 2 gradual changes (rit., accel.),
3 ritenuto, 4 dance-type words (scherzo, menuetto).
"""

from __future__ import annotations

import re

ABSOLUTE_DYNAMICS = {
    "pppp": -1.1, "ppp": -0.9, "pp": -0.7, "p": -0.4, "piano": -0.4, "mp": -0.2,
    "mf": 0.2, "f": 0.4, "forte": 0.4, "ff": 0.7, "fff": 0.9,
}
# Impulsive accents apply only to the notes at their onset.
ACCENT_DYNAMICS = {"fz": 0.3, "sf": 0.5, "sfz": 0.7, "ffz": 0.8, "sffz": 0.9}
# Slot 3: relative and character words.
CHARACTER_DYNAMICS = {
    "più p": -0.5, "più piano": -0.5, "più pp": -0.7, "più f": 0.5, "più forte": 0.5,
    "rf": 0.3, "rfz": 0.3, "rinf": 0.3, "rinforzando": 0.3, "con brio": 0.3, "con forza": 0.5,
    "con fuoco": 0.7, "sotto voce": -0.5, "mezza voce": -0.3, "appassionato": 0.5,
}
HAIRPIN_VALUE = 0.7  # crescendo +0.7, diminuendo -0.7 at full extent
HAIRPIN_DEFAULT_LENGTH_Q = 10.0  # quarters, when a hairpin has no end

TEMPO_WORDS: dict[str, tuple[int, float]] = {
    # slot 0: absolute tempo
    "grave": (0, -0.9), "lento": (0, -0.9), "lent": (0, -0.9), "largo": (0, -0.7),
    "larghetto": (0, -0.6), "adagio": (0, -0.6), "andante": (0, -0.5), "andante con moto": (0, -0.4),
    "andantino": (0, -0.3), "mesto": (0, -0.3), "maestoso": (0, -0.2), "moderato": (0, 0.0),
    "tempo giusto": (0, 0.1), "allegretto": (0, 0.3), "allegro ma non troppo": (0, 0.4),
    "allegro": (0, 0.5), "allegro assai": (0, 0.6), "allegro molto": (0, 0.6), "molto allegro": (0, 0.6),
    "vivace": (0, 0.6), "molto vivace": (0, 0.7), "vivacissimo": (0, 0.8), "presto": (0, 0.8),
    "prestissimo": (0, 0.9),
    # slot 1: relative words
    "a tempo": (1, 0.0), "tempo i": (1, 0.0), "tempo primo": (1, 0.0), "meno mosso": (1, -0.6),
    "più mosso": (1, 0.6), "poco più mosso": (1, 0.3), "poco meno mosso": (1, -0.3),
    "animato": (1, 0.5), "agitato": (1, 0.4), "stretto": (1, 0.5), "tranquillo": (1, -0.2),
    "più lento": (1, -0.5),
    # slot 2: gradual changes
    "ritardando": (2, -0.5), "rit": (2, -0.5), "ritard": (2, -0.5), "rallentando": (2, -0.5),
    "rall": (2, -0.5), "slentando": (2, -0.3), "allargando": (2, -0.2), "accelerando": (2, 0.5),
    "accel": (2, 0.5), "stringendo": (2, 0.4), "smorzando": (2, -0.5),
    # slot 3: ritenuto
    "ritenuto": (3, -0.5), "riten": (3, -0.5), "poco riten": (3, -0.3),
    # slot 4: dance types
    "scherzo": (4, 1.0), "menuetto": (4, -1.0), "minuetto": (4, -1.0),
}
GRADUAL_TEMPO = {"increasing": 0.5, "decreasing": -0.5}  # unnamed accel./rit. spans

DYNAMIC_SLOTS = 4
TEMPO_SLOTS = 5


def normalise_word(text: str | None) -> str:
    """Lower-case, punctuation to spaces, single spaces ("Rit." -> "rit")."""
    if not text:
        return ""
    text = re.sub(r"[,.()\n]", " ", text.lower())
    return re.sub(r"\s+", " ", text).strip()


def tempo_word_vector(text: str | None) -> list[float] | None:
    """The 5-slot tempo vector of one word, or None when the word is not a tempo word."""
    word = normalise_word(text)
    hit = TEMPO_WORDS.get(word)
    if hit is None:
        # "sempre più mosso", "un poco rit." ...: the longest known phrase inside the text
        inside = [w for w in TEMPO_WORDS if len(w) > 3 and re.search(rf"\b{re.escape(w)}\b", word)]
        if not inside:
            return None
        hit = TEMPO_WORDS[max(inside, key=len)]
    vector = [0.0] * TEMPO_SLOTS
    vector[hit[0]] = hit[1]
    return vector


def dynamic_word_slot(text: str | None) -> tuple[int, float] | None:
    """(slot, value) of a dynamic word; None when unknown."""
    word = normalise_word(text)
    if word in ABSOLUTE_DYNAMICS:
        return 0, ABSOLUTE_DYNAMICS[word]
    if word in ACCENT_DYNAMICS:
        return 2, ACCENT_DYNAMICS[word]
    if word in CHARACTER_DYNAMICS:
        return 3, CHARACTER_DYNAMICS[word]
    return None
