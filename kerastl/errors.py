"""Errors kerastl raises for problems a user can act on.

The CLI prints ``Error: <message>`` for these and exits 1; anything else is a bug
and keeps its traceback.
"""


class KerastlError(Exception):
    """A problem with the user's input, data, files or environment."""


class DataError(KerastlError):
    """A data spec that cannot be read: missing path, empty folder, unknown source."""


class WeightsError(KerastlError):
    """Backbone weights that cannot be had: offline download, bad file, mismatch."""


class RunDirError(KerastlError):
    """A run directory that exists, is incomplete, or is not a kerastl run."""


class TrainingError(KerastlError):
    """Training that cannot go on, such as a loss that became NaN."""


class ModelFileError(KerastlError):
    """A model file that cannot be read: truncated, foreign, or unsafe to load."""
