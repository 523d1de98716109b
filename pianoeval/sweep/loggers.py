"""The ``--logger`` flag of the sweep and ablation runners: which trackers, checked at once.

Ray-free on purpose: a runner checks its flags before anything heavy loads (an unknown
logger is a one-line error in well under a second); the callbacks themselves are in
``pianoeval.sweep.tracking``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from pianoeval.errors import ConfigError

TRACKING_EXTRA = "tracking"
LOGGER_MODULES = {"mlflow": "mlflow", "wandb": "wandb"}  # --logger name -> the module it needs


@dataclass(frozen=True)
class LoggerChoice:
    """One ``--logger`` flag: ``mlflow`` with an optional tracking URI, ``wandb`` with a project."""

    name: str
    target: str | None = None


def parse_loggers(values: list[str] | tuple[str, ...] | None) -> tuple[LoggerChoice, ...]:
    """``["mlflow", "wandb=my-project"]`` -> choices; unknown, repeated or not installed
    loggers are one-line ``ConfigError``s, raised before anything starts."""
    choices: dict[str, LoggerChoice] = {}
    for value in values or ():
        name, _, target = value.partition("=")
        name = name.strip().lower()
        if name not in LOGGER_MODULES:
            raise ConfigError(f"--logger {value}: unknown logger {name!r}; use mlflow[=URI] or wandb[=PROJECT] "
                              "(TensorBoard files are always written)")
        if name in choices:
            raise ConfigError(f"--logger {value}: {name} is given twice; give it once")
        try:
            importlib.import_module(LOGGER_MODULES[name])
        except ImportError:
            raise ConfigError(f"--logger {name}: {LOGGER_MODULES[name]} is not installed; install the "
                              f"{TRACKING_EXTRA!r} extra: pip install -e '.[{TRACKING_EXTRA}]'") from None
        choices[name] = LoggerChoice(name, target.strip() or None)
    return tuple(choices.values())
