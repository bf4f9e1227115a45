"""The video writer keeps colours: solid BGR patches decode back as the same colours."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from stream.packet import FramePacket
from stream.sinks import VideoWriterSink

# BGR, as every frame in the pipeline
PATCHES = {"blue": (255, 0, 0), "green": (0, 255, 0), "red": (0, 0, 255), "orange": (0, 128, 255)}
SIDE = 32  # pixels per patch, a multiple of the 16-pixel macroblock
TOLERANCE = 12  # per channel, for 4:2:0 chroma, limited range and the encoder's rounding


def patches_frame(i: int) -> FramePacket:
    image = np.zeros((SIDE, SIDE * len(PATCHES), 3), np.uint8)
    for k, bgr in enumerate(PATCHES.values()):
        image[:, k * SIDE : (k + 1) * SIDE] = bgr
    return FramePacket(image, "cam", i, i, Fraction(1, 25), time.monotonic_ns(), meta={"fps": 25.0})


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv444p"])  # OpenCV's converter, and the encoder's own
def test_written_colours_decode_as_written(tmp_path: Path, pix_fmt: str) -> None:
    path = tmp_path / "colours.mp4"
    sink = VideoWriterSink(path, pix_fmt=pix_fmt, crf=10)
    sink.setup()
    try:
        for i in range(5):
            sink.process(patches_frame(i))
        sink.finish()
    finally:
        sink.close()
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(decoded) == 5
    for image in decoded:
        for k, (name, bgr) in enumerate(PATCHES.items()):
            centre = image[8:-8, k * SIDE + 8 : (k + 1) * SIDE - 8].reshape(-1, 3).astype(int)
            worst = np.abs(centre - np.array(bgr)).max()
            assert worst <= TOLERANCE, (
                f"{name} patch {tuple(bgr)} decoded as {centre.mean(0).round().astype(int).tolist()}"
            )
