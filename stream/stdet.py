"""Spatio-temporal action detection: every tracked person's actions, live or on a file.

    python -m stream.stdet [VIDEO [OUT_FILENAME]] [--config CFG --checkpoint CKPT --label-map LABELS]
                           [--source | --video | --input-video SRC] [--out-filename OUT.mp4]
                           [--det-config --det-checkpoint --det-score-thr --det-cat-id]
                           [--action-score-thr 0.5] [--predict-stepsize 8] [--output-stepsize 1]
                           [--output-fps N] [--events OUT.jsonl] [--publish ADDR] [--show]

The union of MMAction2's ``demo_spatiotemporal_det.py`` and ``webcam_demo_spatiotemporal_det.py``
(their flag names and positional form) as one streaming graph: people are detected and
tracked, every ``--predict-stepsize`` frames is a keyframe, the clip centred on it goes through
the AVA model once with one box per person, and each person's actions (multi-label, scores at
least ``--action-score-thr``) are drawn on them until the next keyframe. Live sources keep up by
dropping keyframes the model could not start in time (counted); memory stays flat. With no
``--config`` (nothing downloaded), people are labelled from their skeletons by the built-in
demo model instead (standing, walking, waving, arms up, squatting, jumping), as MMAction2's
skeleton-based spatio-temporal detection does.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from core.errors import ConfigError
from pipelines.cli import add_people_args, add_person_job_outputs, integer, output_params, people_params
from pipelines.graphs import DrawParams
from pipelines.person_graphs import StdetJobParams, StdetModelParams, stdet_graph
from pipelines.stdet import StdetParams
from stream.cli import ArgumentParser, exit_code, run_command

log = logging.getLogger("stream.stdet")


def build_parser() -> ArgumentParser:
    from pipelines.cli import score

    parser = ArgumentParser(prog="python -m stream.stdet", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("video", metavar="VIDEO", nargs="?", help="video file, rtsp:// URL or camera index (as --source)")
    add("out_filename", metavar="OUT_FILENAME", nargs="?", type=Path, help="annotated video (as --out-filename)")
    add("--source", "--video", "--input-video", dest="source", help="the input (webcam demo: --input-video)")
    add("--out-filename", type=Path, dest="out_filename_flag", help="annotated video (as --out-file)")
    add("--config", type=Path, help="AVA config (configs/detection); none: skeleton-based, the built-in demo model")
    add("--checkpoint", help="its checkpoint (default: the config's load_from)")
    add("--label-map", help="action names: AVA's label map ('1: bend/bow (at the waist)') or one per line")
    add_people_args(parser)
    add("--action-score-thr", type=score, default=0.5, help="report actions scoring at least this")
    add("--predict-stepsize", type=integer(), default=8, help="a keyframe every N frames")
    add("--output-stepsize", type=integer(), default=1, help="write and show every N-th frame")
    add("--short-side", type=integer(), help="short side of the model's input frames (default: the config's, 256)")
    add_person_job_outputs(parser, cfg_example="model.roi_head.bbox_head.num_classes=81")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, stdet)


def stdet(args: argparse.Namespace) -> int:
    source = args.source or args.video
    if args.config is None and (args.checkpoint or args.label_map):
        raise ConfigError("--checkpoint and --label-map belong to an AVA model: add its --config")
    if args.source and args.video:
        raise ConfigError("give VIDEO or --source / --video / --input-video, not both")
    outs = {p for p in (args.out_filename, args.out_filename_flag, args.out_file) if p is not None}
    if len(outs) > 1:
        raise ConfigError("give one of OUT_FILENAME, --out-filename and --out-file")
    args.out_file = next(iter(outs), None)
    params = StdetJobParams(
        source=source or "0",
        model=StdetModelParams(
            config=args.config, checkpoint=args.checkpoint, label_map=args.label_map, backend=args.backend,
            device=args.device, short_side=args.short_side, cfg_options=args.cfg_options,
            trust_checkpoint=args.trust_checkpoint,
        ) if args.config else None,
        people=people_params(args),
        stdet=StdetParams(predict_stepsize=args.predict_stepsize, threshold=args.action_score_thr),
        output_stepsize=args.output_stepsize, realtime=args.realtime, publish=args.publish,
        event_threshold=args.action_score_thr, start_after=1, end_after=1,
        curve_secret_key=args.curve_secret_key, curve_allow=args.curve_allow, insecure=args.insecure,
        draw=DrawParams(font_scale=args.font_scale, font_color=args.font_color),
        out=output_params(args),
    )  # fmt: skip
    graph = stdet_graph(params)
    report = graph.execute()
    stats = report.stages.get("stdet", {})
    log.info(
        "%s: %d frames in %.1f s, %s keyframes, %s person predictions, %s dropped keyframes",
        report.status, report.stages[graph.sources[0].name]["frames"], report.elapsed_s,
        stats.get("keyframes", 0), stats.get("people", 0), stats.get("dropped_keyframes", 0),
    )  # fmt: skip
    return exit_code(report)


if __name__ == "__main__":
    sys.exit(main())
