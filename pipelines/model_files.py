"""Where a per-person model's checkpoint comes from (``stream.skeleton``, ``stream.stdet``)."""

from __future__ import annotations

from pathlib import Path

from core.errors import ConfigError
from stream.errors import SourceNotFound


def checkpoint_path(config: Path, checkpoint: str | None, load_from: str | None) -> Path:
    """The local checkpoint file of a per-person model: ``--checkpoint``, else the config's
    ``load_from`` (relative to the config). (Recognizers resolve theirs with
    :func:`pipelines.recognizer._local_path`, whose messages name their own flags.)

    Raises:
        ConfigError: Neither is given, or it is a URL (nothing is downloaded).
        SourceNotFound: The file does not exist.
    """
    path = checkpoint or load_from
    if not path:
        raise ConfigError(f"--config {config}: no --checkpoint given and the config has no load_from")
    if "://" in path:
        raise ConfigError(
            f"checkpoint {path}: this tool downloads nothing; download it yourself and pass --checkpoint FILE"
        )
    resolved = Path(path)
    if checkpoint is None and not resolved.is_absolute():
        resolved = config.parent / resolved  # a config's load_from is relative to the config
    if not resolved.is_file():
        raise SourceNotFound(f"checkpoint {path}: no such file")
    return resolved
