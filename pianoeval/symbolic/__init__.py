"""The symbolic track: performance MIDI as tokens (S1), note graphs (S2, S2H) and curves (S3).

    >>> from pianoeval.symbolic import read_midi, corpus_store
    >>> seq = read_midi("performance.mid")                 # NoteSequence: notes + sustain pedal
    >>> tokens = corpus_store("tokens", "percepiano")     # cached REMI ids of every segment
    >>> windows = corpus_store("curves", "asap")          # ASAP cut into 8-bar windows

Modules: ``pianoeval.data.midi`` (NoteSequence, reading, the fixed-clock score; in the data
layer, since the audio track's aligned pre-training reads it too), ``corpus`` (items,
ASAP windows, cross-performer groups), ``tokens`` / ``graphs`` / ``curves`` (one
representation each), ``cache`` (parallel pre-processing into ``RaggedStore``s),
``sources`` (per-process loading), ``batches`` (batch types, dataset, collate),
``datamodule`` (the registered data modules), ``pretrain`` (self-supervised
pre-training; its config: ``pretrain_config``), ``degradation`` (controlled degradation of
performance MIDI), ``degradation_probe`` (the degradation sanity check). See docs/symbolic.md.

Names are resolved on first use, so ``pianoeval.symbolic.pretrain_config`` is checked without
importing torch.
"""

from importlib import import_module

_EXPORTS = {
    "CurveBatch": "batches", "GraphBatch": "batches", "ItemMeta": "batches", "SymbolicDataset": "batches",
    "TokenBatch": "batches", "collate_for": "batches",
    "KINDS": "cache", "RaggedStore": "cache", "build_store": "cache",
    "ASAP_GROUP_OFFSET": "corpus", "WINDOW_BARS": "corpus", "SymbolicItem": "corpus", "asap_items": "corpus",
    "music_groups": "corpus", "percepiano_items": "corpus",
    "MidiError": "pianoeval.data.midi", "NoteSequence": "pianoeval.data.midi",
    "RepresentationError": "pianoeval.data.midi", "read_midi": "pianoeval.data.midi", "to_score": "pianoeval.data.midi",
    "corpus_items": "sources", "corpus_store": "sources", "input_dim_of": "sources",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # lazy: a name's module (torch, symusic) is imported when the name is first used (keeps config errors under 1 s)
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pianoeval.symbolic' has no attribute {name!r}")
    module = _EXPORTS[name]
    return getattr(import_module(module if "." in module else f"pianoeval.symbolic.{module}"), name)
