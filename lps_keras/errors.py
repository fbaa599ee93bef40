"""Errors a training run reports to the person who started it.

`train.py` prints any `RunError` as one message, without a traceback, and exits with
`exit_code`; the message names the setting or file at fault and says what to do. Pure
standard library, so every layer of the package can raise them.
"""


class RunError(Exception):
    """A run cannot start or cannot go on. Nothing already on disk is lost."""

    exit_code = 2


class ConfigError(RunError, ValueError):
    """A setting is invalid or cannot work with the data; found before training starts.

    The message starts with the setting's name, e.g. "config.eval.split: ...".
    """


class RunDirectoryError(RunError):
    """The run directory is in use, damaged beyond repair, or holds another model."""


class DivergenceError(RunError):
    """Training produced a non-finite loss or weights. The checkpoints still hold the last
    finite epoch, and nothing non-finite was saved, exported or reported."""

    exit_code = 1
