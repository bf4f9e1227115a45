"""Flags and builders shared by the recognition entry points (webcam, long video, RTSP)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mmengine.config import DictAction

from pipelines.recognizer import Recognizer, open_recognizer


def add_model_args(parser: argparse.ArgumentParser, *, positional: bool = False) -> None:
    """--config/--checkpoint (or positional, as in long_video_demo.py), backend and device flags."""
    if not positional:
        parser.add_argument("--config", required=True, help="recognition config (MMAction2 style)")
        parser.add_argument("--checkpoint", help="checkpoint .pth (default: the config's load_from)")
        parser.add_argument("--label-file", help="class names, one per line (default: config or checkpoint)")
    parser.add_argument("--backend", default="auto", help="auto, onnxruntime, openvino, tensorrt, torch-cuda or torch")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "fp16", "bf16"),
        help="engine precision; auto: bf16 on CPUs with native bf16 (OpenVINO), fp16 on GPUs, kept only "
        "if top-1 labels match fp32 on a check batch, else fp32 (default: auto)",
    )
    parser.add_argument("--engine", help="use this prebuilt engine directory (python -m engines.build)")
    parser.add_argument(
        "--trust-engine",
        action="store_true",
        help="with --engine: open engine folders of an older format, whose model is Python code (config.py) "
        "run when opened; only for folders whose origin you trust (see docs/security.md)",
    )
    parser.add_argument("--num-clips", type=int, help="override the test pipeline's num_clips (fewer: faster)")
    parser.add_argument("--batch-size", type=int, default=4, help="clips per engine call")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        default={},
        help="override config keys, e.g. model.cls_head.num_classes=10",
    )


def add_prediction_args(parser: argparse.ArgumentParser, *, threshold: float, inference_fps: float | None) -> None:
    """MMAction2 demo flags that shape predictions."""
    parser.add_argument("--threshold", type=float, default=threshold, help="hide labels scoring below this")
    parser.add_argument("--average-size", type=int, default=1, help="average the scores of this many clips")
    parser.add_argument("--top-k", type=int, default=5, help="labels per prediction")
    parser.add_argument("--inference-fps", type=float, default=inference_fps, help="at most this many clips per second")
    parser.add_argument("--predict-stepsize", type=int, help="a new clip every N frames")


def recognizer_from_args(args: argparse.Namespace, config: str, checkpoint: str | None, **kwargs: Any) -> Recognizer:
    return open_recognizer(
        Path(config),
        checkpoint,
        backend=args.backend,
        device=args.device,
        precision=args.precision,
        cfg_options=args.cfg_options or None,
        label_file=kwargs.pop("label_file", getattr(args, "label_file", None)),
        engine_dir=args.engine,
        trust_engine=getattr(args, "trust_engine", False),
        max_batch=max(1, args.batch_size),
        num_clips=args.num_clips,
        **kwargs,
    )
