"""Decode any source, draw frame index / timestamp / fps on it, and write it out.

    python -m stream.play SOURCE [--out-file OUT.mp4] [--events OUT.jsonl] [--show]
                          [--realtime] [--max-frames N]

SOURCE is a video file, an image folder (``--use-frames``), an RTSP/HTTP URL, a camera
index or ``/dev/videoN``. It exercises the whole runtime — source, ZeroMQ links, stage
runner, annotators and sinks — without any model.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from stream.annotate import AnnotateStage
from stream.annotate.overlay import OverlayAnnotator
from stream.cli import (
    add_common_args,
    add_drawing_args,
    add_fragmented_arg,
    check_output_paths,
    run_main,
    run_with_outputs,
    setup_logging,
)
from stream.sources import detect_kind, open_source
from stream.stage import Stage

log = logging.getLogger("stream.play")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stream.play", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="video file, image folder, rtsp:// or http:// URL, camera index or /dev/videoN")
    parser.add_argument("--out-file", type=Path, help="write the annotated video here (H.264 MP4)")
    parser.add_argument("--output-fps", type=float, help="frame rate of --out-file (default: the source's timing)")
    parser.add_argument("--events", type=Path, help="write one JSON line per frame and per source event here")
    parser.add_argument("--show", action="store_true", help="show the frames in a window (q or Esc to quit)")
    parser.add_argument("--realtime", action="store_true", help="pace a file at its frame rate, like a live camera")
    parser.add_argument("--max-frames", type=int, help="stop after N frames")
    parser.add_argument("--use-frames", action="store_true", help="SOURCE is a folder of frames (as MMAction2's demo)")
    parser.add_argument("--fps", type=float, help="frame rate of an image folder (default 30)")
    parser.add_argument("--drawing-fps", type=float, help="cap the display at this many frames per second")
    add_fragmented_arg(parser)
    add_drawing_args(parser)
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    return run_main(lambda: play(args))


def play(args: argparse.Namespace) -> int:
    check_output_paths(
        {"--out-file": args.out_file, "--events": args.events, "--metrics": args.metrics}, {"SOURCE": args.source}
    )
    if not (args.out_file or args.events or args.show):
        log.warning("no output chosen (--out-file, --events or --show): decoding only")
    options: dict[str, Any] = {}
    kind = "images" if args.use_frames else detect_kind(args.source)
    if kind == "rtsp":
        options["fail_fast"] = True  # an unreachable URL at start-up is an error, not a reconnect loop
    source = open_source(args.source, realtime=args.realtime, fps=args.fps, kind=kind, **options)
    stages: list[Stage] = [AnnotateStage([OverlayAnnotator(font_scale=args.font_scale, font_color=args.font_color)])]
    report = run_with_outputs([source], stages, args, live=source.live, window="stream.play", include_frames="all")
    frames = report.stages[source.name]["frames"]
    outputs = ", ".join(report.outputs)
    log.info("%s: %d frames in %.1f s%s", report.status, frames, report.elapsed_s, f" -> {outputs}" if outputs else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
