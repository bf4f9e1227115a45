"""Live action recognition from a camera, a stream or a file.

    python -m stream.webcam --config CFG [--checkpoint CKPT] [--source SRC | --camera-id N]
                            [--show] [--out-file OUT.mp4] [--events OUT.jsonl]

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
from pathlib import Path
from typing import Any

from pipelines.cli import add_model_args, add_prediction_args, recognizer_from_args
from pipelines.recognition import RecognitionParams, RecognitionStage
from stream.annotate import AnnotateStage, default_annotators
from stream.cli import (
    add_common_args,
    add_drawing_args,
    add_fragmented_arg,
    check_output_paths,
    run_main,
    run_with_outputs,
    setup_logging,
)
from stream.config import load_config
from stream.errors import SourceNotFound
from stream.sources import detect_kind, open_source
from stream.stage import Stage

log = logging.getLogger("stream.webcam")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stream.webcam", description=__doc__.split("\n\n")[0])
    add_model_args(parser)
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--source", help="camera index, /dev/videoN, video file, image folder or rtsp:// URL")
    src.add_argument("--camera-id", help="camera index or /dev/videoN (alias of --source, as in MMAction2)")
    parser.add_argument("--realtime", action="store_true", help="pace a file source at its frame rate")
    parser.add_argument("--show", action="store_true", help="show the annotated frames in a window")
    parser.add_argument("--out-file", type=Path, help="write the annotated video here (H.264 MP4)")
    parser.add_argument("--output-fps", type=float, help="frame rate of --out-file (default: source timing)")
    parser.add_argument("--events", type=Path, help="write predictions and source events as JSON lines")
    parser.add_argument("--drawing-fps", type=float, default=20.0, help="cap the display at this rate")
    parser.add_argument("--max-frames", type=int, help="stop after N frames")
    add_fragmented_arg(parser)
    add_prediction_args(parser, threshold=0.01, inference_fps=4.0)
    add_drawing_args(parser)
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    return run_main(lambda: webcam(args))


def default_source(config: str) -> str:
    """The config's ``demo_video`` if it has one (the built-in demo), else camera 0."""
    cfg = load_config(config)
    demo = cfg.get("demo_video")
    if demo and Path(demo).is_file():
        log.info("no --source given: using the config's demo video %s", demo)
        return str(demo)
    return "0"


def webcam(args: argparse.Namespace) -> int:
    check_output_paths(
        {"--out-file": args.out_file, "--events": args.events, "--metrics": args.metrics},
        {"--source": args.source or args.camera_id, "--config": args.config, "--checkpoint": args.checkpoint,
         "--label-file": getattr(args, "label_file", None)},
    )  # fmt: skip
    spec = args.source or args.camera_id or default_source(args.config)
    kind = detect_kind(spec)
    options: dict[str, Any] = {"fail_fast": True} if kind == "rtsp" else {}
    try:
        source = open_source(spec, realtime=args.realtime, kind=kind, **options)
    except SourceNotFound as exc:
        if kind == "webcam" and not (args.source or args.camera_id):
            raise SourceNotFound(f"{exc} (no --source given, so camera 0 was tried)") from exc
        raise
    live = source.live
    recognizer = recognizer_from_args(args, args.config, args.checkpoint)
    params = RecognitionParams(
        threshold=args.threshold,
        top_k=args.top_k,
        average_size=args.average_size,
        predict_stepsize=args.predict_stepsize or 1,
        inference_fps=args.inference_fps,
        batch_size=args.batch_size,
        live=live,
    )
    annotators = default_annotators(font_scale=args.font_scale, font_color=args.font_color, threshold=args.threshold)
    stages: list[Stage] = [RecognitionStage(recognizer, params), AnnotateStage(annotators)]
    report = run_with_outputs([source], stages, args, live=live, window="stream.webcam", include_frames="predictions")
    rec = report.stages["recognizer"]
    log.info(
        "%s: %d frames, %d clips (%d stale dropped), capture-to-label latency p50 %s ms / p95 %s ms",
        report.status, report.stages[source.name]["frames"], rec.get("clips", 0), rec.get("dropped_clips", 0),
        rec.get("latency_p50_ms"), rec.get("latency_p95_ms"),
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
