"""Where things live: the repository, the bundled data, results, external data.

Every location can be moved with an environment variable, so the same code runs
from a checkout, a cluster node or a notebook.
"""

from __future__ import annotations

import os
from pathlib import Path

from pianoeval.errors import DataError

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_ROOT = Path(__file__).resolve().parent

#: The bundled, MIT-licensed PercePiano copy (MIDI, MusicXML as .mxl, labels).
BUNDLED_PERCEPIANO = PACKAGE_ROOT / "data" / "bundled" / "percepiano"
#: Audio backbones shipped with the package (small; each folder's config.json names the
#: command that rebuilds it and the content hash of its weights).
SHIPPED_BACKBONES = PACKAGE_ROOT / "audio" / "weights"

ASAP_ENV = "PIANOEVAL_ASAP"
PERCEPIANO_ENV = "PIANOEVAL_PERCEPIANO"
RESULTS_ENV = "PIANOEVAL_RESULTS"
CACHE_ENV = "PIANOEVAL_CACHE"

ASAP_HOWTO = (
    "ASAP (CC BY-NC-SA 4.0) is not bundled: clone https://github.com/fosfrancesco/asap-dataset "
    f"and point {ASAP_ENV} at it (default: ../shared/data/asap beside the checkout)"
)


def percepiano_root() -> Path:
    """The PercePiano folder: ``$PIANOEVAL_PERCEPIANO`` or the bundled copy."""
    return Path(os.environ.get(PERCEPIANO_ENV, BUNDLED_PERCEPIANO))


def results_root() -> Path:
    """Where runs, sweeps and ablations write: ``$PIANOEVAL_RESULTS`` or ``results/``."""
    return Path(os.environ.get(RESULTS_ENV, REPO_ROOT / "results"))


def cache_root() -> Path:
    """Derived, regenerable data (feature caches, renders): ``$PIANOEVAL_CACHE`` or ``.cache/``."""
    return Path(os.environ.get(CACHE_ENV, REPO_ROOT / ".cache"))


def asap_root(required: bool = True) -> Path | None:
    """The ASAP folder: ``$PIANOEVAL_ASAP``, else ``../shared/data/asap`` when present.

    Raises DataError with instructions when it is required and absent.
    """
    if os.environ.get(ASAP_ENV):  # set on purpose: never silently replaced by another copy
        path = Path(os.environ[ASAP_ENV])
        if (path / "metadata.csv").is_file():
            return path
        raise DataError(f"{ASAP_ENV}={path}: not an ASAP folder (no metadata.csv there); point it at a clone "
                        f"of asap-dataset, or unset it to use ../shared/data/asap")
    candidates = [REPO_ROOT.parent / "shared" / "data" / "asap"]
    for path in candidates:
        if (path / "metadata.csv").is_file():
            return path
    if not required:
        return None
    tried = ", ".join(str(p) for p in candidates)
    raise DataError(f"ASAP not found (looked in {tried}): {ASAP_HOWTO}")
