"""The errors that are the user's to fix: bad input, named, with what to do instead.

Every one derives from :class:`FerkitError`. The CLI prints such an error as ``error: <message>``
(one line, plus detail lines the message holds) and exits with status 2; ``-v`` adds the
traceback. Any other exception is a bug in ferkit (or in code that calls it) and is shown with
its traceback. So raise a :class:`FerkitError` where input from the user (a config value, a
file, a command-line option, an argument of the Python API) is refused, and a plain built-in
error (``ValueError``, ``TypeError``, ...) where code broke a contract.

Each kind also derives from the built-in error callers caught before it existed (``ValueError``
for bad values, ``RuntimeError`` for unusable files, ...), so ``except ValueError`` still
catches a bad config. More specific kinds live beside the code that raises them
(:class:`~ferkit.data.splits.SplitNotAvailable`, :class:`~ferkit.run_folder.RunFolderBusy`,
:class:`~ferkit.models.weights.WeightsMismatchError`, ...) and derive from one of these.

This module imports nothing, so the CLI can name these types before it imports torch.
"""

from __future__ import annotations


class FerkitError(Exception):
    """Input the user can fix; the message says what was given, what is allowed and the fix."""


class ConfigError(FerkitError, ValueError):
    """One or more invalid configuration entries (recipe, ``--set``, method parameters, a
    combination of settings); the message lists all of them."""


class UsageError(FerkitError, ValueError):
    """A command-line option or API argument outside what the command accepts (``--prior``,
    ``--tau``, ``--min-face``, a backend name, an output file's suffix, ...)."""


class DatasetError(FerkitError, RuntimeError):
    """A dataset root, label file or image that cannot be used; the message says how to fix it."""


class CheckpointError(FerkitError, RuntimeError):
    """A checkpoint that is missing, unreadable or does not fit the model it is loaded into."""


class MissingFileError(FerkitError, FileNotFoundError):
    """A file named by the user (weights, a model) that does not exist."""


class MissingExtra(FerkitError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` extra."""


class TrainingDiverged(FerkitError, FloatingPointError):
    """The training loss became NaN or infinite; the message names the step and what to change."""


__all__ = ["CheckpointError", "ConfigError", "DatasetError", "FerkitError", "MissingExtra",
           "MissingFileError", "TrainingDiverged", "UsageError"]
