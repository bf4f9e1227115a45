"""People: boxes, stable track ids and COCO-17 skeletons from any source, with no download.

    python -m stream.people SOURCE [--detector hog|blazepose|rtmdet|yolox|mmdet] [--pose blazepose|rtmpose|mmpose]
                            [--det-score-thr T] [--det-interval N] [--no-pose]
                            [--out-file OUT.mp4] [--events OUT.jsonl] [--show] [--max-frames N]

The default models ship with the package (OpenCV's HOG people detector, BlazePose's landmark
model on OpenVINO); see docs/people.md. Each ``--events`` frame line lists the people:
``{"track_id", "box", "score", "keypoints"}``, plus ``track_started`` / ``track_lost`` events.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pipelines.cli import add_output_args, integer, number, output_params, positive
from pipelines.graphs import people_graph
from pipelines.people import PeopleParams
from stream.cli import ArgumentParser, add_common_args, add_drawing_args, exit_code, run_command

log = logging.getLogger("stream.people")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m stream.people", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("source", help="video file, image folder, rtsp:// or http:// URL, camera index or /dev/videoN")
    add("--detector", default=PeopleParams.detector, help="hog (default), blazepose, rtmdet, yolox or mmdet")
    add("--det-score-thr", type=number(), help="drop people scoring below this (default: the detector's)")
    add("--det-cat-id", type=integer(minimum=0), help="class id of people (default: the class named 'person')")
    interval, timeout = PeopleParams.det_interval, PeopleParams.lost_timeout_s
    add("--det-interval", type=integer(), default=interval, help="detect every Nth frame (%(default)s)")
    add("--no-pose", action="store_true", help="boxes and track ids only")
    add("--lost-timeout", type=positive, default=timeout, help="end a track after S s unseen (default 2)")
    add("--det-config", help="mmdet config of --detector rtmdet / yolox / mmdet")
    add("--det-checkpoint", help="mmdet checkpoint of --detector rtmdet / yolox / mmdet")
    add("--pose", default=PeopleParams.pose, help="blazepose (default), rtmpose or mmpose")
    add("--pose-config", help="mmpose config of --pose rtmpose / mmpose")
    add("--pose-checkpoint", help="mmpose checkpoint of --pose rtmpose / mmpose")
    add("--device", default="cpu", help="where the models run (cpu)")
    add("--backend", default="auto", help="auto or openvino (the BlazePose models; HOG runs on OpenCV)")
    add("--realtime", action="store_true", help="pace a file at its frame rate, like a live camera")
    add_output_args(parser)
    parser.set_defaults(drawing_fps=None)
    add_drawing_args(parser)
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, people)


def people(args: argparse.Namespace) -> int:
    params = PeopleParams(
        detector=args.detector, pose=None if args.no_pose else args.pose, det_score_thr=args.det_score_thr,
        det_cat_id=args.det_cat_id, det_interval=args.det_interval, lost_timeout_s=args.lost_timeout,
        device=args.device, backend=args.backend, font_scale=args.font_scale, font_color=args.font_color,
        det_config=args.det_config, det_checkpoint=args.det_checkpoint,
        pose_config=args.pose_config, pose_checkpoint=args.pose_checkpoint,
    )  # fmt: skip
    graph = people_graph(args.source, params, realtime=args.realtime, out=output_params(args))
    report = graph.execute()
    tracker = report.stages.get("tracker", {})
    log.info(
        "%s: %d frames in %.1f s, %s tracks started",
        report.status, report.stages[graph.sources[0].name]["frames"], report.elapsed_s,
        tracker.get("tracks_started", "no"),
    )  # fmt: skip
    return exit_code(report)


if __name__ == "__main__":
    sys.exit(main())
