"""People on vtest.avi: detection, + pose, + tracking, and the whole stream.people graph.

    python benchmarks/people.py [--frames 120] [--json results/people.json]

On the first ``--frames`` frames of Debian's ``opencv-doc`` vtest.avi (768×576, 10 fps,
pedestrians), with the default zero-download models (OpenCV HOG people detector,
BlazePose landmarks on OpenVINO), it measures frames/s and per-frame latency (p50 / p95) of

* ``detect``: the detector on every frame;
* ``detect+pose``: detector, then landmarks for every person, every frame;
* ``detect+pose+track``: the three stages (detect, ByteTrack, pose) on every frame, in one loop;
* ``graph interval=N``: ``pipelines.people.people_stages`` (detect every N frames, tracks and
  keypoints carried in between, drawing) in :class:`stream.runner.Pipeline` threads, decoding
  the file itself, without output files: what ``python -m stream.people`` does.

Goal: the whole graph faster than real time (≥ 10 frames/s on vtest.avi). The machine is
shared: numbers move with other load; compare rows of one run. Each row also reports the
CPU time the process spent per frame (all its threads), which depends much less on other
load: alone on this machine a row would run at between ``1000 / cpu_ms`` (no parallelism)
and ``cores × 1000 / cpu_ms`` frames/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import cpu_name, print_table, write_json
from detectors.registry import build_detector, build_pose_estimator
from detectors.stages import DetectStage, PoseStage, TrackStage
from pipelines.people import PeopleParams, people_stages
from stream.packet import FramePacket
from stream.runner import Pipeline
from stream.sources import open_source
from stream.stage import as_outputs

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def read_frames(path: Path, count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    while len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def timed(name: str, frames: list[np.ndarray], step: Callable[[int, np.ndarray], Any]) -> dict[str, Any]:
    step(0, frames[0])  # warm-up (compiles the models' shapes)
    times = []
    start, cpu_start = time.perf_counter(), time.process_time()
    for index, frame in enumerate(frames):
        t = time.perf_counter()
        step(index, frame)
        times.append((time.perf_counter() - t) * 1e3)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "run": name,
        "frames": len(frames),
        "fps": round(len(frames) / elapsed, 2),
        "cpu_ms": round(cpu / len(frames) * 1e3, 1),
        "p50_ms": round(float(np.percentile(times, 50)), 1),
        "p95_ms": round(float(np.percentile(times, 95)), 1),
    }


def graph_run(path: Path, frames: int, interval: int) -> dict[str, Any]:
    source = open_source(str(path))
    stages = people_stages(PeopleParams(det_interval=interval))
    pipeline = Pipeline([source], stages, metrics_interval_s=0, max_frames=frames)
    cpu_start = time.process_time()
    report = pipeline.run()
    cpu = time.process_time() - cpu_start
    count = report.stages[source.name]["frames"]
    per_stage = {name: report.stages[name].get("p50_ms") for name in ("detector", "tracker", "pose")}
    return {
        "run": f"graph interval={interval}",
        "frames": count,
        "fps": round(count / report.elapsed_s, 2),
        "cpu_ms": round(cpu / max(count, 1) * 1e3, 1),
        "p50_ms": None,
        "p95_ms": None,
        "stage_p50_ms": per_stage,
        "tracks_started": report.stages["tracker"].get("tracks_started"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=VTEST, help="footage (default: opencv-doc's vtest.avi)")
    parser.add_argument("--frames", type=int, default=120, help="frames per run")
    parser.add_argument("--intervals", type=int, nargs="+", default=[3, 5], help="--det-interval values of the graph")
    parser.add_argument("--json", default="results/people.json", help="write the results here")
    args = parser.parse_args()
    if not args.video.is_file():
        print(f"error: {args.video} is missing: apt-get install opencv-doc", file=sys.stderr)
        return 2
    frames = read_frames(args.video, args.frames)
    detector = build_detector()
    estimator = build_pose_estimator()

    rows = [timed("detect", frames, lambda i, f: detector.detect([f]))]
    rows.append(timed("detect+pose", frames, lambda i, f: estimator.estimate([f], detector.detect([f]))))

    detect = DetectStage(lambda: detector, interval=1)
    track = TrackStage()
    pose = PoseStage(lambda: estimator)
    detect.setup()
    pose.setup()

    def full(index: int, frame: np.ndarray) -> None:
        packet = FramePacket(frame, "vtest", index, index, Fraction(1, 10), time.monotonic_ns())
        detect.process(packet)  # sets packet.detections in place
        for out in as_outputs(track.process(packet)):
            if isinstance(out, FramePacket):
                pose.process(out)

    rows.append(timed("detect+pose+track", frames, full))
    people = sum(len(d) for d in detector.detect(frames[:: max(1, len(frames) // 20)]))
    for interval in args.intervals:
        rows.append(graph_run(args.video, args.frames, interval))

    cpu = cpu_name()
    print(f"{args.video.name}: {len(frames)} frames 768x576; CPU: {cpu}; ~{people / 20:.1f} people detected per frame")
    print_table(rows, ["run", "frames", "fps", "cpu_ms", "p50_ms", "p95_ms", "stage_p50_ms", "tracks_started"])
    cores = len(os.sched_getaffinity(0))
    for row in rows:
        row["fps_alone_range"] = [round(1000 / row["cpu_ms"], 1), round(cores * 1000 / row["cpu_ms"], 1)]
    best = max(r["fps"] for r in rows if r["run"].startswith("graph"))
    load = os.getloadavg()[0]
    print(
        f"goal: whole graph >= 10 fps on vtest.avi: {'met' if best >= 10 else 'not met'} ({best} fps measured, "
        f"load average {load:.1f} on {cores} cores)"
    )
    for row in rows:
        low, high = row["fps_alone_range"]
        print(f"  {row['run']}: {row['cpu_ms']} ms CPU per frame -> {low}-{high} fps alone on {cores} cores")
    write_json(
        args.json,
        {
            "cpu": cpu,
            "video": str(args.video),
            "load_average": round(load, 2),
            "rows": rows,
            "goal_fps": 10,
            "best_graph_fps": best,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
