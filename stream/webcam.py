"""Live action recognition from a camera, a stream or a file.

    python -m stream.webcam --config CFG [--checkpoint CKPT] [--source SRC | --camera-id N]
                            [--show] [--out-file OUT.mp4] [--events OUT.jsonl]
    python -m stream.webcam CONFIG CHECKPOINT LABEL [--camera-id N] ...   (webcam_demo.py's form)

The successor of MMAction2's ``demo/webcam_demo.py``: clips are sampled as the model's test
pipeline says, at the stream's real frame rate; when inference is slower than the camera,
the newest complete window is inferred and stale clips are dropped (counted) while frames
keep flowing to the display; every label carries the capture time of its newest frame, so
capture-to-label latency is measured, logged and drawn. A file given as ``--source`` is
processed losslessly (every due clip) unless ``--realtime`` paces it like a camera.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pipelines.cli import (
    add_model_args,
    add_output_args,
    add_prediction_args,
    draw_params,
    model_params,
    output_params,
    prediction_params,
    resolve_model_positionals,
)
from pipelines.graphs import WebcamParams, webcam_graph
from stream.cli import ArgumentParser, add_common_args, add_drawing_args, exit_code, run_command

log = logging.getLogger("stream.webcam")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m stream.webcam", description=__doc__.split("\n\n")[0])
    add_model_args(parser, optional_positionals=True)
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--source", help="camera index, /dev/videoN, video file, image folder or rtsp:// URL")
    src.add_argument("--camera-id", help="camera index or /dev/videoN (alias of --source, as in MMAction2)")
    parser.add_argument("--realtime", action="store_true", help="pace a file source at its frame rate")
    add_output_args(parser)
    add_prediction_args(parser, threshold=0.01, inference_fps_default=4.0)
    add_drawing_args(parser)
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, webcam, prepare=resolve_model_positionals)


def webcam(args: argparse.Namespace) -> int:
    params = WebcamParams(
        model=model_params(args),
        predict=prediction_params(args),
        source=args.source or args.camera_id,
        realtime=args.realtime,
        draw=draw_params(args),
        out=output_params(args),
    )
    graph = webcam_graph(params)
    report = graph.execute()
    rec = report.stages["recognizer"]
    log.info(
        "%s: %d frames, %d clips (%d stale dropped), capture-to-label latency p50 %s ms / p95 %s ms",
        report.status, report.stages[graph.sources[0].name]["frames"], rec.get("clips", 0),
        rec.get("dropped_clips", 0), rec.get("latency_p50_ms"), rec.get("latency_p95_ms"),
    )  # fmt: skip
    return exit_code(report)


if __name__ == "__main__":
    sys.exit(main())
