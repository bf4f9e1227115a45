"""People: boxes, stable track ids and COCO-17 skeletons from any source, with no download.

    python -m stream.people SOURCE [--det-score-thr T] [--det-interval N] [--no-pose]
                            [--out-file OUT.mp4] [--events OUT.jsonl] [--show] [--max-frames N]

The default models ship with the package (OpenCV's HOG people detector, BlazePose's landmark
model on OpenVINO); see docs/people.md. Each ``--events`` frame line lists the people:
``{"track_id", "box", "score", "keypoints"}``, plus ``track_started`` / ``track_lost`` events.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from pipelines.people import PeopleParams, people_stages
from stream.cli import add_common_args, add_drawing_args, run_main, run_with_outputs, setup_logging
from stream.sources import detect_kind, open_source

log = logging.getLogger("stream.people")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stream.people", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="video file, image folder, rtsp:// or http:// URL, camera index or /dev/videoN")
    parser.add_argument("--detector", default=PeopleParams.detector, help="hog (default) or blazepose")
    parser.add_argument("--det-score-thr", type=float, help="drop people scoring below this (default: the detector's)")
    parser.add_argument("--det-cat-id", type=int, default=0, help="class id of people (built-in detectors: 0)")
    interval, timeout = PeopleParams.det_interval, PeopleParams.lost_timeout_s
    parser.add_argument("--det-interval", type=int, default=interval, help="detect every Nth frame (%(default)s)")
    parser.add_argument("--no-pose", action="store_true", help="boxes and track ids only")
    parser.add_argument("--lost-timeout", type=float, default=timeout, help="end a track after S s unseen (default 2)")
    for flag in ("--det-config", "--det-checkpoint", "--pose-config", "--pose-checkpoint"):
        parser.add_argument(flag, help="mmdet / mmpose model (not available yet)")
    parser.add_argument("--device", default="cpu", help="where the models run (cpu)")
    parser.add_argument("--backend", default="auto", help="auto or openvino (the BlazePose models; HOG runs on OpenCV)")
    parser.add_argument("--out-file", type=Path, help="write the annotated video here (H.264 MP4)")
    parser.add_argument("--output-fps", type=float, help="frame rate of --out-file (default: the source's timing)")
    parser.add_argument("--events", type=Path, help="write the people of every frame and track events as JSON lines")
    parser.add_argument("--show", action="store_true", help="show the frames in a window (q or Esc to quit)")
    parser.add_argument("--drawing-fps", type=float, help="cap the display at this many frames per second")
    parser.add_argument("--realtime", action="store_true", help="pace a file at its frame rate, like a live camera")
    parser.add_argument("--max-frames", type=int, help="stop after N frames")
    add_drawing_args(parser)
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    return run_main(lambda: people(args))


def people(args: argparse.Namespace) -> int:
    params = PeopleParams(
        detector=args.detector, pose=None if args.no_pose else PeopleParams.pose, det_score_thr=args.det_score_thr,
        det_cat_id=args.det_cat_id, det_interval=args.det_interval, lost_timeout_s=args.lost_timeout,
        device=args.device, backend=args.backend, font_scale=args.font_scale, font_color=args.font_color,
        det_config=args.det_config, det_checkpoint=args.det_checkpoint,
        pose_config=args.pose_config, pose_checkpoint=args.pose_checkpoint,
    )  # fmt: skip
    stages = people_stages(params)  # checks the flags before the source is opened
    kind = detect_kind(args.source)
    options: dict[str, Any] = {"fail_fast": True} if kind == "rtsp" else {}  # unreachable at start-up: an error
    source = open_source(args.source, realtime=args.realtime, kind=kind, **options)
    report = run_with_outputs([source], stages, args, live=source.live, window="stream.people", include_frames="people")
    tracker = report.stages.get("tracker", {})
    log.info(
        "%s: %d frames in %.1f s, %s tracks started",
        report.status, report.stages[source.name]["frames"], report.elapsed_s, tracker.get("tracks_started", "no"),
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
