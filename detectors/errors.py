"""Errors raised by the detectors package.

They derive from :class:`engines.errors.EngineError` (detectors are models, and the
command lines already report engine errors as one line with exit code 2) and from the
matching builtin, so callers catch either.
"""

from __future__ import annotations

from core.errors import ConfigError
from engines.errors import EngineError


class DetectorError(EngineError):
    """Base class of every error raised by :mod:`detectors`."""


class DetectorConfigError(DetectorError, ConfigError):
    """An unknown model name, backend or device, or a parameter out of range."""


class ModelNotAvailable(DetectorError, NotImplementedError):
    """A model source this version cannot load yet (e.g. mmdet / mmpose checkpoints)."""


class ModelFileMissing(DetectorError, FileNotFoundError):
    """A model file that should ship with the package is not there."""


class LibraryMissing(DetectorError, ImportError):
    """A library a model or the tracker needs is not installed; the message says what to install."""
