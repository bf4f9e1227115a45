"""Grad-CAM heat maps of a recognizer on a video, as MMAction2's ``tools/visualizations/vis_cam.py``.

    python -m stream.gradcam CONFIG CHECKPOINT VIDEO [--use-frames] [--target-layer-name backbone/layer4/1/relu]
                             [--out-filename OUT.mp4|OUT.gif] [--fps 5] [--target-resolution W H]
                             [--resize-algorithm bilinear] [--alpha 0.5] [--cfg-options K=V ...] [--device cpu|cuda:N]

(MMAction2 0.x: ``demo/demo_gradcam.py``, same arguments.) The config's test pipeline samples
the whole video (as ``stream.demo``), the torch model scores it, and the heat map of the top
class at ``--target-layer-name`` (MMAction2's ``a/b/c`` module path; for SlowFast the path
picks the pathway, e.g. ``backbone/slow_path/layer4/1/relu``) is blended over every frame of
the model input and written to ``--out-filename`` (whole or not at all). An unknown layer name
is one error line listing close valid names.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli import number, positive
from pipelines.gradcam import (
    DEFAULT_ALPHA,
    DEFAULT_FPS,
    DEFAULT_RESIZE_ALGORITHM,
    DEFAULT_TARGET_LAYER,
    GradCamParams,
    run_gradcam,
)
from stream.cli import ArgumentParser, add_common_args, run_command


def build_parser() -> ArgumentParser:
    from engines.cli import CfgOptionsAction

    parser = ArgumentParser(prog="python -m stream.gradcam", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="recognition config (MMAction2 style)")
    parser.add_argument("checkpoint", type=Path, help="checkpoint .pth")
    parser.add_argument("video", type=Path, help="video file, or with --use-frames a folder of frames")
    parser.add_argument("--use-frames", action="store_true", help="VIDEO is a folder of frames (images)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument(
        "--target-layer-name",
        default=DEFAULT_TARGET_LAYER,
        help="layer whose activations and gradients make the map, as MMAction2 names it (default: %(default)s)",
    )
    parser.add_argument("--out-filename", type=Path, help="write the blended heat maps here (.mp4 or .gif)")
    parser.add_argument("--fps", type=positive, default=DEFAULT_FPS, help="frame rate of the output (default: 5)")
    parser.add_argument(
        "--target-resolution",
        nargs=2,
        type=int,
        metavar=("W", "H"),
        help="fit the output frames in W x H, aspect ratio kept; -1 leaves a side unbounded",
    )
    parser.add_argument(
        "--resize-algorithm",
        default=DEFAULT_RESIZE_ALGORITHM,
        help="nearest, bilinear, bicubic, area or lanczos (default: bilinear)",
    )
    parser.add_argument(
        "--alpha",
        type=number(minimum=0, maximum=1),
        default=DEFAULT_ALPHA,
        help="weight of the heat map over the frame, 0-1 (default: 0.5)",
    )
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=CfgOptionsAction,
        default={},
        metavar="KEY=VALUE",
        help="override existing config keys, e.g. model.backbone.depth=18",
    )
    parser.add_argument(
        "--trust-checkpoint", action="store_true", help="allow full unpickling of a checkpoint you trust"
    )
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, gradcam)


def gradcam(args: argparse.Namespace) -> int:
    run_gradcam(
        GradCamParams(
            config=args.config,
            checkpoint=args.checkpoint,
            video=args.video,
            use_frames=args.use_frames,
            target_layer_name=args.target_layer_name,
            out_filename=args.out_filename,
            fps=args.fps,
            target_resolution=tuple(args.target_resolution) if args.target_resolution else None,
            resize_algorithm=args.resize_algorithm,
            cfg_options=dict(args.cfg_options or {}),
            device=args.device,
            alpha=args.alpha,
            trust_checkpoint=args.trust_checkpoint,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
