"""Errors raised by the streaming runtime.

Each error subclasses :class:`StreamError` and the matching builtin, so callers can
catch either, e.g. ``except SourceTimeout`` or ``except TimeoutError``.
"""

from __future__ import annotations

from core.errors import ActionStreamError, ConfigError, OutputError

__all__ = [
    "ActionStreamError",
    "ConfigError",
    "DisplayUnavailable",
    "OutputError",
    "SinkError",
    "SourceError",
    "SourceNotFound",
    "SourceTimeout",
    "StageError",
    "StreamError",
    "TransportError",
]


class StreamError(ActionStreamError):
    """Base class of every error raised by :mod:`stream`."""


class SourceError(StreamError, OSError):
    """A video source cannot be opened or read."""


class SourceNotFound(SourceError, FileNotFoundError):
    """A file, folder or camera that does not exist."""


class SourceTimeout(SourceError, TimeoutError):
    """A network source did not answer within its timeout."""


class SinkError(StreamError, OSError):
    """An output cannot be written."""


class DisplayUnavailable(SinkError):
    """``--show`` was asked for on a machine without a display."""


class TransportError(StreamError, ConnectionError):
    """A ZeroMQ link cannot be set up, or a message off the wire is malformed."""


class StageError(StreamError, RuntimeError):
    """A stage failed; ``stage`` names it and ``__cause__`` holds the original error."""

    user_error = False

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"stage {stage!r} failed: {message}")
        self.stage = stage
