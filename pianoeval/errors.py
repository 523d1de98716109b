"""The project's exception types.

Every user-facing error is one line that names the file, key or value and says
what to do. Runners turn these into exit code 2 (bad input) without a traceback.
"""


class PianoevalError(Exception):
    """Base class: an error whose message is meant for the user as it is."""


class ConfigError(PianoevalError, ValueError):
    """A config, search space or ablation file is malformed.

    The message has the form ``<file>: <key.path>: <problem> (<fix>)``.
    """


class DataError(PianoevalError):
    """A data folder, label file or cache is missing or unusable."""


class TrialDiverged(PianoevalError):
    """A training run produced a non-finite loss; the trial stops at once."""


class RunInterrupted(Exception):
    """A sweep or ablation stopped by Ctrl-C or SIGTERM; the message is the resume command.

    Not a PianoevalError: it is a clean stop (exit 130), not bad input."""
