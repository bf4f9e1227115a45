"""Live mode: a file paced in real time through a deliberately slow stage must drop, not lag.

    python benchmarks/live.py [--seconds 300] [--delay-ms 80] [--json results/live.json]
    python benchmarks/live.py --recognizer [--infer-delay-ms 150] [--seconds 600]

A 30 fps 720p clip is played with ``--realtime`` (looping until ``--seconds`` pass) into a
stage that takes ``--delay-ms`` per frame (slower than the camera), then a sink. Every few
seconds it samples the process's resident memory and the lag of the newest delivered frame
(wall clock now minus its capture time). Goal: lag stays bounded (no growing queue), frames
are dropped and counted, and memory stays flat (last sample within 10% of the first after
warm-up).

With ``--recognizer`` the stage is live action recognition (``stream.webcam``'s
``RecognitionStage`` with the shipped demo model, or ``--config``), optionally slowed by
``--infer-delay-ms`` per engine call to stand for a model slower than the camera. The table
then adds capture-to-label latency (p50/p95 over the last interval) and stale clips dropped.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks.common import print_table, rss_mb, write_json
from pipelines.recognition import RecognitionParams, RecognitionStage
from pipelines.recognizer import open_recognizer
from stream.packet import FramePacket, SourceEvent
from stream.runner import Pipeline
from stream.sources import FileSource
from stream.stage import Outputs, Source, Stage
from tests.media import make_video

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "configs/demo/demo_slowonly_r18_synthetic.py"


class Looping(Source):
    """Plays a file in real time over and over, with monotonically increasing frame indices."""

    live = True

    def __init__(self, path: Path, seconds: float) -> None:
        super().__init__("camera")
        self.path, self.seconds = path, seconds

    def __iter__(self) -> Iterator[FramePacket | SourceEvent]:
        start, offset, pts_offset = time.monotonic(), 0, 0
        while time.monotonic() - start < self.seconds and not self.stop_event.is_set():
            source = FileSource(self.path, realtime=True)
            source.setup()
            last, last_pts, step = 0, 0, 1
            for p in source:
                if isinstance(p, FramePacket):
                    step = max(1, p.pts + pts_offset - last_pts)
                    p.frame_idx += offset
                    p.pts += pts_offset  # one camera: stream time runs on across loops
                    last, last_pts = p.frame_idx, p.pts
                    yield p
                if time.monotonic() - start >= self.seconds or self.stop_event.is_set():
                    break
            source.close()
            offset, pts_offset = last + 1, last_pts + step


class Slow(Stage):
    def __init__(self, delay_s: float) -> None:
        super().__init__("slow")
        self.delay_s = delay_s

    def process(self, packet: FramePacket) -> Outputs:
        time.sleep(self.delay_s)
        return packet


class Lag(Stage):
    def __init__(self) -> None:
        super().__init__("sink")
        self.lag_ms = 0.0
        self.frames = 0

    def process(self, packet: FramePacket) -> Outputs:
        self.lag_ms = (time.monotonic_ns() - packet.capture_ns) / 1e6
        self.frames += 1
        return None


def recognition_stage(args: argparse.Namespace) -> RecognitionStage:
    """Live recognition as ``stream.webcam`` runs it, the engine optionally slowed down."""
    recognizer = open_recognizer(args.config, backend=args.backend)
    if args.infer_delay_ms:
        infer = recognizer.engine.infer

        def slow_infer(batch: np.ndarray) -> np.ndarray:
            time.sleep(args.infer_delay_ms / 1000)
            return infer(batch)

        recognizer.engine.infer = slow_infer  # type: ignore[method-assign]
    params = RecognitionParams(live=True, predict_stepsize=1, inference_fps=args.inference_fps)  # stream.webcam's
    return RecognitionStage(recognizer, params)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--delay-ms", type=float, default=80)
    parser.add_argument("--interval", type=float, default=10)
    parser.add_argument("--recognizer", action="store_true", help="live action recognition instead of a slow stage")
    parser.add_argument("--config", default=str(DEMO_CONFIG), help="recognition config (with --recognizer)")
    parser.add_argument("--backend", default="auto", help="engine backend (with --recognizer)")
    parser.add_argument("--inference-fps", type=float, default=4.0, help="clips per second (--recognizer)")
    parser.add_argument("--infer-delay-ms", type=float, default=0, help="extra time per engine call (--recognizer)")
    parser.add_argument("--json", default="results/live.json", help="where to write the results ('' for none)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_video(Path(tmp) / "cam.mp4", frames=300, fps=30, size=(1280, 720)).path
        sink = Lag()
        stage = recognition_stage(args) if args.recognizer else Slow(args.delay_ms / 1000)
        pipeline = Pipeline([Looping(clip, args.seconds)], [stage, sink], metrics_interval_s=0)
        rows: list[dict[str, float]] = []
        done = threading.Event()

        def sample() -> None:
            start = time.monotonic()
            while not done.wait(args.interval):
                m = pipeline.metrics
                row = {
                    "t_s": round(time.monotonic() - start, 1), "rss_mb": rss_mb(), "lag_ms": sink.lag_ms,
                    "read": m["camera"].frames, "processed": m[stage.name].frames, "dropped": pipeline.links[0].dropped,
                }  # fmt: skip
                if isinstance(stage, RecognitionStage):
                    rec = stage.metrics()
                    row |= {
                        "clips": rec["clips"], "stale_clips": rec["dropped_clips"],
                        "label_p50_ms": rec["latency_p50_ms"], "label_p95_ms": rec["latency_p95_ms"],
                    }  # fmt: skip
                    stage.latency_ms.clear()  # percentiles per interval
                rows.append(row)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        report = pipeline.run()
        done.set()
    columns = ["t_s", "rss_mb", "lag_ms", "read", "processed", "dropped"]
    if args.recognizer:
        columns += ["clips", "stale_clips", "label_p50_ms", "label_p95_ms"]
    print_table(rows, columns)
    warm = rows[1:] or rows
    flat = bool(warm) and warm[-1]["rss_mb"] <= 1.1 * warm[0]["rss_mb"]
    bounded = bool(rows) and max(r["lag_ms"] for r in warm) < 1000
    dropped = bool(rows) and rows[-1]["dropped"] + rows[-1].get("stale_clips", 0) > 0
    what = "frames or stale clips" if args.recognizer else "frames"
    print(f"lag bounded: {bounded}, {what} dropped and counted: {dropped}, memory flat: {flat}")
    write_json(args.json, {"benchmark": "live", "seconds": args.seconds, "rows": rows, "report": report.to_json()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
