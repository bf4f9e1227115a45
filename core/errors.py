"""The one error root of the project.

Every error the project raises derives from :class:`ActionStreamError` and the matching
builtin (``ConfigError(ActionStreamError, ValueError)``), so callers catch either. The
class attribute :attr:`ActionStreamError.user_error` marks bad input (exit code 2 in the
command lines: a missing file, a wrong flag, a checkpoint that does not fit) apart from a
failure while running (exit code 1, e.g. :class:`StageFailed`).
"""

from __future__ import annotations


class ActionStreamError(Exception):
    """Base class of every error raised by this project's packages."""

    #: True when the error is the user's input (exit code 2), False for a failure while running.
    user_error: bool = True


class ConfigError(ActionStreamError, ValueError):
    """A config file, key, flag or value is wrong; the message names it and what to do."""


class OutputError(ActionStreamError, OSError):
    """An output cannot be written, or would overwrite an input."""
