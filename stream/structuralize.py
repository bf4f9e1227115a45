"""Video structuralisation: people, their actions and the scene's action, in one streaming graph.

    python -m stream.structuralize --video VIDEO [--out-filename OUT.mp4]
        [--rgb-stdet-config CFG --rgb-stdet-checkpoint CKPT --label-map-stdet LABELS]
        [--use-skeleton-stdet --skeleton-stdet-config CFG --skeleton-stdet-checkpoint CKPT]
        [--use-skeleton-recog [--skeleton-config CFG --skeleton-checkpoint CKPT]]
        [--rgb-config CFG --rgb-checkpoint CKPT --label-map LABELS] [--events OUT.jsonl]

MMAction2's ``demo_video_structuralize.py`` (its flags) as one graph that detects, tracks and
estimates pose once and shares them: per person, an RGB spatio-temporal detector (AVA) or a
skeleton-based one (``--use-skeleton-stdet``); and a recognizer, whole-frame RGB
(``--rgb-config``) or per-person skeleton-based (``--use-skeleton-recog``, the default when no
recognizer is given: the built-in demo ST-GCN, so it runs with nothing downloaded).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from core.errors import ConfigError
from pipelines.cli import add_people_args, add_person_job_outputs, integer, output_params, people_params
from pipelines.graphs import DrawParams, ModelParams
from pipelines.person_graphs import SkeletonModelParams, StdetModelParams, StructuralizeParams, structuralize_graph
from pipelines.recognition import RecognitionParams
from pipelines.skeleton import SkeletonParams
from pipelines.stdet import StdetParams
from stream.cli import ArgumentParser, exit_code, run_command
from stream.skeleton import DEFAULT_CONFIG

log = logging.getLogger("stream.structuralize")


def build_parser() -> ArgumentParser:
    from pipelines.cli import score

    parser = ArgumentParser(prog="python -m stream.structuralize", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--video", required=True, help="video file, rtsp:// URL or camera index")
    add("--out-filename", type=Path, dest="out_filename", help="annotated video (as --out-file)")
    for kind in ("rgb-stdet", "skeleton-stdet", "skeleton", "rgb"):
        add(f"--{kind}-config", type=Path, help=f"{kind} model config")
        add(f"--{kind}-checkpoint", help=f"{kind} model checkpoint")
    add("--use-skeleton-stdet", action="store_true", help="per-person actions from keypoints, not RGB clips")
    add("--use-skeleton-recog", action="store_true", help="per-person skeleton recognition, not whole-frame RGB")
    add("--label-map-stdet", help="action names of the spatio-temporal detector")
    add("--label-map", help="class names of the recognizer")
    add_people_args(parser)
    add("--action-score-thr", type=score, default=0.4, help="report per-person actions scoring more than this")
    add("--predict-stepsize", type=integer(), default=8, help="a prediction every N frames (per person)")
    add("--output-stepsize", type=integer(), default=1, help="write and show every N-th frame")
    add_person_job_outputs(parser, cfg_example="model.cls_head.num_classes=10 (every model config)")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, structuralize)


def structuralize(args: argparse.Namespace) -> int:
    if args.out_filename is not None:
        args.out_file = args.out_filename
    common = dict(
        backend=args.backend, device=args.device, cfg_options=args.cfg_options, trust_checkpoint=args.trust_checkpoint
    )

    def skeleton(kind: str, label_map: str | None, default: Path | None = None) -> SkeletonModelParams:
        flags = (f"--{kind}-config", f"--{kind}-checkpoint", "--label-map-stdet" if "stdet" in kind else "--label-map")
        config = getattr(args, f"{kind.replace('-', '_')}_config") or default
        checkpoint = getattr(args, f"{kind.replace('-', '_')}_checkpoint")
        return SkeletonModelParams(config, checkpoint, label_map, flags=flags, **common)  # type: ignore[arg-type]

    if args.use_skeleton_stdet and args.skeleton_stdet_config is None:
        raise ConfigError("--use-skeleton-stdet needs --skeleton-stdet-config (and its checkpoint)")
    recog_skeleton = args.use_skeleton_recog or args.rgb_config is None
    params = StructuralizeParams(
        source=args.video, people=people_params(args),
        rgb_stdet=StdetModelParams(
            args.rgb_stdet_config, args.rgb_stdet_checkpoint, args.label_map_stdet,
            flags=("--rgb-stdet-config", "--rgb-stdet-checkpoint", "--label-map-stdet"), **common,
        ) if args.rgb_stdet_config and not args.use_skeleton_stdet else None,
        skeleton_stdet=skeleton("skeleton-stdet", args.label_map_stdet) if args.use_skeleton_stdet else None,
        skeleton_recog=skeleton("skeleton", args.label_map, DEFAULT_CONFIG) if recog_skeleton else None,
        rgb_recog=ModelParams(
            args.rgb_config, args.rgb_checkpoint, args.label_map, **common
        ) if not recog_skeleton else None,
        stdet=StdetParams(predict_stepsize=args.predict_stepsize, threshold=args.action_score_thr),
        skeleton=SkeletonParams(predict_stepsize=args.predict_stepsize),
        recognition=RecognitionParams(predict_stepsize=args.predict_stepsize),
        output_stepsize=args.output_stepsize, realtime=args.realtime, publish=args.publish,
        curve_secret_key=args.curve_secret_key, curve_allow=args.curve_allow, insecure=args.insecure,
        draw=DrawParams(font_scale=args.font_scale, font_color=args.font_color), out=output_params(args),
    )  # fmt: skip
    graph = structuralize_graph(params)
    report = graph.execute()
    log.info("%s: %d frames in %.1f s", report.status, report.stages[graph.sources[0].name]["frames"], report.elapsed_s)
    return exit_code(report)


if __name__ == "__main__":
    sys.exit(main())
