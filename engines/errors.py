"""Errors raised by the engines package.

Every error has two parents: the package's own base class and the matching
builtin, so callers can catch either (``except EngineError`` or
``except ValueError``).
"""

from __future__ import annotations

from core.errors import ActionStreamError, ConfigError


class EngineError(ActionStreamError):
    """Base class of every error raised by :mod:`engines`."""


class UnknownTypeError(EngineError, KeyError):
    """A config names a ``type`` that no registry knows."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ModelConfigError(EngineError, ConfigError):
    """A model config has a missing, unknown or invalid key."""


class CheckpointError(EngineError, ValueError):
    """A checkpoint cannot be read or does not fit the model."""


class BackendUnavailable(EngineError, ImportError):
    """An optional backend's library is not installed or has no device."""


class InputShapeError(EngineError, ValueError):
    """An input batch does not match the engine's input spec."""


class ExportError(EngineError, RuntimeError):
    """ONNX export failed, or the exported graph disagrees with torch."""
