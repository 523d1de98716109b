"""The symbolic track: performance MIDI as tokens (S1), note graphs (S2, S2H) and curves (S3).

    >>> from pianoeval.symbolic import read_midi, corpus_store
    >>> seq = read_midi("performance.mid")                 # NoteSequence: notes + sustain pedal
    >>> tokens = corpus_store("tokens", "percepiano")     # cached REMI ids of every segment
    >>> windows = corpus_store("curves", "asap")          # ASAP cut into 8-bar windows

Modules: ``midi`` (NoteSequence, reading, the fixed-clock score), ``corpus`` (items,
ASAP windows, cross-performer groups), ``tokens`` / ``graphs`` / ``curves`` (one
representation each), ``cache`` (parallel pre-processing into ``RaggedStore``s),
``sources`` (per-process loading), ``batches`` (batch types, dataset, collate),
``datamodule`` (the registered data modules), ``pretrain`` (self-supervised
pre-training), ``degradation_probe`` (the degradation sanity check). See docs/symbolic.md.
"""

from pianoeval.symbolic.batches import CurveBatch, GraphBatch, ItemMeta, SymbolicDataset, TokenBatch, collate_for
from pianoeval.symbolic.cache import KINDS, RaggedStore, build_store
from pianoeval.symbolic.corpus import (ASAP_GROUP_OFFSET, WINDOW_BARS, SymbolicItem, asap_items, music_groups,
                                       percepiano_items)
from pianoeval.symbolic.midi import MidiError, NoteSequence, RepresentationError, read_midi, to_score
from pianoeval.symbolic.sources import corpus_items, corpus_store, input_dim_of

__all__ = [
    "ASAP_GROUP_OFFSET", "CurveBatch", "GraphBatch", "ItemMeta", "KINDS", "MidiError", "NoteSequence", "RaggedStore",
    "RepresentationError", "SymbolicDataset", "SymbolicItem", "TokenBatch", "WINDOW_BARS", "asap_items",
    "build_store", "collate_for", "corpus_items", "corpus_store", "input_dim_of", "music_groups", "percepiano_items",
    "read_midi", "to_score",
]
