"""Frame sources: video files, network streams, cameras and image folders.

``SOURCES`` maps each kind to its class; :func:`open_source` picks the kind from what
the user typed after ``--source``:

=============================================  ==========  =========================
spec                                           kind        class
=============================================  ==========  =========================
an existing file                               ``file``    :class:`FileSource`
an existing folder                             ``images``  :class:`ImageFolderSource`
``rtsp://``, ``rtsps://``, ``http(s)://`` URL  ``rtsp``    :class:`NetworkSource`
an integer or ``/dev/videoN``                  ``webcam``  :class:`WebcamSource`
=============================================  ==========  =========================
"""

from __future__ import annotations

import inspect
import logging
import os
import re
from pathlib import Path
from typing import Any

from stream.errors import ConfigError, SourceNotFound
from stream.sources.file import FileSource, Pacer, VideoInfo
from stream.sources.images import ImageFolderSource
from stream.sources.network import SCHEMES, Backoff, NetworkSource, redact_url
from stream.sources.webcam import WebcamSource
from stream.stage import Source

__all__ = [
    "SOURCES",
    "Backoff",
    "FileSource",
    "ImageFolderSource",
    "NetworkSource",
    "Pacer",
    "VideoInfo",
    "WebcamSource",
    "detect_kind",
    "open_source",
    "redact_url",
]

log = logging.getLogger(__name__)

SOURCES: dict[str, type[Source]] = {
    "file": FileSource,
    "images": ImageFolderSource,
    "rtsp": NetworkSource,
    "webcam": WebcamSource,
}

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_CAMERA = re.compile(r"^(\d+|/dev/video\d+)$")


def detect_kind(spec: str | int | os.PathLike[str]) -> str:
    """The source kind (a key of ``SOURCES``) for a ``--source`` value.

    Raises:
        ConfigError: If it is a URL with an unsupported scheme.
        SourceNotFound: If it is a path that does not exist.
    """
    if isinstance(spec, int) and not isinstance(spec, bool):
        return "webcam"
    text = os.fspath(spec) if isinstance(spec, os.PathLike) else str(spec)
    if m := _URL.match(text):
        scheme = m.group(1).lower()
        if scheme in SCHEMES:
            return "rtsp"
        if scheme == "file":
            return detect_kind(text[len("file://") :])
        supported = ", ".join(s + "://" for s in SCHEMES)
        raise ConfigError(f"unsupported URL scheme {scheme}:// in {redact_url(text)}; supported: {supported}")
    if _CAMERA.match(text.strip()):
        return "webcam"
    path = Path(text).expanduser()
    if path.is_dir():
        return "images"
    if path.exists():
        return "file"
    raise SourceNotFound(
        f"no such file or folder: {text}; pass a video file, a folder of frames, a camera index (0) or an rtsp:// URL"
    )


def _accepts(cls: type[Source]) -> set[str]:
    params = inspect.signature(cls.__init__).parameters
    return {name for name, p in params.items() if name != "self" and p.kind is not p.VAR_KEYWORD}


def open_source(
    spec: str | int | os.PathLike[str],
    *,
    realtime: bool = False,
    source_id: str | None = None,
    fps: float | None = None,
    kind: str | None = None,
    **options: Any,
) -> Source:
    """Build the source for a ``--source`` value (not yet set up).

    Args:
        spec: file, folder, URL, camera index or ``/dev/videoN``.
        realtime: pace files and image folders at their frame rate (cameras and
            streams are live anyway).
        source_id: stream name in packets; default a readable name (file stem, URL
            without credentials, ``camera0``).
        fps: frame rate of an image folder, or the rate to ask a camera for; ignored
            (with a warning) for files and streams, whose timestamps come from the stream.
        kind: force a kind from ``SOURCES`` instead of guessing it from ``spec``.
        **options: further keyword arguments of the kind's class, e.g. ``max_frames``
            (file, images), ``max_reconnects`` or ``fail_fast`` (rtsp), ``width`` (webcam).

    Returns:
        The source; call ``setup()`` (the runner does) before iterating.

    Raises:
        ConfigError: If ``kind`` or an option is unknown, or a URL scheme unsupported.
        SourceNotFound: If ``spec`` is a path that does not exist.
    """
    if kind is None:
        kind = detect_kind(spec)
    elif kind not in SOURCES:
        raise ConfigError(f"unknown source kind {kind!r}; valid kinds: {', '.join(sorted(SOURCES))}")
    cls = SOURCES[kind]
    accepted = _accepts(cls)
    unknown = sorted(set(options) - accepted)
    if unknown:
        valid = ", ".join(sorted(accepted - {"path", "url", "folder", "device"}))
        raise ConfigError(f"unknown option(s) for a {kind} source: {', '.join(unknown)}; valid: {valid}")
    kwargs: dict[str, Any] = dict(options)
    if source_id is not None:
        kwargs["source_id"] = source_id
    if realtime and "realtime" in accepted:
        kwargs["realtime"] = True
    if fps is not None:
        if "fps" in accepted:
            kwargs["fps"] = fps
        else:
            log.warning("fps=%s ignored for a %s source: its timestamps come from the stream", fps, kind)
    if isinstance(spec, os.PathLike):
        target: Any = os.fspath(spec)
    else:
        target = spec
    if isinstance(target, str) and target.startswith("file://"):
        target = target[len("file://") :]
    return cls(target, **kwargs)
