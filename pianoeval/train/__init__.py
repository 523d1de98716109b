"""Training: the Lightning module every model trains in, data modules by input kind,
shared losses, and ``train_run`` (fit + best checkpoint + evaluation + provenance)."""

from pianoeval.train.data import DATA_MODULES, build_datamodule
from pianoeval.train.module import PerformanceModule
from pianoeval.train.run import RunResult, evaluate_weights, final_table, load_weights, train_run

__all__ = ["DATA_MODULES", "PerformanceModule", "RunResult", "build_datamodule", "evaluate_weights", "final_table",
           "load_weights", "train_run"]
