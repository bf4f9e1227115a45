"""Real footage of people from Debian's ``opencv-doc`` package, for the people tests.

* ``vtest.avi``: 768×576, 10 fps, 795 frames of pedestrians (OpenCV's people-detection demo);
* ``messi5.jpg`` and ``basketball1.png``: stills with people close to the camera.

The fixtures skip with the install hint when the package is missing; under ``CI=true`` that
skip is a failure (CI installs it: ``.ci/run``'s APT_PACKAGES; see ``tests/ci_skips.py``).
Import the fixtures into a test module (``from tests.footage import vtest``) to use them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
INSTALL_HINT = "apt-get install opencv-doc (Debian's OpenCV examples: vtest.avi, messi5.jpg, basketball1.png)"


def footage(name: str) -> Path:
    """The path of an ``opencv-doc`` example file; skips (fails under CI=true) when it is missing."""
    path = OPENCV_DATA / name
    if not path.is_file():
        pytest.skip(f"real footage {path} is missing: {INSTALL_HINT}")
    return path


@pytest.fixture(scope="session")
def vtest() -> Path:
    """``vtest.avi``: pedestrians, 768×576, 10 fps, 795 frames."""
    return footage("vtest.avi")


@pytest.fixture(scope="session")
def people_stills() -> list[Path]:
    """``messi5.jpg`` and ``basketball1.png``: people close to the camera."""
    return [footage("messi5.jpg"), footage("basketball1.png")]
