"""Shared pytest fixtures: synthetic clips, image folders and a local RTSP server.

Fixtures:
    sample_video: session-wide 2 s clip (48 frames, 24 fps, 320×240, H.264 MP4) as a
        :class:`tests.media.VideoSpec`. Read-only: copy it before damaging it.
    image_folder: a fresh folder of 12 numbered JPEGs (``img_00001.jpg`` …, 320×240).
    rtsp_server: a running :class:`tests.media.RtspServer` looping ``sample_video`` at
        ``rtsp_server.url``; skipped with the reason when GStreamer's RTSP server is
        missing. Killed after the test.
    media: a :class:`MediaFactory` writing clips, image folders and damaged copies into
        the test's ``tmp_path``.

Under ``CI=true`` a skip is a failure unless the test needs a GPU/CUDA or TensorRT: the
hooks come from :mod:`tests.ci_skips`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ci_skips import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401 (hooks)
from tests.media import (
    RtspServer,
    VideoSpec,
    corrupt,
    make_image_folder,
    make_video,
    rtsp_server_unavailable,
    truncate,
)


class MediaFactory:
    """Writes test media into one folder (the test's ``tmp_path``).

    Example::

        def test_x(media):
            clip = media.video(frames=10)           # tmp_path/clip.mp4
            cut = media.truncated(clip.path, 0.5)   # tmp_path/clip_truncated.mp4
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        """A path inside the folder (nothing is created)."""
        return self.root / name

    def video(self, name: str = "clip.mp4", **kwargs: Any) -> VideoSpec:
        """:func:`tests.media.make_video` into the folder."""
        return make_video(self.root / name, **kwargs)

    def image_folder(self, name: str = "frames", **kwargs: Any) -> Path:
        """:func:`tests.media.make_image_folder` into a sub-folder; returns the sub-folder."""
        folder = self.root / name
        make_image_folder(folder, **kwargs)
        return folder

    def truncated(self, source: str | os.PathLike[str], fraction: float, name: str | None = None) -> Path:
        """A copy of ``source`` cut to the first ``fraction`` of its bytes."""
        source = Path(source)
        return truncate(source, fraction, dest=self.root / (name or f"{source.stem}_truncated{source.suffix}"))

    def corrupted(self, source: str | os.PathLike[str], name: str | None = None, **kwargs: Any) -> Path:
        """A copy of ``source`` with its header overwritten by random bytes."""
        source = Path(source)
        return corrupt(source, dest=self.root / (name or f"{source.stem}_corrupt{source.suffix}"), **kwargs)

    def file(self, name: str, content: bytes | str = b"") -> Path:
        """A file with the given content (e.g. an empty ``.mp4`` or a text file named ``.mp4``)."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode()
        path.write_bytes(content)
        return path


@pytest.fixture(scope="session")
def sample_video(tmp_path_factory: pytest.TempPathFactory) -> VideoSpec:
    return make_video(tmp_path_factory.mktemp("media") / "sample.mp4", frames=48, fps=24, size=(320, 240), gop=12)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    make_image_folder(folder, frames=12, size=(320, 240))
    return folder


@pytest.fixture
def media(tmp_path: Path) -> MediaFactory:
    return MediaFactory(tmp_path)


@pytest.fixture
def rtsp_server(sample_video: VideoSpec) -> Iterator[RtspServer]:
    reason = rtsp_server_unavailable()
    if reason:
        pytest.skip(reason)
    with RtspServer(sample_video.path) as server:
        yield server


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``mm`` run mmdet / mmpose themselves (the ``mm`` extra): they are
    deselected (not skipped) unless the ``-m`` expression names ``mm``, e.g. ``-m mm``."""
    import re

    if re.search(r"\bmm\b", config.getoption("markexpr") or ""):
        return
    deselected = [item for item in items if item.get_closest_marker("mm") is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.get_closest_marker("mm") is None]
