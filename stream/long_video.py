"""Label a long video with a sliding window: annotated video, per-frame JSON, segments, timeline.

    python -m stream.long_video CONFIG CHECKPOINT VIDEO LABEL_FILE OUT_FILE
                                [--input-step N] [--stride S] [--threshold T]
                                [--frame-labels interpolate|center]

The arguments of MMAction2's ``demo/long_video_demo.py``. ``OUT_FILE`` ending in ``.mp4``
(or another video suffix) is the annotated video; ``.json`` holds per-frame results. Also
written: ``--segments OUT.csv|OUT.json`` (consecutive windows with the same label merged:
start, end, label, mean score) and a PNG timeline (``--timeline``, by default next to
OUT_FILE). Unlike the MMAction2 demo, frames are chosen deterministically, clips are
sampled as the model's test pipeline says (``frame_interval`` honoured), decode /
inference / encode run in parallel threads, clips are batched across windows, and an
interrupted run (Ctrl-C) still leaves valid outputs for the part it processed.

Frame labels line up with the video instead of lagging behind it: by default
(``--frame-labels interpolate``) each frame gets the class scores of the two windows whose
middles are nearest before and after it, blended by its distance to each middle; with
``--frame-labels center`` a window's label holds from the frame at its middle until the
next window's middle (half a stride later than the nearest window would say). A video
shorter than one window is labelled from one clip whose missing frames repeat the first
frame, with a warning.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pipelines.cli import add_model_args, recognizer_from_args
from pipelines.recognition import RecognitionParams, RecognitionStage
from pipelines.timeline import TimelineStage
from stream.annotate import AnnotateStage
from stream.annotate.labels import LabelAnnotator
from stream.annotate.overlay import OverlayAnnotator
from stream.cli import add_common_args, add_drawing_args, check_output_paths, run_main, setup_logging
from stream.errors import ConfigError, SourceNotFound
from stream.runner import Pipeline
from stream.sinks import VideoWriterSink
from stream.sources import FileSource
from stream.stage import Stage

log = logging.getLogger("stream.long_video")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stream.long_video", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="recognition config (MMAction2 style)")
    parser.add_argument("checkpoint", help="checkpoint .pth")
    parser.add_argument("video_path", help="the video to label")
    parser.add_argument("label", help="label file: class names, one per line")
    parser.add_argument("out_file", type=Path, help="annotated video (.mp4) or per-frame results (.json)")
    parser.add_argument("--input-step", type=int, default=1, help="feed every N-th frame to the model")
    parser.add_argument(
        "--stride",
        type=float,
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
    parser.add_argument("--threshold", type=float, default=0.01, help="labels scoring below this are not shown")
    parser.add_argument("--top-k", type=int, default=5, help="labels per prediction")
    parser.add_argument("--label-color", default="white", help="label text colour")
    parser.add_argument("--msg-color", default="gray", help="colour of the message shown before the first label")
    parser.add_argument("--segments", type=Path, help="write merged segments here (.csv or .json)")
    parser.add_argument("--timeline", type=Path, help="timeline plot (.png); default: OUT_FILE's name + _timeline.png")
    parser.add_argument("--no-timeline", action="store_true", help="do not draw the timeline plot")
    parser.add_argument("--output-fps", type=float, help="frame rate of the annotated video (default: source timing)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_args(parser, positional=True)
    add_drawing_args(parser)
    add_common_args(parser)
    parser.set_defaults(batch_size=8)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    return run_main(lambda: long_video(args))


def long_video(args: argparse.Namespace) -> int:
    out: Path = args.out_file
    suffix = out.suffix.lower()
    if suffix not in (*VIDEO_SUFFIXES, ".json"):
        raise ConfigError(f"OUT_FILE {out}: expected a video ({', '.join(VIDEO_SUFFIXES)}) or a .json file")
    if not Path(args.video_path).is_file():
        raise SourceNotFound(f"video not found: {args.video_path}")
    if args.stride < 0:
        raise ConfigError(f"--stride: expected >= 0, got {args.stride}")
    timeline_png = None if args.no_timeline else args.timeline or out.with_name(out.stem + "_timeline.png")
    check_output_paths(
        {"OUT_FILE": out, "--segments": args.segments, "--timeline": timeline_png, "--metrics": args.metrics},
        {"VIDEO": args.video_path, "CONFIG": args.config, "CHECKPOINT": args.checkpoint, "LABEL_FILE": args.label},
    )
    source = FileSource(args.video_path)
    source.setup()  # opens and probes it: a broken file fails here, before any model work
    info = source.info
    source.close()
    if info is None:  # setup() always sets it; keeps the type checker informed
        raise SourceNotFound(f"cannot read {args.video_path}")
    source = FileSource(args.video_path)

    recognizer = recognizer_from_args(
        args, args.config, args.checkpoint, label_file=args.label, frame_size=(info.width, info.height)
    )
    params = RecognitionParams(
        threshold=args.threshold,
        top_k=args.top_k,
        stride=args.stride,
        batch_size=args.batch_size,
        anchor=args.frame_labels,
        input_step=args.input_step,
    )
    stages: list[Stage] = [
        RecognitionStage(recognizer, params, fps=info.fps_float or None),
        TimelineStage(
            recognizer.class_names,
            frames_json=out if suffix == ".json" else None,
            segments_path=args.segments,
            timeline_png=timeline_png,
            total_frames=info.frames,
            progress=None if args.no_progress or args.quiet else sys.stderr,
            title=Path(args.video_path).name,
        ),
    ]
    if suffix != ".json":
        labels = LabelAnnotator(
            top_k=args.top_k,
            threshold=args.threshold,
            font_scale=args.font_scale,
            font_color=args.label_color if args.font_color == "white" else args.font_color,
            waiting_text="Preparing action recognition ...",
            waiting_color=args.msg_color,
        )
        overlay = OverlayAnnotator(font_scale=args.font_scale, show_fps=False, show_latency=False)
        stages += [AnnotateStage([labels, overlay]), VideoWriterSink(out, fps=args.output_fps)]
    pipeline = Pipeline([source], stages, metrics_interval_s=args.metrics_interval, metrics_path=args.metrics)
    report = pipeline.run()
    rec = report.stages["recognizer"]
    log.info(
        "%s: %d frames, %d clips in %.1f s (%.1f frames/s) -> %s",
        report.status, report.stages[source.name]["frames"], rec.get("clips", 0), report.elapsed_s,
        report.stages[source.name]["frames"] / max(report.elapsed_s, 1e-9),
        ", ".join(report.outputs) or "no output written",
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
