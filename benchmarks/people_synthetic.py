"""Synthetic tracked people and the harness of the per-person action benchmarks (skeleton.py, stdet.py).

The detection, tracking and pose stages have their own benchmark (``benchmarks/people.py``);
these packets arrive with their ``Detections`` already filled in, so a benchmark measures the
action stage alone: ``N`` people walking back and forth across a 640×480 frame at 25 fps, each
with a track id, a box around their keypoints and COCO-17 keypoints whose limbs swing
sinusoidally. Coordinates and scores are rounded to float16 values, because MMAction2's
``inference_skeleton`` stores keypoints as float16: every path then sees the same numbers.

Also here: a counting sink, file-mode and live runs of one action stage in a
:class:`~stream.runner.Pipeline` (live: the process's RSS sampled), and the CPU's name.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from benchmarks.common import rss_mb
from stream.packet import Detections, FramePacket, SourceEvent
from stream.runner import Pipeline, RunReport
from stream.stage import Outputs, Source, Stage

FPS = 25
SIZE = (480, 640)  # (height, width)

# A standing COCO-17 person, 1 unit tall, feet at y=0 (y grows downwards in images: negated below).
_TEMPLATE = np.array(
    [
        (0.00, 0.93), (0.03, 0.95), (-0.03, 0.95), (0.06, 0.93), (-0.06, 0.93),  # nose, eyes, ears
        (0.12, 0.80), (-0.12, 0.80), (0.16, 0.62), (-0.16, 0.62), (0.17, 0.45), (-0.17, 0.45),  # arms
        (0.08, 0.50), (-0.08, 0.50), (0.09, 0.26), (-0.09, 0.26), (0.09, 0.02), (-0.09, 0.02),  # legs
    ],
    np.float32,
)  # fmt: skip
_SWING = np.zeros(17, np.float32)  # how much each joint swings forwards and back while walking
_SWING[[7, 8]], _SWING[[9, 10]], _SWING[[13, 14]], _SWING[[15, 16]] = 0.05, 0.10, 0.06, 0.12
_SIDE = np.where(np.arange(17) % 2 == 1, 1.0, -1.0).astype(np.float32)  # left/right limbs in opposite phase


def people_at(frame_idx: int, count: int, size: tuple[int, int] = SIZE) -> Detections:
    """The ``count`` people of frame ``frame_idx``: boxes, track ids 1..count, keypoints."""
    h, w = size
    i = np.arange(count, dtype=np.float32)
    t = frame_idx / FPS
    height = h * (0.30 + 0.25 * ((i * 0.37) % 1.0))  # people at different distances
    lane = w * (0.1 + 0.8 * ((i * 0.61 + 0.05) % 1.0))
    x = lane + 0.08 * w * np.sin(2 * np.pi * (0.1 + 0.03 * i) * t + i)  # walking back and forth
    feet = h * (0.55 + 0.4 * ((i * 0.29) % 1.0))
    phase = 2 * np.pi * 1.6 * t + i  # ~1.6 steps per second
    dx = _TEMPLATE[None, :, 0] + _SWING[None, :] * _SIDE[None, :] * np.sin(phase)[:, None]
    kx = x[:, None] + dx * height[:, None]
    ky = feet[:, None] - _TEMPLATE[None, :, 1] * height[:, None]
    score = 0.75 + 0.2 * np.sin(phase[:, None] * 0.7 + np.arange(17)[None, :])
    keypoints = np.stack([kx, ky, score], -1).astype(np.float16).astype(np.float32)
    lo, hi = keypoints[..., :2].min(1), keypoints[..., :2].max(1)
    pad = 0.05 * height[:, None]
    boxes = np.concatenate([lo - pad, hi + pad], 1)
    boxes = np.clip(boxes, 0, [w - 1, h - 1, w - 1, h - 1]).astype(np.float32)
    return Detections(
        boxes, np.full(count, 0.9, np.float32), np.zeros(count, np.int64), np.arange(1, count + 1, dtype=np.int64),
        keypoints=keypoints,
    )  # fmt: skip


def packet(frame_idx: int, count: int, image: np.ndarray, source_id: str = "cam") -> FramePacket:
    """Frame ``frame_idx`` of a 25 fps camera with ``count`` tracked people (``image`` is shared, not copied)."""
    return FramePacket(
        image, source_id, frame_idx, frame_idx, Fraction(1, FPS), time.monotonic_ns(),
        people_at(frame_idx, count, image.shape[:2]),
    )  # fmt: skip


class PacketSource(Source):
    """Given packets as fast as the pipeline takes them (a file: lossless)."""

    def __init__(self, packets: list[FramePacket]) -> None:
        super().__init__("cam")
        self.packets = packets

    def __iter__(self) -> Iterator[FramePacket | SourceEvent]:
        for p in self.packets:
            p.predictions = []  # a packet list may be run more than once
            p.capture_ns = time.monotonic_ns()
            yield p


class PacedPeople(Source):
    """A live camera: ``count`` people at 25 fps for ``seconds``, frames captured on the clock."""

    live = True

    def __init__(self, count: int, seconds: float, image: np.ndarray) -> None:
        super().__init__("cam")
        self.count, self.seconds, self.image = count, seconds, image

    def __iter__(self) -> Iterator[FramePacket | SourceEvent]:
        start = time.monotonic()
        for i in range(int(self.seconds * FPS)):
            delay = start + i / FPS - time.monotonic()
            if delay > 0 and self.stop_event.wait(delay):
                return
            yield packet(i, self.count, self.image)


class BenchmarkError(RuntimeError):
    """A check before or after timing failed: the numbers would not compare like with like."""


class Count(Stage):
    """The sink: frames and per-person labels that came out, and when the first and last frame did."""

    def __init__(self) -> None:
        super().__init__("sink")
        self.frames = self.labels = 0
        self.first = self.last = 0.0

    def process(self, packet: FramePacket) -> Outputs:
        now = time.perf_counter()
        self.first = self.first or now
        self.last = now
        self.frames += 1
        self.labels += len(packet.predictions)
        return None

    @property
    def fps(self) -> float:
        """Frames/s from the first frame out to the last (model loading and the first fill excluded)."""
        return (self.frames - 1) / max(self.last - self.first, 1e-9)

    @property
    def labels_per_s(self) -> float:
        return self.labels / max(self.last - self.first, 1e-9)


@dataclass
class Run:
    """What one pipeline run of an action stage gave."""

    sink: Count
    report: RunReport
    cpu_s: float
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, MiB)

    @property
    def cpu_ms_per_frame(self) -> float:
        return self.cpu_s / max(1, self.sink.frames) * 1e3


def run_stage(stage: Stage, source: Source, rss_interval_s: float | None = None) -> Run:
    """Run ``source → stage → Count`` (live policies when the source is live), sampling RSS if asked.

    Raises:
        BenchmarkError: If the run did not end ``ok``.
    """
    sink = Count()
    pipeline = Pipeline([source], [stage, sink], metrics_interval_s=0)
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:  # the first sample after one second (model loaded), then every interval
        start = time.monotonic()
        wait = 1.0
        while rss_interval_s and not done.wait(wait):
            samples.append((round(time.monotonic() - start, 1), round(rss_mb(), 1)))
            wait = rss_interval_s

    sampler = threading.Thread(target=sample, daemon=True)
    cpu = time.process_time()
    sampler.start()
    report = pipeline.run()
    done.set()
    sampler.join()
    cpu = time.process_time() - cpu
    if rss_interval_s:
        samples.append((round(report.elapsed_s, 1), round(rss_mb(), 1)))
    if report.status != "ok":
        raise BenchmarkError(f"{stage.name}: the pipeline {report.status}: {report.error}")
    return Run(sink, report, cpu, samples)
