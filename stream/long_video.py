"""Label a long video with a sliding window: annotated video, per-frame JSON, segments, timeline.

    python -m stream.long_video CONFIG CHECKPOINT VIDEO LABEL_FILE OUT_FILE
                                [--input-step N] [--stride S] [--threshold T]
                                [--frame-labels interpolate|center]

The arguments of MMAction2's ``demo/long_video_demo.py``. ``OUT_FILE`` ending in ``.mp4``
(or another video suffix) is the annotated video; ``.json`` holds per-frame results
(``--json-format mmaction2``: in long_video_demo.py's schema). Also written: ``--segments
OUT.csv|OUT.json`` (consecutive windows with the same label merged: start, end, label, mean
score) and a PNG timeline (``--timeline``, by default next to OUT_FILE). Unlike the MMAction2
demo, frames are chosen deterministically, clips are sampled as the model's test pipeline says
(``frame_interval`` honoured), decode / inference / encode run in parallel threads, clips are
batched across windows, and an interrupted run (Ctrl-C) still leaves valid outputs.

Each frame is labelled by the windows centred around it (``--frame-labels interpolate``; see
docs/configs.md); a video shorter than one window is labelled from one padded clip.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from pipelines.cli import add_model_args, draw_params, integer, model_params, number, output_params, positive, score
from pipelines.graphs import LongVideoParams, long_video_graph
from stream.cli import ArgumentParser, add_common_args, add_drawing_args, exit_code, run_command

log = logging.getLogger("stream.long_video")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m stream.long_video", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="recognition config (MMAction2 style)")
    parser.add_argument("checkpoint", help="checkpoint .pth")
    parser.add_argument("video_path", type=Path, help="the video to label")
    parser.add_argument("label", help="label file: class names, one per line")
    parser.add_argument("out_file", type=Path, help="annotated video (.mp4) or per-frame results (.json)")
    parser.add_argument("--input-step", type=integer(), default=1, help="feed every N-th frame to the model")
    parser.add_argument(
        "--stride",
        type=number(minimum=0),
        default=0.5,
        help="predict every stride × window frames (window = clip_len × frame_interval × num_clips); 0: every frame",
    )
    parser.add_argument(
        "--frame-labels",
        choices=("interpolate", "center"),
        default="interpolate",
        help="interpolate: blend the scores of the windows centred before and after each frame (default); "
        "center: hold each window's label from its middle frame on",
    )
    parser.add_argument("--threshold", type=score, default=0.01, help="labels scoring below this are not shown")
    parser.add_argument("--top-k", type=integer(maximum=1000), default=5, help="labels per prediction")
    formats = ("ours", "mmaction2")  # mmaction2: long_video_demo.py's {frame: {rank: "label: score"}}
    parser.add_argument("--json-format", choices=formats, default="ours", help="schema of OUT_FILE.json")
    parser.add_argument("--segments", type=Path, help="write merged segments here (.csv or .json)")
    parser.add_argument("--timeline", type=Path, help="timeline plot (.png); default: OUT_FILE's name + _timeline.png")
    parser.add_argument("--no-timeline", action="store_true", help="do not draw the timeline plot")
    parser.add_argument(
        "--output-fps", type=positive, help="frame rate of the annotated video (default: source timing)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_args(parser, positional=True)
    add_drawing_args(parser, label_colors=True)
    add_common_args(parser)
    parser.set_defaults(batch_size=8)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, long_video)


def long_video(args: argparse.Namespace) -> int:
    from pipelines.recognition import RecognitionParams

    out: Path = args.out_file
    predict = RecognitionParams(
        threshold=args.threshold,
        top_k=args.top_k,
        stride=args.stride,
        batch_size=args.batch_size,
        anchor=args.frame_labels,
        input_step=args.input_step,
    )
    params = LongVideoParams(
        model=replace(model_params(args, config=args.config, checkpoint=args.checkpoint), label_file=args.label),
        predict=predict,
        video=args.video_path,
        out_file=out,
        segments=args.segments,
        timeline=None if args.no_timeline else args.timeline or out.with_name(out.stem + "_timeline.png"),
        progress=not (args.no_progress or args.quiet),
        label_color=args.label_color,
        msg_color=args.msg_color,
        json_format=args.json_format,
        draw=draw_params(args),
        out=output_params(args),
    )
    graph = long_video_graph(params)
    report = graph.execute()
    frames = report.stages[graph.sources[0].name]["frames"]
    log.info(
        "%s: %d frames, %d clips in %.1f s (%.1f frames/s) -> %s",
        report.status, frames, report.stages["recognizer"].get("clips", 0), report.elapsed_s,
        frames / max(report.elapsed_s, 1e-9), ", ".join(report.outputs) or "no output written",
    )  # fmt: skip
    return exit_code(report)


if __name__ == "__main__":
    sys.exit(main())
