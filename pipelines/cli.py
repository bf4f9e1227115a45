"""Flags shared by the entry points, checked where they are parsed, and turned into typed parameters.

Every numeric flag is validated by its argparse type (a bad value is a usage error naming the
flag, exit code 2) so that nothing downstream sees ``nan``, ``inf``, zero or negative values
where they make no sense.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from core.cli import integer, number, positive, score
from engines.backends import PRECISION_CHOICES
from pipelines.graphs import DrawParams, ModelParams, OutputParams
from stream.cli import add_fragmented_arg
from stream.errors import SourceNotFound

if TYPE_CHECKING:
    from pipelines.people import PeopleParams
    from pipelines.recognition import RecognitionParams

log = logging.getLogger(__name__)

#: Upper bound of ``--num-clips``: more views than this is a typo, not a workload.
MAX_NUM_CLIPS = 100


def inference_fps(text: str) -> float | None:
    """argparse type of ``--inference-fps``: a positive rate, or 0 for no limit (as webcam_demo.py)."""
    value = number(minimum=0)(text)
    return None if value == 0 else value


def add_model_args(
    parser: argparse.ArgumentParser, *, positional: bool = False, optional_positionals: bool = False
) -> None:
    """--config/--checkpoint/--label-file, backend and device flags.

    Args:
        parser: The parser to extend.
        positional: The caller declares CONFIG / CHECKPOINT positionals itself (long_video_demo.py).
        optional_positionals: Also accept ``CONFIG CHECKPOINT LABEL`` positionally, as
            webcam_demo.py takes them (see :func:`resolve_model_positionals`).
    """
    from engines.cli import CfgOptionsAction  # mmengine: loaded only by the commands that take a model

    if not positional:
        if optional_positionals:
            parser.add_argument("config_pos", nargs="?", metavar="CONFIG", help="as --config (webcam_demo.py's form)")
            parser.add_argument("checkpoint_pos", nargs="?", metavar="CHECKPOINT", help="as --checkpoint")
            parser.add_argument("label_pos", nargs="?", metavar="LABEL", help="as --label-file")
        parser.add_argument(
            "--config", type=Path, required=not optional_positionals, help="recognition config (MMAction2 style)"
        )
        parser.add_argument("--checkpoint", help="checkpoint .pth (default: the config's load_from)")
        parser.add_argument("--label-file", help="class names, one per line (default: config or checkpoint)")
    parser.add_argument("--backend", default="auto", help="auto, onnxruntime, openvino, tensorrt, torch-cuda or torch")
    parser.add_argument(
        "--device", default="cpu", help="cpu, cuda or cuda:N (a CUDA device that is not there is an error)"
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISION_CHOICES,
        help="engine precision; auto: int8 on OpenVINO (CPUs with VNNI) where its top-1 labels match fp32 on held-out "
        "clips and it is faster, else bf16 on CPUs with native bf16 (OpenVINO), fp16 on GPUs, kept only "
        "if top-1 labels match fp32 on a check batch, else fp32 (default: auto)",
    )
    parser.add_argument(
        "--calibration",
        metavar="VIDEO",
        help="video whose clips calibrate INT8 engines (--precision int8 or auto); default: the demo video",
    )
    parser.add_argument("--engine", help="use this prebuilt engine directory (python -m engines.build)")
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow full unpickling of an old checkpoint that the safe loader refuses (only for files you trust)",
    )
    parser.add_argument(
        "--trust-engine",
        action="store_true",
        help="with --engine: open engine folders of an older format, whose model is Python code (config.py) "
        "run when opened; only for folders whose origin you trust (see docs/security.md)",
    )
    parser.add_argument(
        "--num-clips",
        type=integer(maximum=MAX_NUM_CLIPS),
        help=f"override the test pipeline's num_clips, 1-{MAX_NUM_CLIPS} (fewer: faster)",
    )
    parser.add_argument("--batch-size", type=integer(maximum=256), default=4, help="clips per engine call")
    parser.add_argument(
        "--no-reuse",
        dest="reuse",
        action="store_false",
        help="TSN-style models on ONNX Runtime / OpenVINO: do not reuse the backbone features of frames shared by "
        "overlapping clips (same scores in fp32, within rounding in bf16 / int8; reuse computes each frame once)",
    )
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=CfgOptionsAction,
        default={},
        metavar="KEY=VALUE",
        help="override existing config keys, e.g. model.cls_head.num_classes=10",
    )


def add_prediction_args(
    parser: argparse.ArgumentParser, *, threshold: float, inference_fps_default: float | None
) -> None:
    """MMAction2 demo flags that shape predictions."""
    parser.add_argument("--threshold", type=score, default=threshold, help="hide labels scoring below this (0-1)")
    parser.add_argument(
        "--average-size",
        type=integer(maximum=1000),
        default=1,
        help="average the scores of the last N clips (from the first clip on: the first labels average fewer)",
    )
    parser.add_argument("--top-k", type=integer(maximum=1000), default=5, help="labels per prediction")
    parser.add_argument(
        "--inference-fps",
        type=inference_fps,
        default=inference_fps_default,
        help="at most this many clips per second (0: no limit)",
    )
    parser.add_argument("--predict-stepsize", type=integer(), help="a new clip every N frames")


def add_output_args(parser: argparse.ArgumentParser, *, video: bool = True) -> None:
    """``--out-file``, ``--output-fps``, ``--events``, ``--show``, ``--drawing-fps``, ``--max-frames``."""
    if video:
        parser.add_argument("--out-file", type=Path, help="write the annotated video here (H.264 MP4)")
    parser.add_argument("--output-fps", type=positive, help="frame rate of the output video (default: source timing)")
    parser.add_argument("--events", type=Path, help="write predictions and source events as JSON lines")
    parser.add_argument("--show", action="store_true", help="show the annotated frames in a window")
    parser.add_argument("--drawing-fps", type=positive, default=20.0, help="cap the display at this rate")
    parser.add_argument("--max-frames", type=integer(), help="stop after N frames")
    add_fragmented_arg(parser)


def add_publish_args(parser: argparse.ArgumentParser) -> None:
    """``--publish`` and how it is secured (see docs/security.md)."""
    parser.add_argument(
        "--publish",
        metavar="ADDRESS",
        help="publish events on a ZeroMQ PUB socket, e.g. tcp://127.0.0.1:5560; an address other machines can "
        "reach (tcp://*:5560) needs --curve-secret-key/--curve-allow or --insecure (see docs/security.md)",
    )
    parser.add_argument(
        "--curve-secret-key",
        metavar="FILE",
        help="CurveZMQ: this publisher's NAME.key_secret (python -m stream.keys DIR NAME creates one)",
    )
    parser.add_argument(
        "--curve-allow", metavar="DIR", help="CurveZMQ: folder of the *.key public keys allowed to subscribe"
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="let --publish bind an address other machines can reach without CurveZMQ: anyone can subscribe",
    )


def resolve_model_positionals(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Merge webcam_demo.py's ``CONFIG CHECKPOINT LABEL`` positionals into ``--config`` & co.

    Giving a value both ways, or no config at all, is a usage error (exit code 2).
    """
    for pos, flag in (("config_pos", "config"), ("checkpoint_pos", "checkpoint"), ("label_pos", "label_file")):
        value = getattr(args, pos, None)
        if value is None:
            continue
        if getattr(args, flag) is not None:
            option = "--" + flag.replace("_", "-")
            parser.error(f"{option} given twice: positionally ({value}) and as {option}")
        setattr(args, flag, Path(value) if flag == "config" else value)
    if getattr(args, "config", None) is None:
        parser.error("a config is required: --config CFG (or CONFIG CHECKPOINT LABEL positionally, as webcam_demo.py)")


def model_params(args: argparse.Namespace, config: Path | None = None, checkpoint: str | None = None) -> ModelParams:
    """The model flags as :class:`ModelParams`."""
    return ModelParams(
        config=Path(config or args.config),
        checkpoint=checkpoint or getattr(args, "checkpoint", None),
        label_file=getattr(args, "label_file", None),
        backend=args.backend,
        device=args.device,
        precision=args.precision,
        calibration=getattr(args, "calibration", None),
        engine_dir=args.engine,
        num_clips=args.num_clips,
        batch_size=args.batch_size,
        cfg_options=dict(args.cfg_options or {}),
        trust_checkpoint=args.trust_checkpoint,
        trust_engine=getattr(args, "trust_engine", False),
        reuse=getattr(args, "reuse", True),
    )


def prediction_params(args: argparse.Namespace, **extra: object) -> RecognitionParams:
    """The prediction flags as :class:`RecognitionParams` (live mode is set by the graph)."""
    from pipelines.recognition import RecognitionParams

    return RecognitionParams(
        threshold=args.threshold,
        top_k=args.top_k,
        average_size=args.average_size,
        predict_stepsize=args.predict_stepsize or 1,
        inference_fps=args.inference_fps,
        batch_size=args.batch_size,
        **extra,  # type: ignore[arg-type]
    )


def output_params(args: argparse.Namespace) -> OutputParams:
    """The output and run flags as :class:`OutputParams`."""
    return OutputParams(
        out_file=getattr(args, "out_file", None),
        output_fps=getattr(args, "output_fps", None),
        events=getattr(args, "events", None),
        show=getattr(args, "show", False),
        drawing_fps=getattr(args, "drawing_fps", None),
        metrics=args.metrics,
        metrics_interval=args.metrics_interval,
        max_frames=getattr(args, "max_frames", None),
        fragmented=getattr(args, "fragmented", False),
    )


def draw_params(args: argparse.Namespace) -> DrawParams:
    return DrawParams(font_scale=args.font_scale, font_color=args.font_color)


def add_people_args(parser: argparse.ArgumentParser, *, precision_flag: str = "--people-precision") -> None:
    """Person detection, tracking and pose flags (MMAction2's ``--det-*`` / ``--pose-*`` names).

    ``precision_flag`` names the people engines' precision flag: ``--precision`` in
    ``stream.people``; where an action model runs too, ``--people-precision``.
    """
    from engines.graph import GRAPH_PRECISIONS
    from pipelines.people import PeopleParams

    add = parser.add_argument
    add(
        "--detector", default=PeopleParams.detector,
        help="hog (default), blazepose, rtmdet, yolox or mmdet (picked from --det-config when only that is given)",
    )  # fmt: skip
    add("--det-config", help="mmdet config of --detector rtmdet / yolox / mmdet")
    add("--det-checkpoint", help="mmdet checkpoint of --detector rtmdet / yolox / mmdet")
    add("--det-score-thr", type=number(), help="drop people scoring below this (default: the detector's)")
    add("--det-cat-id", type=integer(minimum=0), help="class id of people (default: the class named 'person')")
    add(
        "--det-interval", type=integer(), default=PeopleParams.det_interval, help="detect every Nth frame (%(default)s)"
    )
    add("--lost-timeout", type=positive, default=PeopleParams.lost_timeout_s, help="end a track after S s unseen (2)")
    add("--pose", default=PeopleParams.pose, help="blazepose (default), rtmpose or mmpose (or from --pose-config)")
    add("--pose-config", help="mmpose config of --pose rtmpose / mmpose")
    add("--pose-checkpoint", help="mmpose checkpoint of --pose rtmpose / mmpose")
    add("--device", default="cpu", help="where the models run (cpu)")
    add("--backend", default="auto", help="auto, onnxruntime or openvino (HOG runs on OpenCV)")
    add(
        precision_flag, dest="people_precision", default=PeopleParams.precision, choices=GRAPH_PRECISIONS,
        help="precision of the compiled detector / pose engines (rtmdet, yolox, rtmpose); auto: bf16 on OpenVINO "
        "where the CPU has it and boxes / keypoints stay fp32's on check frames, else fp32 (default: auto)",
    )  # fmt: skip
    add("--realtime", action="store_true", help="pace a file at its frame rate, like a live camera")


#: mmdet / mmpose model types run as compiled engines of this project; others go through the mm APIs.
COMPILED_DETECTORS = {"RTMDet": "rtmdet", "YOLOX": "yolox"}


def _model_of(config: str, *, head: bool = False) -> str | None:
    """The ``model.type`` of an mm config (or its ``model.head.type``), None if it can't be read here."""
    from engines.config import read_config
    from engines.errors import EngineError

    try:
        model = read_config(config).get("model") or {}
    except (EngineError, ImportError, OSError):  # e.g. a _base_ inside mmdet's package, not installed
        return None
    value = (model.get("head") or {}).get("type") if head else model.get("type")
    return str(value) if value else None


def people_models(args: argparse.Namespace) -> tuple[str, str]:
    """``--detector`` / ``--pose``; when left at the built-in default but ``--det-config`` /
    ``--pose-config`` is given (MMAction2's demos pass only those), the model that runs it:
    RTMDet / YOLOX / RTMPose as compiled engines, any other mmdet / mmpose model through the
    mm APIs (``mmdet`` / ``mmpose``, the mm extra)."""
    from pipelines.people import PeopleParams

    detector, pose = args.detector, args.pose
    for flag, path in (("--det-config", args.det_config), ("--pose-config", args.pose_config)):
        if path and not Path(path).is_file():
            raise SourceNotFound(f"{flag} {path}: no such file; pass an mm{flag[2:-7]} config file")
    if args.det_config and detector == PeopleParams.detector:
        detector = COMPILED_DETECTORS.get(_model_of(args.det_config) or "", "mmdet")
        log.info("--det-config %s: running it with --detector %s", args.det_config, detector)
    if args.pose_config and pose == PeopleParams.pose:
        pose = "rtmpose" if _model_of(args.pose_config, head=True) == "RTMCCHead" else "mmpose"
        log.info("--pose-config %s: running it with --pose %s", args.pose_config, pose)
    return detector, pose


def people_params(args: argparse.Namespace, **overrides: object) -> PeopleParams:
    """The :class:`~pipelines.people.PeopleParams` of :func:`add_people_args`' flags."""
    from pipelines.people import PeopleParams

    detector, pose = people_models(args)
    values: dict[str, object] = dict(
        detector=detector, pose=pose, det_score_thr=args.det_score_thr, det_cat_id=args.det_cat_id,
        det_interval=args.det_interval, lost_timeout_s=args.lost_timeout, device=args.device, backend=args.backend,
        precision=args.people_precision,
        font_scale=args.font_scale, font_color=args.font_color, det_config=args.det_config,
        det_checkpoint=args.det_checkpoint, pose_config=args.pose_config, pose_checkpoint=args.pose_checkpoint,
    )  # fmt: skip
    values.update(overrides)
    return PeopleParams(**values)  # type: ignore[arg-type]


def add_person_job_outputs(parser: argparse.ArgumentParser, *, cfg_example: str) -> None:
    """The tail of every per-person entry point: ``--trust-checkpoint``, ``--cfg-options``,
    ``--publish`` and its security, the outputs, the drawing flags, logging."""
    from engines.cli import CfgOptionsAction
    from stream.cli import add_common_args, add_drawing_args

    parser.add_argument(
        "--trust-checkpoint", action="store_true", help="allow full unpickling of a checkpoint you trust"
    )
    parser.add_argument(
        "--cfg-options", nargs="+", action=CfgOptionsAction, default={}, metavar="KEY=VALUE",
        help=f"override existing config keys, e.g. {cfg_example}",
    )  # fmt: skip
    add_publish_args(parser)
    add_output_args(parser)
    parser.set_defaults(drawing_fps=None)
    add_drawing_args(parser)
    add_common_args(parser)
