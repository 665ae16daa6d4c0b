"""Errors a user can act on. Each message is one line: what is wrong, and how to fix it.

The CLI turns these into one line on stderr and exit code 2; the Python API raises them as they are.
They subclass the built-in exceptions a caller would already catch (``ValueError``, ``FileNotFoundError``).
"""


class PPModelsError(Exception):
    """Base class of every error ppmodels raises on purpose."""


class DataError(PPModelsError, ValueError):
    """The data is malformed, of the wrong shape or range, or the spec naming it is wrong."""


class DataNotFoundError(PPModelsError, FileNotFoundError):
    """A data file is missing."""


class ConfigError(PPModelsError, ValueError):
    """A model or training option is invalid or does not apply to the chosen model."""


class RunError(PPModelsError, ValueError):
    """A run folder or checkpoint is missing, corrupt, or does not fit the request."""


class TrainingError(PPModelsError, RuntimeError):
    """Training could not go on (for example, the loss became non-finite)."""


class PPModelsWarning(UserWarning):
    """Something a user should know that does not stop the work; the CLI prints it as one ``warning:`` line."""


class ResumeWarning(PPModelsWarning):
    """A resumed run cannot repeat the uninterrupted one exactly (it runs under another number of processes)."""
