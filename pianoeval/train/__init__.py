"""Training: the Lightning module every model trains in, the run's data module (the one its
registry entry names), and ``train_run`` (fit + best checkpoint + evaluation + provenance).
The loss terms are shared model parts: ``pianoeval.models.losses``.

Names are resolved on first use, so ``pianoeval.train.cli`` reports a config error without
importing Lightning.
"""

from importlib import import_module

_EXPORTS = {
    "build_datamodule": "data",
    "PerformanceModule": "module",
    "RunResult": "run", "evaluate_weights": "run", "final_table": "run", "load_weights": "run", "train_run": "run",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # lazy: a name's module (Lightning, torch) is imported when the name is first used (keeps config errors under 1 s)
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pianoeval.train' has no attribute {name!r}")
    return getattr(import_module(f"pianoeval.train.{_EXPORTS[name]}"), name)
