"""Monitor RTSP cameras: one shared engine, action events with hysteresis, health lines.

    python -m stream.rtsp --config CFG --source rtsp://cam1/... --source rtsp://cam2/...
                          [--events events.jsonl] [--publish tcp://127.0.0.1:5560] [--record-dir DIR]

Headless. Each camera is its own source that reconnects on its own (exponential back-off,
a ``disconnected`` / ``reconnecting`` / ``connected`` event each time) without disturbing
the others; a camera that is unreachable at start-up is retried the same way (a monitor
waits for its cameras), unlike ``stream.webcam`` / ``stream.play``, which fail at once. One
recognition stage batches the newest clip of every camera into one engine call. An action
event starts when a label stays at or above ``--event-threshold`` for ``--start-after``
predictions and ends when it drops below it; events and camera status go to ``--events``
(JSON lines) and a ZeroMQ PUB socket (``--publish``). A health line per camera (fps,
latency, drops, connected) is logged every ``--health-interval`` seconds. Cameras can also
be listed in the config: ``sources = ['rtsp://...', dict(url=..., name=...)]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pipelines.cli import (
    add_model_args,
    add_prediction_args,
    add_publish_args,
    draw_params,
    integer,
    model_params,
    output_params,
    positive,
    prediction_params,
    score,
)
from pipelines.graphs import CameraSpec, RtspParams, rtsp_graph
from stream.cli import (
    ArgumentParser,
    add_common_args,
    add_drawing_args,
    add_fragmented_arg,
    exit_code,
    run_command,
)

log = logging.getLogger("stream.rtsp")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m stream.rtsp", description=__doc__.split("\n\n")[0])
    add_model_args(parser)
    add = parser.add_argument
    add("--source", action="append", default=[], help="camera URL (repeat for several cameras)")
    add("--events", type=Path, help="append action events and camera status as JSON lines, as they happen")
    add_publish_args(parser)
    add("--record-dir", type=Path, help="record each camera's annotated video into this folder")
    add("--event-threshold", type=score, default=0.5, help="score that starts/keeps an event")
    add("--start-after", type=integer(), default=3, help="predictions above the threshold to start")
    add("--end-after", type=integer(), default=1, help="predictions below the threshold to end")
    add("--health-interval", type=positive, default=5.0, help="seconds between health lines")
    add("--health-file", type=Path, help="also write health records as JSON lines here")
    add("--open-timeout", type=positive, default=5.0, help="seconds to wait for a camera to answer")
    add("--read-timeout", type=positive, default=5.0, help="seconds without frames before reconnecting")
    add("--max-backoff", type=positive, default=10.0, help="longest wait between reconnect attempts")
    add("--max-frames", type=integer(), help="stop each camera after N frames (for tests)")
    add_fragmented_arg(parser)
    add_prediction_args(parser, threshold=0.0, inference_fps_default=4.0)
    add_drawing_args(parser)
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, monitor)


def monitor(args: argparse.Namespace) -> int:
    params = RtspParams(
        model=model_params(args),
        predict=prediction_params(args),
        cameras=tuple(CameraSpec(url) for url in args.source),
        events=args.events,
        publish=args.publish,
        curve_secret_key=args.curve_secret_key,
        curve_allow=args.curve_allow,
        insecure=args.insecure,
        record_dir=args.record_dir,
        event_threshold=args.event_threshold,
        start_after=args.start_after,
        end_after=args.end_after,
        health_interval=args.health_interval,
        health_file=args.health_file,
        open_timeout=args.open_timeout,
        read_timeout=args.read_timeout,
        max_backoff=args.max_backoff,
        draw=draw_params(args),
        out=output_params(args),
    )
    report = rtsp_graph(params).execute()
    log.info("%s after %.1f s: %d events", report.status, report.elapsed_s, report.stages["events"].get("events", 0))
    return exit_code(report)


if __name__ == "__main__":
    sys.exit(main())
