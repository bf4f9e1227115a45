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

from pipelines.cli import add_output_args, draw_params, output_params
from pipelines.graphs import play_graph
from stream.cli import ArgumentParser, add_common_args, add_drawing_args, exit_code, positive, run_command

log = logging.getLogger("stream.play")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m stream.play", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="video file, image folder, rtsp:// or http:// URL, camera index or /dev/videoN")
    parser.add_argument("--realtime", action="store_true", help="pace a file at its frame rate, like a live camera")
    parser.add_argument("--use-frames", action="store_true", help="SOURCE is a folder of frames (as MMAction2's demo)")
    parser.add_argument("--fps", type=positive, help="frame rate of an image folder (default 30)")
    add_output_args(parser)
    parser.set_defaults(drawing_fps=None)
    add_drawing_args(parser)
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, play)


def play(args: argparse.Namespace) -> int:
    out = output_params(args)
    if not (out.out_file or out.events or out.show):
        log.warning("no output chosen (--out-file, --events or --show): decoding only")
    graph = play_graph(
        args.source,
        realtime=args.realtime,
        fps=args.fps,
        use_frames=args.use_frames,
        draw=draw_params(args),
        out=out,
    )
    report = graph.execute()
    frames = report.stages[graph.sources[0].name]["frames"]
    outputs = ", ".join(report.outputs)
    log.info("%s: %d frames in %.1f s%s", report.status, frames, report.elapsed_s, f" -> {outputs}" if outputs else "")
    return exit_code(report)


if __name__ == "__main__":
    sys.exit(main())
