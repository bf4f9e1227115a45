"""Action recognition on several videos, as MMAction2 1.2's ``demo/demo_inferencer.py``.

    python -m stream.inferencer INPUTS [INPUTS ...] --rec CONFIG [--rec-weights CHECKPOINT] [--label-file LABELS]
                                [--vid-out-dir DIR] [--batch-size N] [--show] [--print-result]
                                [--pred-out-file PRED.json] [--device cpu|cuda:N] [--backend B] [--cfg-options K=V ...]

INPUTS are video files or folders of videos. They are sampled by the config's test pipeline
(with MMAction2's inferencer changes: centre crop only, one clip for 3D models) and scored
``--batch-size`` videos per engine call. ``--print-result`` prints and ``--pred-out-file``
writes MMAction2's inferencer result ``{"predictions": [{"rec_labels": [[i]], "rec_scores":
[[...]]}, ...]}``; ``--vid-out-dir`` gets each video with its top label drawn (``NAME.mp4``).
``--rec`` takes a config file (metafile model names are not looked up: nothing is downloaded).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli import integer
from engines.backends import PRECISION_CHOICES
from pipelines.graphs import DrawParams, ModelParams
from pipelines.inferencer import InferencerParams, run_inferencer
from stream.cli import ArgumentParser, add_common_args, run_command


def build_parser() -> ArgumentParser:
    from engines.cli import CfgOptionsAction

    parser = ArgumentParser(prog="python -m stream.inferencer", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="video files, or folders of video files")
    parser.add_argument("--vid-out-dir", type=Path, help="write each video with its label here as NAME.mp4")
    parser.add_argument("--rec", type=Path, required=True, help="recognition config file (MMAction2 style)")
    parser.add_argument("--rec-weights", help="checkpoint .pth (default: the config's load_from)")
    parser.add_argument("--label-file", help="class names, one per line (default: config or checkpoint)")
    parser.add_argument(
        "--device", default=None, help="cpu, cuda or cuda:N (default: a CUDA GPU if there is one, else cpu)"
    )
    parser.add_argument("--batch-size", type=integer(maximum=256), default=1, help="videos per engine call (1)")
    parser.add_argument("--show", action="store_true", help="show each labelled video in a window")
    parser.add_argument("--print-result", action="store_true", help="print the predictions")
    parser.add_argument("--pred-out-file", type=Path, help="write the predictions here (.json)")
    parser.add_argument("--backend", default="auto", help="auto, onnxruntime, openvino, tensorrt, torch-cuda or torch")
    parser.add_argument("--precision", default="auto", choices=PRECISION_CHOICES, help="engine precision (auto)")
    parser.add_argument("--calibration", metavar="VIDEO", help="video that calibrates INT8 (default: the demo video)")
    parser.add_argument(
        "--cfg-options", nargs="+", action=CfgOptionsAction, default={}, metavar="KEY=VALUE",
        help="override existing config keys, e.g. model.cls_head.average_clips=score",
    )  # fmt: skip
    parser.add_argument(
        "--trust-checkpoint", action="store_true", help="allow full unpickling of a checkpoint you trust"
    )
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, inferencer)


def inferencer(args: argparse.Namespace) -> int:
    device = args.device
    if device is None:  # MMAction2: the available device
        from engines.backends import cuda_device_count

        device = "cuda" if cuda_device_count() else "cpu"
    model = ModelParams(
        config=args.rec,
        checkpoint=args.rec_weights,
        label_file=args.label_file,
        backend=args.backend,
        device=device,
        precision=args.precision,
        calibration=args.calibration,
        batch_size=args.batch_size,
        cfg_options=dict(args.cfg_options or {}),
        trust_checkpoint=args.trust_checkpoint,
    )
    run_inferencer(
        InferencerParams(
            inputs=tuple(args.inputs),
            model=model,
            vid_out_dir=args.vid_out_dir,
            show=args.show,
            print_result=args.print_result,
            pred_out_file=args.pred_out_file,
            draw=DrawParams(),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
