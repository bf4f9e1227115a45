"""People: boxes, stable track ids and COCO-17 skeletons from any source, with no download.

    python -m stream.people SOURCE [--detector hog|blazepose|rtmdet|yolox|mmdet] [--pose blazepose|rtmpose|mmpose]
                            [--det-score-thr T] [--det-interval N] [--precision P] [--no-pose]
                            [--out-file OUT.mp4] [--events OUT.jsonl] [--show] [--max-frames N]

The default models ship with the package (OpenCV's HOG people detector, BlazePose's landmark
model on OpenVINO); see docs/people.md. Each ``--events`` frame line lists the people:
``{"track_id", "box", "score", "keypoints"}``, plus ``track_started`` / ``track_lost`` events.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pipelines.cli import add_output_args, add_people_args, output_params, people_params
from pipelines.graphs import people_graph
from stream.cli import ArgumentParser, add_common_args, add_drawing_args, exit_code, run_command

log = logging.getLogger("stream.people")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m stream.people", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="video file, image folder, rtsp:// or http:// URL, camera index or /dev/videoN")
    add_people_args(parser, precision_flag="--precision")
    parser.add_argument("--no-pose", action="store_true", help="boxes and track ids only")
    add_output_args(parser)
    parser.set_defaults(drawing_fps=None)
    add_drawing_args(parser)
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, people)


def people(args: argparse.Namespace) -> int:
    params = people_params(args, pose=None if args.no_pose else args.pose)
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
