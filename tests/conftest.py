"""Shared fixtures: the real bundled PercePiano data, loaded once per session."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # Two cores, and some tests run Ray trials beside the main process: one
    # torch thread per process keeps them from oversubscribing the machine.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def percepiano():
    from pianoeval.data import load_percepiano

    data = load_percepiano(warn=lambda msg: None)
    data.note_features  # extract (first run) or load the cache once
    return data
