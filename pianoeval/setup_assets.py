"""Local assets that third-party packages would otherwise download at run time.

partitura, when pyfluidsynth can load libfluidsynth, downloads
``MuseScore_General.sf3`` into its own package folder *at import time*, which
fails on an offline machine. ``ensure_partitura_soundfont`` puts a local General
MIDI soundfont at that path first (Debian's ``musescore-general-soundfont``,
else the ``TimGM6mb.sf2`` that pretty_midi ships). Run once by ``make setup``
(``python -m pianoeval.setup_assets``) and again, cheaply, before any import of
partitura inside the library.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

DEBIAN_SOUNDFONTS = (
    Path("/usr/share/sounds/sf3/MuseScore_General.sf3"),
    Path("/usr/share/sounds/sf3/MuseScore_General_Full.sf3"),
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
)


def _partitura_asset() -> Path | None:
    spec = importlib.util.find_spec("partitura")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "assets" / "MuseScore_General.sf3"


def _pretty_midi_soundfont() -> Path | None:
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "TimGM6mb.sf2"
    return path if path.is_file() else None


def ensure_partitura_soundfont(verbose: bool = False) -> Path | None:
    """Make sure partitura's soundfont path holds a local file; return it.

    Returns None when partitura is not installed. Raises RuntimeError (with the
    fix) when no local soundfont can be found at all.
    """
    target = _partitura_asset()
    if target is None:
        return None
    if target.exists():
        return target
    source = next((p for p in DEBIAN_SOUNDFONTS if p.exists()), None) or _pretty_midi_soundfont()
    if source is None:
        raise RuntimeError(
            f"partitura would download a soundfont to {target} at import time; install Debian's "
            "musescore-general-soundfont (or pretty_midi) so a local one can be linked there"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(source.resolve(), target)
    except OSError:
        import shutil

        shutil.copyfile(source, target)
    if verbose:
        print(f"[setup] partitura soundfont: {target} -> {source}")
    return target


def main() -> int:
    path = ensure_partitura_soundfont(verbose=True)
    if path is None:
        print("[setup] partitura not installed; nothing to do", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
