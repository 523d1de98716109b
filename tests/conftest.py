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


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> str:
    """A tiny random audio backbone in the real checkpoint format (config.json +
    model.safetensors), for the audio and fusion tests; its folder as a string."""
    from pianoeval.audio.backbones import BackboneSpec, ConformerBackbone
    from pianoeval.audio.checkpoint import save_backbone

    folder = tmp_path_factory.mktemp("backbone")
    torch.manual_seed(0)
    spec = BackboneSpec(hidden_size=32, num_heads=2, intermediate_size=64, conv_channels=8, db_mean=-45, db_std=20)
    save_backbone(ConformerBackbone(spec), folder, {"note": "tiny random backbone for tests"})
    return str(folder)


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole test session (2 CPUs, no dashboard)."""
    import os

    import ray

    from pianoeval.sweep.ray_session import _QUIET_ENV

    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("RAY_worker_niceness", "0")
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {k: os.environ[k] for k in _QUIET_ENV}})
    yield ray
    ray.shutdown()


def pytest_configure(config):
    config.addinivalue_line("markers", "asap: needs the ASAP dataset (PIANOEVAL_ASAP, or ../shared/data/asap)")


def pytest_collection_modifyitems(config, items):
    """ASAP (CC BY-NC-SA) is not bundled: without it, its tests are skipped, saying why."""
    from pianoeval.paths import asap_root

    if asap_root(required=False) is not None:
        return
    skip = pytest.mark.skip(reason="ASAP not found: set PIANOEVAL_ASAP=/path/to/asap-dataset "
                                   "(https://github.com/fosfrancesco/asap-dataset; not bundled, CC BY-NC-SA)")
    for item in items:
        if "asap" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def exported_frames(tmp_path_factory) -> str:
    """Real frames: a tiny random-init ``note_sa``'s readout frames (one per note, 16 wide) of
    about 150 PercePiano segments (whole music groups), exported as a frames file; its path."""
    from pianoeval.fusion.export import export_frames

    out = tmp_path_factory.mktemp("frames") / "note_sa.pt"
    export_frames("note_sa", out, overrides={"model.hidden_size": 8, "model.num_heads": 2}, limit=150,
                  progress=False, warn=lambda msg: None)
    return str(out)
