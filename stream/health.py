"""Per-source health: frames/s, latency, drops and connection state, reported every few seconds.

:class:`HealthStage` passes everything through and keeps, for each source, the frames it
saw, the frames that never reached it (``frame_idx`` jumps: dropped anywhere upstream),
the capture-to-here latency and whether the source is connected (from ``disconnected`` /
``connected`` events). A timer thread logs one line per source every ``interval_s``, also
while a camera is down and sends nothing, and can hand the same record to a callback
(e.g. to publish it).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream.packet import FramePacket, SourceEvent
from stream.stage import Outputs, Stage
from stream.transport import LIVE_RECORDING

log = logging.getLogger("stream.health")


@dataclass
class _SourceHealth:
    frames: int = 0
    dropped: int = 0
    last_idx: int | None = None
    connected: bool = True
    disconnects: int = 0
    latency_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=256))
    window_frames: int = 0
    window_start: float = field(default_factory=time.monotonic)
    label_latency_ms: float | None = None


class HealthStage(Stage):
    """Pass-through stage that reports per-source health.

    Args:
        interval_s: seconds between reports (0: no timer, only :meth:`snapshot`).
        on_report: called with each report dict (besides the log line).
    """

    live_policy = LIVE_RECORDING  # counting is cheap: absorb bursts

    def __init__(
        self,
        interval_s: float = 5.0,
        on_report: Callable[[dict[str, Any]], None] | None = None,
        name: str = "health",
    ) -> None:
        super().__init__(name)
        self.interval_s = interval_s
        self.on_report = on_report
        self._sources: dict[str, _SourceHealth] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._timer: threading.Thread | None = None

    def setup(self) -> None:
        if self.interval_s > 0:
            self._timer = threading.Thread(target=self._loop, name=f"{self.name}-timer", daemon=True)
            self._timer.start()

    def process(self, packet: FramePacket) -> Outputs:
        now_ns = time.monotonic_ns()
        with self._lock:
            h = self._sources.setdefault(packet.source_id, _SourceHealth())
            if h.last_idx is not None and packet.frame_idx > h.last_idx + 1:
                h.dropped += packet.frame_idx - h.last_idx - 1
            h.last_idx = packet.frame_idx
            h.frames += 1
            h.window_frames += 1
            h.connected = True
            h.latency_ms.append((now_ns - packet.capture_ns) / 1e6)
            for prediction in packet.predictions:
                h.label_latency_ms = (now_ns - prediction.capture_ns) / 1e6
        return packet

    def on_event(self, event: SourceEvent) -> Outputs:
        with self._lock:
            h = self._sources.setdefault(event.source_id, _SourceHealth())
            if event.kind in ("disconnected", "gave_up"):
                h.connected = False
                h.disconnects += 1
            elif event.kind in ("connected", "opened"):
                h.connected = True
        return event

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """The current health of every source (resets the fps window)."""
        now = time.monotonic()
        out = {}
        with self._lock:
            for source_id, h in self._sources.items():
                lat = np.fromiter(h.latency_ms, np.float64) if h.latency_ms else None
                out[source_id] = {
                    "connected": h.connected,
                    "fps": round(h.window_frames / max(now - h.window_start, 1e-9), 2),
                    "frames": h.frames,
                    "dropped": h.dropped,
                    "disconnects": h.disconnects,
                    "latency_p50_ms": None if lat is None else round(float(np.percentile(lat, 50)), 1),
                    "latency_p95_ms": None if lat is None else round(float(np.percentile(lat, 95)), 1),
                    "label_latency_ms": None if h.label_latency_ms is None else round(h.label_latency_ms, 1),
                }
                h.window_frames, h.window_start = 0, now
        return out

    def _loop(self) -> None:
        while not self._done.wait(self.interval_s):
            self.report()

    def report(self) -> None:
        """Log (and hand to ``on_report``) one line per source."""
        for source_id, s in self.snapshot().items():
            state = "connected" if s["connected"] else "DISCONNECTED"
            log.info(
                "%s: %s, %.1f fps, latency p50 %s ms / p95 %s ms, label latency %s ms, dropped %d, disconnects %d",
                source_id, state, s["fps"], s["latency_p50_ms"], s["latency_p95_ms"], s["label_latency_ms"],
                s["dropped"], s["disconnects"],
            )  # fmt: skip
            if self.on_report is not None:
                self.on_report({"type": "health", "source_id": source_id, "wall_time": time.time(), **s})

    def close(self) -> None:
        self._done.set()
        if self._timer is not None:
            self._timer.join(timeout=2)

    def metrics(self) -> dict[str, Any]:
        with self._lock:
            return {"sources": len(self._sources)}
