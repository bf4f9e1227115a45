"""Build an engine directory from an MMAction2 config and checkpoint.

Usage::

    python -m engines.build --config CFG --checkpoint CKPT --backend auto --out ENGINE_DIR
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from engines.backends import BACKEND_CHOICES
from engines.cli import CfgOptionsAction, add_common, positive_int, run_main, shape_arg
from engines.export import AVERAGE_CLIPS_CHOICES, DEFAULT_OPSET


def make_parser() -> argparse.ArgumentParser:
    """The ``engines.build`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m engines.build",
        description=(
            "Export an MMAction2 recognizer (config + checkpoint) to ONNX, check it against torch, "
            "prepare the chosen backend and write ENGINE_DIR with manifest.json."
        ),
    )
    parser.add_argument("--config", required=True, help="project or MMAction2 config file (.py, _base_ allowed)")
    parser.add_argument("--checkpoint", required=True, help="checkpoint: MMAction2 {'state_dict','meta'} or bare")
    parser.add_argument("--out", required=True, help="engine directory to write")
    parser.add_argument(
        "--backend",
        default="auto",
        choices=BACKEND_CHOICES,
        help="auto: tensorrt if installed with a GPU, else torch-cuda with a GPU, "
        "else openvino on an x86 CPU, else onnxruntime (default: auto)",
    )
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument(
        "--fp32",
        action="store_true",
        help="full precision. Default (none of --fp32/--fp16/--bf16/--int8): the backend's fast precision on "
        "this machine (openvino on a CPU with VNNI: int8 if its top-1 labels match torch fp32 on 16 held-out clips of "
        "the calibration video and it runs faster; else openvino: bf16 where the CPU has it natively; GPUs: "
        "fp16), each kept only if its top-1 labels match torch fp32 on 16 check clips, else fp32",
    )
    precision.add_argument("--fp16", action="store_true", help="half precision (tensorrt, torch-cuda, openvino)")
    precision.add_argument("--bf16", action="store_true", help="bfloat16 (openvino, tensorrt, torch, torch-cuda)")
    precision.add_argument(
        "--int8",
        action="store_true",
        help="INT8 post-training quantization (onnxruntime, openvino), calibrated on clips of --calibration",
    )
    parser.add_argument(
        "--calibration",
        metavar="VIDEO",
        default=None,
        help="video whose clips calibrate INT8 (--int8, and the default's INT8 check); default: the demo video",
    )
    parser.add_argument("--max-batch", type=positive_int, default=4, help="largest batch per run (default: 4)")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=CfgOptionsAction,
        default={},
        metavar="KEY=VALUE",
        help="override config keys, e.g. model.cls_head.num_classes=10",
    )
    parser.add_argument(
        "--fold-normalize",
        action="store_true",
        help="fold mean/std into the graph: the engine then takes raw RGB pixels 0-255 (float32)",
    )
    parser.add_argument(
        "--average-clips",
        choices=AVERAGE_CLIPS_CHOICES,
        default=None,
        help="override the head's view folding: mean of scores or of softmax probabilities",
    )
    parser.add_argument(
        "--input-shape",
        type=shape_arg,
        default=None,
        metavar="V,C,H,W",
        help="per-sample input shape (V,C,H,W or V,C,T,H,W); default: from the config's test_pipeline",
    )
    parser.add_argument("--threads", type=positive_int, default=None, help="CPU threads for the backend")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset, >= 17 (default {DEFAULT_OPSET})")
    parser.add_argument(
        "--copy-weights",
        action="store_true",
        help="store weights.pth in the engine so the torch backends can run it (always for torch backends)",
    )
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow full unpickling (weights_only=False) of old checkpoints; only for files you trust",
    )
    add_common(parser)
    return parser


def _main(args: argparse.Namespace) -> int:
    from engines.engine import build_engine

    precision = (
        "fp32" if args.fp32 else "fp16" if args.fp16 else "bf16" if args.bf16 else "int8" if args.int8 else "auto"
    )
    engine = build_engine(
        args.config,
        args.checkpoint,
        backend=args.backend,
        precision=precision,
        max_batch=args.max_batch,
        out_dir=args.out,
        cfg_options=args.cfg_options,
        fold_normalize=args.fold_normalize,
        average_clips=args.average_clips,
        input_shape=args.input_shape,
        trusted=args.trust_checkpoint,
        opset=args.opset,
        num_threads=args.threads,
        copy_weights=True if args.copy_weights else None,
        calibration=args.calibration,
    )
    m = engine.manifest
    shape = "x".join(map(str, m.input_shape))
    check = m.validation
    print(
        f"built {args.out}: backend={m.backend} precision={m.precision} input=N x {shape} ({m.layout}"
        f"{', raw RGB 0-255' if m.normalize_folded else ', normalised'}) classes={m.num_classes} "
        f"onnx_vs_torch={m.export_max_abs_diff:.2g} backend_vs_torch={check.get('max_abs_diff', float('nan')):.2g}"
    )
    engine.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return run_main(_main, make_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
