"""Skeleton-based action recognition per person, continuously, on any source.

    python -m stream.skeleton VIDEO [OUT_FILENAME] [--config CFG --checkpoint CKPT --label-map LABELS]
                              [--det-config --det-checkpoint --det-score-thr --det-cat-id]
                              [--pose-config --pose-checkpoint] [--short-side 480]
                              [--events OUT.jsonl] [--publish ADDR] [--show]

MMAction2's ``demo_skeleton.py`` (same positional form and flags) gives one label to a whole
video; here every tracked person gets a label of their own, updated every
``--predict-stepsize`` frames of that person from their last ``--window`` frames of
keypoints. VIDEO may be a file, a frame folder, an RTSP URL or a camera index. With no
``--config`` the built-in demo model runs (a small ST-GCN this project trained on synthetic
skeletons: standing, walking, waving, arms up, bending down, jumping) with the built-in people
models, so nothing is downloaded. ``--events`` writes each person's action start / end (with
``track_id``, label, scores) and each frame's people as JSON lines.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from core.errors import ConfigError
from pipelines.cli import add_people_args, add_person_job_outputs, integer, output_params, people_params, score
from pipelines.graphs import DrawParams
from pipelines.person_graphs import SkeletonJobParams, SkeletonModelParams, skeleton_graph
from pipelines.skeleton import SkeletonParams
from stream.cli import ArgumentParser, exit_code, run_command

log = logging.getLogger("stream.skeleton")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "configs" / "demo" / "demo_stgcn_coco_synthetic.py"


def build_parser() -> ArgumentParser:

    parser = ArgumentParser(prog="python -m stream.skeleton", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("video", metavar="VIDEO", help="video file, frame folder, rtsp:// URL or camera index")
    add("out_filename", metavar="OUT_FILENAME", nargs="?", type=Path, help="annotated video (as --out-file)")
    add("--config", type=Path, default=DEFAULT_CONFIG, help="skeleton config (default: the built-in demo model)")
    add("--checkpoint", help="skeleton checkpoint (default: the config's load_from)")
    add("--label-map", help="class names, one per line (default: the config's or the checkpoint's)")
    add_people_args(parser)
    add("--short-side", type=integer(), help="resize frames to this short side first (demo_skeleton.py: 480)")
    add("--predict-stepsize", type=integer(), default=8, help="a new label for a person every N of their frames")
    add("--window", type=integer(minimum=2), help="frames of keypoints per prediction (default: the model's clip_len)")
    add("--min-frames", type=integer(), help="frames a person needs before a first label (default: window / 4)")
    add("--threshold", type=score, default=0.0, help="hide labels scoring below this (0-1)")
    add("--top-k", type=integer(maximum=1000), default=3, help="labels per person")
    add("--average-size", type=integer(maximum=1000), default=1, help="average a person's last N predictions")
    add("--num-clips", type=integer(maximum=100), default=1, help="clips sampled per window (config: 10; 1 live)")
    add("--batch-size", type=integer(maximum=256), default=16, help="people per engine call")
    add("--event-threshold", type=score, default=0.5, help="score that starts/keeps a person's action event")
    add_person_job_outputs(parser, cfg_example="model.cls_head.num_classes=10")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, skeleton)


def skeleton(args: argparse.Namespace) -> int:
    if args.out_filename is not None:
        if args.out_file is not None and args.out_file != args.out_filename:
            raise ConfigError("give OUT_FILENAME or --out-file, not both")
        args.out_file = args.out_filename
    params = SkeletonJobParams(
        source=args.video,
        model=SkeletonModelParams(
            config=args.config, checkpoint=args.checkpoint, label_map=args.label_map, backend=args.backend,
            device=args.device, num_clips=args.num_clips, cfg_options=args.cfg_options,
            trust_checkpoint=args.trust_checkpoint,
        ),
        people=people_params(args),
        skeleton=SkeletonParams(
            window=args.window, predict_stepsize=args.predict_stepsize, min_frames=args.min_frames,
            threshold=args.threshold, top_k=args.top_k, average_size=args.average_size, batch_size=args.batch_size,
        ),
        short_side=args.short_side, realtime=args.realtime, publish=args.publish,
        curve_secret_key=args.curve_secret_key, curve_allow=args.curve_allow, insecure=args.insecure,
        event_threshold=args.event_threshold,
        draw=DrawParams(font_scale=args.font_scale, font_color=args.font_color),
        out=output_params(args),
    )  # fmt: skip
    graph = skeleton_graph(params)
    report = graph.execute()
    stats = report.stages.get("skeleton", {})
    log.info(
        "%s: %d frames in %.1f s, %s person labels, %s action events",
        report.status, report.stages[graph.sources[0].name]["frames"], report.elapsed_s,
        stats.get("predictions", 0), report.stages.get("events", {}).get("events", 0),
    )  # fmt: skip
    return exit_code(report)


if __name__ == "__main__":
    sys.exit(main())
