"""Ablations: specs (variants as diffs over a baseline) -> trial sets (variants x folds x seeds)
on the sweep engine -> paired comparison tables; and the staged-elimination protocol.

Names are resolved on first use, so the runner checks a spec (``pianoeval.ablation.spec``)
without importing the comparison tables' statistics stack.
"""

from importlib import import_module

_EXPORTS = {
    "AblationRun": "compare", "comparison_markdown": "compare", "load_run": "compare",
    "AblationSpec": "spec", "Trial": "spec", "available_ablations": "spec", "load_ablation": "spec",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # lazy: a name's module is imported when the name is first used (keeps config errors under 1 s)
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pianoeval.ablation' has no attribute {name!r}")
    return getattr(import_module(f"pianoeval.ablation.{_EXPORTS[name]}"), name)
