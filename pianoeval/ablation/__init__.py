"""Ablations: specs (variants as diffs over a baseline) -> trial sets (variants x folds x seeds)
on the sweep engine -> paired comparison tables; and the staged-elimination protocol."""

from pianoeval.ablation.compare import AblationRun, comparison_markdown, load_run
from pianoeval.ablation.spec import AblationSpec, Trial, available_ablations, load_ablation

__all__ = ["AblationRun", "AblationSpec", "Trial", "available_ablations", "comparison_markdown", "load_ablation",
           "load_run"]
