"""Sweeps: YAML search spaces -> Ray Tune trials (Optuna samplers, ASHA pruning) -> results tables."""

from pianoeval.sweep.engine import SweepOptions, SweepResult, run_sweep
from pianoeval.sweep.space import SearchSpace, available_spaces, load_space

__all__ = ["SearchSpace", "SweepOptions", "SweepResult", "available_spaces", "load_space", "run_sweep"]
