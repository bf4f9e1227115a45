"""Folders of numbered images (MMAction2's ``--use-frames`` rawframe layout).

:class:`ImageFolderSource` reads ``img_00001.jpg, img_00002.jpg, …`` in natural order
(``img_2`` before ``img_10``), or the files matching a name template such as
``img_{:05d}.jpg`` in the order of their number. Image ``k`` gets ``pts = k`` in time base
``1/fps``, so stream time follows the folder's frame rate even where an unreadable image
is skipped (it is logged and reported as a ``SourceEvent(kind='error')``).
"""

from __future__ import annotations

import logging
import os
import re
import string
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from stream.errors import ConfigError, SourceError, SourceNotFound
from stream.packet import FramePacket, SourceEvent
from stream.sources.file import Pacer, VideoInfo
from stream.stage import Output, Source

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_FPS = 30.0
_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders numbers by value: ``img_2`` before ``img_10``."""
    return tuple((0, int(part)) if part.isdigit() else (1, part.lower()) for part in _DIGITS.split(name) if part)


def template_regex(template: str) -> re.Pattern[str]:
    """A regex matching the names a ``str.format`` template with one integer field produces.

    ``img_{:05d}.jpg`` matches ``img_00001.jpg`` (and ``img_123456.jpg``); the number is
    group 1.

    Raises:
        ConfigError: If the template does not have exactly one integer field.
    """
    pieces: list[str] = []
    fields = 0
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"filename template {template!r}: {exc}") from exc
    for literal, field, spec, _conversion in parsed:
        pieces.append(re.escape(literal))
        if field is None:
            continue
        if field not in ("", "0") or (spec and not spec.endswith("d")):
            raise ConfigError(f"filename template {template!r}: expected one integer field like {{:05d}}")
        fields += 1
        pieces.append(r"(\d+)")
    if fields != 1:
        raise ConfigError(f"filename template {template!r}: expected exactly one integer field like {{:05d}}")
    return re.compile("".join(pieces) + r"\Z")


def read_image(path: Path) -> np.ndarray | None:
    """An image file as ``H×W×3`` uint8 BGR, or None if it can't be read or decoded."""
    try:
        data = np.fromfile(path, dtype=np.uint8)  # also handles non-ASCII paths, unlike cv2.imread
    except OSError:
        return None
    if data.size == 0:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        return None
    return image


class ImageFolderSource(Source):
    """Frames from a folder of images.

    Args:
        folder: the folder.
        template: file name template with one integer field (``img_{:05d}.jpg``): only
            matching files are read, in order of their number. Default: every image file
            (``.jpg .jpeg .png .bmp .tif .tiff .webp``), in natural order.
        fps: frame rate of the folder: image ``k`` has ``pts = k``, ``time_base = 1/fps``.
        realtime: emit images at ``fps`` (the source then counts as live).
        max_frames: stop after this many frames (all if None).
        source_id: stream name in packets; default the folder name.

    Attributes:
        files: the images, in frame order (set by :meth:`setup`).
        info: size of the first image, fps, frame count and duration (set by :meth:`setup`).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        template: str | None = None,
        fps: float | None = None,
        realtime: bool = False,
        max_frames: int | None = None,
        source_id: str | None = None,
    ) -> None:
        fps = DEFAULT_FPS if fps is None else fps
        if not fps > 0:
            raise ConfigError(f"fps: expected a positive frame rate, got {fps}")
        if max_frames is not None and max_frames < 1:
            raise ConfigError(f"max_frames: expected a positive number of frames or None, got {max_frames}")
        self.folder = Path(folder)
        self.template = template
        self._pattern = template_regex(template) if template else None
        super().__init__(source_id or self.folder.resolve().name or str(self.folder))
        self.fps = Fraction(fps).limit_denominator(1001)
        self.time_base = 1 / self.fps
        self.realtime = realtime
        self.live = realtime
        self.max_frames = max_frames
        self.files: list[Path] = []
        self.info: VideoInfo | None = None

    def _list(self) -> list[Path]:
        names = os.listdir(self.folder)
        if self._pattern is not None:
            numbered = []
            for name in names:
                m = self._pattern.match(name)
                if m and (self.folder / name).is_file():
                    numbered.append((int(m.group(1)), name))
            return [self.folder / name for _, name in sorted(numbered)]
        images = [n for n in names if n.lower().endswith(IMAGE_EXTENSIONS) and (self.folder / n).is_file()]
        return [self.folder / n for n in sorted(images, key=natural_key)]

    def setup(self) -> None:
        """List the images and read the first one's size.

        Raises:
            SourceNotFound: If the folder does not exist.
            SourceError: If it is not a folder, holds no (readable) images.
        """
        if self.files:
            return
        if not self.folder.exists():
            raise SourceNotFound(f"image folder not found: {self.folder}")
        if not self.folder.is_dir():
            raise SourceError(f"{self.folder} is not a folder; for a video file use the file source")
        try:
            files = self._list()
        except OSError as exc:
            raise SourceError(f"cannot list image folder {self.folder}: {exc.strerror or exc}") from exc
        if not files:
            wanted = (
                f"files named like {self.template!r}"
                if self.template
                else "images (" + " ".join(IMAGE_EXTENSIONS) + ")"
            )
            raise SourceError(f"no {wanted} in {self.folder}; pass a folder of frames or a video file")
        first = next((image for image in map(read_image, files[:10]) if image is not None), None)
        if first is None:
            raise SourceError(f"cannot read any of the first images in {self.folder} (e.g. {files[0].name})")
        self.files = files
        height, width = first.shape[:2]
        self.info = VideoInfo(
            width, height, self.fps, len(files), float(len(files) / self.fps), self.time_base, "images"
        )
        log.info("opened %s: %d images, %dx%d, %s fps", self.folder, len(files), width, height, float(self.fps))

    def __iter__(self) -> Iterator[Output]:
        """Yield one frame per readable image, and an ``error`` event per unreadable one."""
        self.setup()
        pacer = Pacer(self.stop_event) if self.realtime else None
        frame_idx = 0
        for index, path in enumerate(self.files):
            if self.stop_event.is_set():
                return
            image = read_image(path)
            if image is None:
                message = f"cannot read image {path}; skipped"
                log.warning("%s", message)
                yield SourceEvent(self.source_id, "error", message, time.time(), {"path": str(path), "index": index})
                continue
            if pacer is not None and not pacer.wait(float(index * self.time_base)):
                return
            yield FramePacket(image, self.source_id, frame_idx, index, self.time_base, time.monotonic_ns())
            frame_idx += 1
            if self.max_frames is not None and frame_idx >= self.max_frames:
                return

    def close(self) -> None:
        """Stop iterating; safe from any thread."""
        self.stop_event.set()
