"""Monitor RTSP cameras: one shared engine, action events with hysteresis, health lines.

    python -m stream.rtsp --config CFG --source rtsp://cam1/... --source rtsp://cam2/...
                          [--events events.jsonl] [--publish tcp://127.0.0.1:5560] [--record-dir DIR]

Headless. Each camera is its own source that reconnects on its own (exponential back-off,
a ``disconnected`` / ``reconnecting`` / ``connected`` event each time) without disturbing
the others; one recognition stage batches the newest clip of every camera into one engine
call. An action event starts when a label stays at or above ``--event-threshold`` for
``--start-after`` predictions and ends when it drops below it; events and camera status
go to ``--events`` (JSON lines) and a ZeroMQ PUB socket (``--publish``). A health line per
camera (fps, latency, drops, connected) is logged every ``--health-interval`` seconds.
Cameras can also be listed in the config: ``sources = ['rtsp://...', dict(url=..., name=...)]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from pathlib import Path
from typing import Any

from pipelines.cli import add_model_args, add_prediction_args, recognizer_from_args
from pipelines.events import ActionEvents, ActionEventStage
from pipelines.recognition import RecognitionParams, RecognitionStage
from stream.annotate import AnnotateStage, default_annotators
from stream.cli import add_common_args, add_drawing_args, policies_for, run_main, setup_logging
from stream.config import load_config, to_plain
from stream.errors import ConfigError
from stream.health import HealthStage
from stream.runner import Pipeline
from stream.security import curve_server_from_args
from stream.sinks import JsonlSink, VideoWriterSink, ZmqPublisherSink
from stream.sources import Backoff, NetworkSource, detect_kind, open_source
from stream.stage import Source, Stage

log = logging.getLogger("stream.rtsp")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stream.rtsp", description=__doc__.split("\n\n")[0])
    add_model_args(parser)
    parser.add_argument("--source", action="append", default=[], help="camera URL (repeat for several cameras)")
    parser.add_argument("--events", type=Path, help="write action events and camera status as JSON lines")
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
    parser.add_argument("--record-dir", type=Path, help="record each camera's annotated video into this folder")
    parser.add_argument("--event-threshold", type=float, default=0.5, help="score that starts/keeps an event")
    parser.add_argument("--start-after", type=int, default=3, help="predictions above the threshold to start")
    parser.add_argument("--end-after", type=int, default=1, help="predictions below the threshold to end")
    parser.add_argument("--health-interval", type=float, default=5.0, help="seconds between health lines")
    parser.add_argument("--health-file", type=Path, help="also write health records as JSON lines here")
    parser.add_argument("--open-timeout", type=float, default=5.0, help="seconds to wait for a camera to answer")
    parser.add_argument("--read-timeout", type=float, default=5.0, help="seconds without frames before reconnecting")
    parser.add_argument("--max-backoff", type=float, default=10.0, help="longest wait between reconnect attempts")
    parser.add_argument("--max-frames", type=int, help="stop each camera after N frames (for tests)")
    add_prediction_args(parser, threshold=0.0, inference_fps=4.0)
    add_drawing_args(parser)
    add_common_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    return run_main(lambda: monitor(args))


def camera_specs(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """``(url, name)`` of every camera: ``--source`` flags, else the config's ``sources``.

    Raises:
        ConfigError: If there is none, or an entry of the config list is malformed.
    """
    if args.source:
        return [(url, None) for url in args.source]
    cfg = load_config(args.config)
    entries = to_plain(cfg.get("sources") or [])
    specs: list[tuple[str, str | None]] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            specs.append((entry, None))
        elif isinstance(entry, dict) and isinstance(entry.get("url"), str):
            specs.append((entry["url"], entry.get("name")))
        else:
            raise ConfigError(f"{args.config}: sources[{i}]: expected a URL or dict(url=..., name=...), got {entry!r}")
    if not specs:
        raise ConfigError(
            "no cameras: pass --source rtsp://... (repeatable) or list them in the config as sources=[...]"
        )
    return specs


def make_sources(args: argparse.Namespace) -> list[Source]:
    sources: list[Source] = []
    for url, name in camera_specs(args):
        if detect_kind(url) != "rtsp":  # files and cameras work too, e.g. for trying it out
            sources.append(open_source(url, source_id=name))
            continue
        sources.append(
            NetworkSource(
                url,
                source_id=name,
                open_timeout_s=args.open_timeout,
                read_timeout_s=args.read_timeout,
                backoff=Backoff(max_s=args.max_backoff),
            )
        )
    names = [s.source_id for s in sources]
    if len(set(names)) != len(names):
        raise ConfigError(f"camera names must be unique, got {names}; name them in the config: dict(url=..., name=...)")
    return sources


def make_publisher(args: argparse.Namespace) -> ZmqPublisherSink | None:
    """The ``--publish`` stage, checked before anything heavy starts (see :mod:`stream.security`).

    Raises:
        ConfigError: If the address reaches other machines without CurveZMQ or ``--insecure``,
            or the CurveZMQ flags are incomplete or their files unusable.
    """
    curve = curve_server_from_args(args.curve_secret_key, args.curve_allow)
    if not args.publish:
        if curve is not None or args.insecure:
            raise ConfigError("--curve-secret-key, --curve-allow and --insecure apply to --publish; add --publish")
        return None
    return ZmqPublisherSink(args.publish, include_frames="none", curve=curve, insecure=args.insecure)


def monitor(args: argparse.Namespace) -> int:
    publisher = make_publisher(args)
    sources = make_sources(args)
    recognizer = recognizer_from_args(args, args.config, args.checkpoint)
    params = RecognitionParams(
        threshold=args.threshold,
        top_k=args.top_k,
        average_size=args.average_size,
        predict_stepsize=args.predict_stepsize or 1,
        inference_fps=args.inference_fps,
        batch_size=args.batch_size,
        live=True,
    )
    health_lock = threading.Lock()
    health_file = args.health_file.open("a", encoding="utf-8") if args.health_file else None

    def write_health(record: dict[str, Any]) -> None:
        if health_file is not None:
            with health_lock:
                health_file.write(json.dumps(record) + "\n")
                health_file.flush()

    stages: list[Stage] = [
        RecognitionStage(recognizer, params),
        ActionEventStage(ActionEvents(args.event_threshold, args.start_after, args.end_after)),
        HealthStage(args.health_interval, on_report=write_health),
    ]
    if args.events:
        stages.append(JsonlSink(args.events, include_frames="none"))
    if publisher is not None:
        stages.append(publisher)
    if args.record_dir:
        annotators = default_annotators(font_scale=args.font_scale, font_color=args.font_color)
        stages += [
            AnnotateStage(annotators),
            VideoWriterSink(args.record_dir / "{source_id}.mp4", per_source=True),
        ]
    pipeline = Pipeline(
        sources,
        stages,
        policies=policies_for(stages, live=True),
        metrics_interval_s=args.metrics_interval,
        metrics_path=args.metrics,
        max_frames=args.max_frames,
    )
    try:
        report = pipeline.run()
    finally:
        if health_file is not None:
            health_file.close()
    log.info("%s after %.1f s: %d events", report.status, report.elapsed_s, report.stages["events"].get("events", 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
