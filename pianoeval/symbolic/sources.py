"""The corpus sources, loaded once per process: items and their cached representations.

    corpus_items("asap")               # every ASAP window (tuple of SymbolicItem)
    corpus_store("tokens", "asap")     # their REMI tokens (built and cached on first use)
    corpus_store("graphs", "percepiano", tier="poor")   # degraded PercePiano graphs
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from pianoeval.data.dataset import load_percepiano
from pianoeval.errors import DataError
from pianoeval.paths import asap_root, percepiano_root
from pianoeval.symbolic import curves, graphs, tokens
from pianoeval.symbolic.cache import RaggedStore, build_store
from pianoeval.symbolic.corpus import ASAP, PERCEPIANO, asap_items, percepiano_items


@lru_cache(maxsize=4)
def percepiano_data(labels: str = "percepiano19"):
    """``load_percepiano(labels=labels)`` (labels and splits), once per process and label set."""
    return load_percepiano(labels=labels)


def source_roots(sources=(PERCEPIANO, ASAP)) -> dict:
    """Folder of each source; ASAP's raises a DataError with instructions when absent."""
    roots = {}
    if PERCEPIANO in sources:
        roots[PERCEPIANO] = percepiano_root()
    if ASAP in sources:
        roots[ASAP] = asap_root()
    return roots


@lru_cache(maxsize=8)
def corpus_items(source: str, pieces: tuple[str, ...] | None = None) -> tuple:
    """All items of one source (PercePiano segments or ASAP windows), or of some pieces
    only (ASAP piece folders such as ``"Bach/Fugue/bwv_848"``, PercePiano piece names)."""
    if source == PERCEPIANO:
        items = percepiano_items(percepiano_data())
    elif source == ASAP:
        items, _ = asap_items(folders=list(pieces) if pieces else None)
    else:
        raise ValueError(f"unknown corpus source {source!r} (sources: {PERCEPIANO}, {ASAP})")
    if pieces:
        items = [i for i in items if i.piece in pieces]
        if not items:
            raise DataError(f"no {source} items for pieces {list(pieces)}")
    return tuple(items)


@lru_cache(maxsize=16)
def corpus_store(kind: str, source: str, tier: str | None = None, seed: int = 0,
                 pieces: tuple[str, ...] | None = None) -> RaggedStore:
    """The cached ``kind`` representation of a source (optionally degraded to ``tier``)."""
    label = source if not pieces else f"{source}-" + hashlib.sha256("|".join(pieces).encode()).hexdigest()[:8]
    return build_store(kind, list(corpus_items(source, pieces)), source_roots((source,)), label, tier=tier, seed=seed)


def input_dim_of(kind: str) -> int:
    """Model input width of a representation: vocabulary size, node features or curve channels."""
    widths = {"tokens": tokens.vocab_size, "graphs": lambda: graphs.NODE_FEATURE_DIM,
              "curves": lambda: len(curves.CHANNELS)}
    return widths[kind]()
