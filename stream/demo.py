"""One action label for a whole video, as MMAction2's ``demo/demo.py`` prints it.

    python -m stream.demo CONFIG CHECKPOINT VIDEO LABEL [--use-frames] [--out-filename OUT.mp4|OUT.gif]
                          [--fps N] [--font-scale S] [--font-color C] [--target-resolution W H]
                          [--resize-algorithm bicubic] [--cfg-options K=V ...] [--device cpu|cuda:N]

The config's test pipeline samples the whole video (or, with ``--use-frames``, the folder of
frames VIDEO), the engine scores it (built once and cached), and the top-5 labels are printed
as demo.py prints them. ``--out-filename`` writes the video with the top label drawn on every
frame (``.gif`` or a video suffix), whole or not at all; ``--target-resolution W H`` resizes
it (``-1`` keeps the aspect ratio). Scores are probabilities with ``average_clips='prob'``
(the shipped configs), else the head's raw scores, as in MMAction2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from pipelines.cli import add_model_args, draw_params, model_params, output_params, positive
from pipelines.graphs import DemoParams, demo_graph
from stream.cli import ArgumentParser, add_common_args, add_drawing_args, exit_code, run_command

log = logging.getLogger("stream.demo")
RESIZE_ALGORITHMS = ("bicubic", "bilinear", "neighbor", "area", "lanczos")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m stream.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="recognition config (MMAction2 style)")
    parser.add_argument("checkpoint", help="checkpoint .pth")
    parser.add_argument("video", type=Path, help="video file, or with --use-frames a folder of frames")
    parser.add_argument("label", help="label file: class names, one per line")
    parser.add_argument("--use-frames", action="store_true", help="VIDEO is a folder of frames (images)")
    parser.add_argument("--out-filename", type=Path, help="write the annotated video here (.mp4 or .gif)")
    parser.add_argument(
        "--fps", type=positive, help="frame rate of the output (default: the video's; 30 for --use-frames)"
    )
    parser.add_argument(
        "--target-resolution",
        nargs=2,
        type=int,
        metavar=("W", "H"),
        help="resize the output to W x H; -1 for one of them keeps the aspect ratio",
    )
    parser.add_argument(
        "--resize-algorithm", choices=RESIZE_ALGORITHMS, default="bicubic", help="for --target-resolution"
    )
    add_model_args(parser, positional=True)
    add_drawing_args(parser, font_color_numbers=True)
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, demo)


def demo(args: argparse.Namespace) -> int:
    params = DemoParams(
        model=replace(model_params(args, config=args.config, checkpoint=args.checkpoint), label_file=args.label),
        video=args.video,
        use_frames=args.use_frames,
        out_filename=args.out_filename,
        fps=args.fps,
        target_resolution=tuple(args.target_resolution) if args.target_resolution else None,
        resize_algorithm=args.resize_algorithm,
        draw=draw_params(args),
        out=output_params(args),
    )
    labels, graph = demo_graph(params)
    print("The top-5 labels with corresponding scores are:")
    for name, score in zip(labels.names, labels.scores, strict=True):
        print(f"{name}: ", score)
    sys.stdout.flush()
    if graph is None:
        return 0
    report = graph.execute()
    log.info("%s: %s", report.status, ", ".join(report.outputs) or "no output written")
    return exit_code(report)


if __name__ == "__main__":
    sys.exit(main())
