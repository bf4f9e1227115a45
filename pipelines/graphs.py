"""The stage graph of every job, built from typed parameters.

An entry point parses its flags into the parameter dataclasses below and calls one builder
(:func:`play_graph`, :func:`webcam_graph`, :func:`long_video_graph`, :func:`rtsp_graph`,
:func:`demo_graph`);
the :class:`Graph` it gets back runs the sources and stages on the runner. Outputs that cost
little are grouped into one stage (:class:`~stream.sinks.MultiSink`) where a ZeroMQ hop and
a thread would buy nothing; the display keeps a stage of its own (it drops all but the newest
frame when live).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from core.errors import ConfigError
from stream.annotate import AnnotateStage, default_annotators
from stream.annotate.labels import LabelAnnotator
from stream.annotate.overlay import OverlayAnnotator
from stream.cli import check_output_paths
from stream.errors import SourceNotFound
from stream.health import HealthStage
from stream.runner import Pipeline, RunReport
from stream.security import curve_server_from_args
from stream.sinks import DisplaySink, JsonlSink, MultiSink, VideoWriterSink, ZmqPublisherSink
from stream.sources import Backoff, FileSource, NetworkSource, detect_kind, open_source
from stream.stage import Source, Stage
from stream.transport import LOSSLESS

if TYPE_CHECKING:  # the model side imports torch: only the builders that need it load it
    from pipelines.people import PeopleParams
    from pipelines.recognition import RecognitionParams
    from pipelines.recognizer import Recognizer
    from pipelines.video_demo import VideoLabels

log = logging.getLogger(__name__)

IncludeFrames = Literal["all", "predictions", "people", "none"]


@dataclass(frozen=True)
class ModelParams:
    """Which recognizer to run and how (``--config``, ``--checkpoint``, ``--backend``, …)."""

    config: Path
    checkpoint: str | None = None
    label_file: str | None = None
    backend: str = "auto"
    device: str = "cpu"
    precision: str = "auto"
    calibration: str | None = None
    engine_dir: str | None = None
    num_clips: int | None = None
    batch_size: int = 4
    cfg_options: dict[str, Any] = field(default_factory=dict)
    trust_checkpoint: bool = False
    trust_engine: bool = False
    reuse: bool = True

    def paths(self, *, positional: bool = False) -> dict[str, str | Path | None]:
        """The model's input files, by flag (or positional name), for :func:`~stream.cli.check_output_paths`."""
        names = ("CONFIG", "CHECKPOINT", "LABEL_FILE") if positional else ("--config", "--checkpoint", "--label-file")
        values = (self.config, self.checkpoint, self.label_file)
        return {**dict(zip(names, values, strict=True)), "--engine": self.engine_dir}

    def open(self, frame_size: tuple[int, int] | None = None) -> Recognizer:
        """Build or reuse the engine (see :func:`pipelines.recognizer.open_recognizer`)."""
        from pipelines.recognizer import open_recognizer

        return open_recognizer(
            self.config,
            self.checkpoint,
            backend=self.backend,
            device=self.device,
            precision=self.precision,
            calibration=self.calibration,
            cfg_options=self.cfg_options or None,
            label_file=self.label_file,
            engine_dir=self.engine_dir,
            max_batch=max(1, self.batch_size),
            num_clips=self.num_clips,
            frame_size=frame_size,
            trust_checkpoint=self.trust_checkpoint,
            trust_engine=self.trust_engine,
            reuse=self.reuse,
        )


@dataclass(frozen=True)
class DrawParams:
    """MMAction2's drawing flags."""

    font_scale: float | None = None
    font_color: str = "white"


@dataclass(frozen=True)
class OutputParams:
    """The usual outputs of a job and how the run is watched."""

    out_file: Path | None = None
    output_fps: float | None = None
    events: Path | None = None
    show: bool = False
    drawing_fps: float | None = None
    metrics: Path | None = None
    metrics_interval: float = 5.0
    max_frames: int | None = None
    fragmented: bool = False

    def paths(self) -> dict[str, Path | None]:
        """The output files, by flag, for :func:`~stream.cli.check_output_paths`."""
        return {"--out-file": self.out_file, "--events": self.events, "--metrics": self.metrics}


@dataclass
class Graph:
    """Sources and stages ready to run, with how their links behave.

    Attributes:
        sources: Frame sources (each in its own thread).
        stages: Stages in order (each in its own thread, linked by ZeroMQ).
        live: Live sources get each stage's ``live_policy``; files are lossless.
        run: Metrics and frame-limit settings.
        display: The display stage, if any (its ``q`` / Esc stops the pipeline).
    """

    sources: list[Source]
    stages: list[Stage]
    live: bool
    run: OutputParams = field(default_factory=OutputParams)
    display: DisplaySink | None = None

    def execute(self) -> RunReport:
        """Run the graph to its end (or Ctrl-C); raises ``StageError`` if a stage failed."""
        pipeline = Pipeline(
            self.sources,
            self.stages,
            policies=[s.live_policy if self.live else LOSSLESS for s in self.stages],
            metrics_interval_s=self.run.metrics_interval,
            metrics_path=self.run.metrics,
            max_frames=self.run.max_frames,
        )
        if self.display is not None:
            self.display.on_quit = pipeline.stop
        return pipeline.run()


def with_outputs(
    sources: Sequence[Source],
    stages: list[Stage],
    out: OutputParams,
    *,
    live: bool,
    window: str,
    include_frames: IncludeFrames,
) -> Graph:
    """Append ``--out-file`` / ``--events`` (grouped in one stage) and ``--show`` to ``stages``."""
    stages = list(stages)
    writers: list[Stage] = []
    if out.events:
        writers.append(JsonlSink(out.events, include_frames=include_frames))
    if out.out_file:
        writers.append(VideoWriterSink(out.out_file, fps=out.output_fps, fragmented=out.fragmented))
    if len(writers) > 1:
        stages.append(MultiSink(writers, name="outputs"))
    else:
        stages += writers
    display = None
    if out.show:
        display = DisplaySink(window, fps_cap=out.drawing_fps)
        stages.append(display)
    return Graph(list(sources), stages, live, out, display)


# ---------------------------------------------------------------------------------- play


def play_graph(
    source: str, *, realtime: bool, fps: float | None, use_frames: bool, draw: DrawParams, out: OutputParams
) -> Graph:
    """``stream.play``: decode, draw frame index / time / fps, write out (no model)."""
    check_output_paths(out.paths(), {"SOURCE": source})
    kind = "images" if use_frames else detect_kind(source)
    options: dict[str, Any] = {"fail_fast": True} if kind == "rtsp" else {}
    src = open_source(source, realtime=realtime, fps=fps, kind=kind, **options)
    overlay = OverlayAnnotator(font_scale=draw.font_scale, font_color=draw.font_color)
    return with_outputs(
        [src], [AnnotateStage([overlay])], out, live=src.live, window="stream.play", include_frames="all"
    )


# ---------------------------------------------------------------------------------- people


def people_graph(
    source: str, params: PeopleParams, *, realtime: bool = False, out: OutputParams | None = None
) -> Graph:
    """``stream.people``: detect → track → pose → draw → outputs (see :mod:`pipelines.people`)."""
    from pipelines.people import people_stages

    out = out or OutputParams()
    check_output_paths(out.paths(), {"SOURCE": source})
    stages = people_stages(params)  # checks the flags before the source is opened
    kind = detect_kind(source)
    options: dict[str, Any] = {"fail_fast": True} if kind == "rtsp" else {}  # unreachable at start-up: an error
    src = open_source(source, realtime=realtime, kind=kind, **options)
    return with_outputs([src], stages, out, live=src.live, window="stream.people", include_frames="people")


# ---------------------------------------------------------------------------------- webcam


@dataclass(frozen=True)
class WebcamParams:
    """``stream.webcam``: live recognition from a camera, a stream or a file."""

    model: ModelParams
    predict: RecognitionParams
    source: str | None = None
    realtime: bool = False
    draw: DrawParams = field(default_factory=DrawParams)
    out: OutputParams = field(default_factory=OutputParams)


def default_source(config: Path) -> str:
    """The config's ``demo_video`` if it has one (the built-in demo), else camera 0."""
    from engines.config import read_config

    demo = read_config(config).get("demo_video")
    if demo and Path(demo).is_file():
        log.info("no --source given: using the config's demo video %s", demo)
        return str(demo)
    return "0"


def webcam_graph(p: WebcamParams) -> Graph:
    """Source → recognition → annotation → outputs; live sources drop stale clips, files none."""
    from pipelines.recognition import RecognitionStage

    check_output_paths(p.out.paths(), {"--source": p.source, **p.model.paths()})
    spec = p.source or default_source(p.model.config)
    kind = detect_kind(spec)
    options: dict[str, Any] = {"fail_fast": True} if kind == "rtsp" else {}
    try:
        source = open_source(spec, realtime=p.realtime, kind=kind, **options)
    except SourceNotFound as exc:
        if kind == "webcam" and p.source is None:
            raise SourceNotFound(f"{exc} (no --source given, so camera 0 was tried)") from exc
        raise
    predict = replace(p.predict, live=source.live)
    recognizer = p.model.open()
    annotators = default_annotators(
        font_scale=p.draw.font_scale, font_color=p.draw.font_color, threshold=predict.threshold, top_k=predict.top_k
    )
    stages: list[Stage] = [RecognitionStage(recognizer, predict), AnnotateStage(annotators)]
    return with_outputs([source], stages, p.out, live=source.live, window="stream.webcam", include_frames="predictions")


# ---------------------------------------------------------------------------------- long video

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm")


@dataclass(frozen=True)
class LongVideoParams:
    """``stream.long_video``: sliding-window labelling of a file."""

    model: ModelParams
    predict: RecognitionParams
    video: Path
    out_file: Path
    segments: Path | None = None
    timeline: Path | None = None
    progress: bool = True
    label_color: str = "white"
    msg_color: str = "gray"
    json_format: str = "ours"
    draw: DrawParams = field(default_factory=DrawParams)
    out: OutputParams = field(default_factory=OutputParams)

    @property
    def writes_video(self) -> bool:
        return self.out_file.suffix.lower() != ".json"


def long_video_graph(p: LongVideoParams) -> Graph:
    """File → recognition (batched, placed by window middles) → timeline → annotation → video."""
    from pipelines.recognition import RecognitionStage
    from pipelines.timeline import JSON_FORMATS, TimelineStage

    suffix = p.out_file.suffix.lower()
    if suffix not in (*VIDEO_SUFFIXES, ".json"):
        raise ConfigError(f"OUT_FILE {p.out_file}: expected a video ({', '.join(VIDEO_SUFFIXES)}) or a .json file")
    if not p.video.is_file():
        raise SourceNotFound(f"video not found: {p.video}")
    check_output_paths(
        {"OUT_FILE": p.out_file, "--segments": p.segments, "--timeline": p.timeline, "--metrics": p.out.metrics},
        {"VIDEO": p.video, **p.model.paths(positional=True)},
    )
    probe = FileSource(p.video)
    probe.setup()  # opens and probes it: a broken file fails here, before any model work
    info = probe.info
    probe.close()
    if info is None:  # setup() always sets it; keeps the type checker informed
        raise SourceNotFound(f"cannot read {p.video}")
    if p.json_format not in JSON_FORMATS:
        raise ConfigError(f"--json-format: expected one of {', '.join(JSON_FORMATS)}, got {p.json_format!r}")
    recognizer = p.model.open(frame_size=(info.width, info.height))
    stages: list[Stage] = [
        RecognitionStage(recognizer, p.predict, fps=info.fps_float or None),
        TimelineStage(
            recognizer.class_names,
            frames_json=None if p.writes_video else p.out_file,
            json_format="mmaction2" if p.json_format == "mmaction2" else "ours",
            segments_path=p.segments,
            timeline_png=p.timeline,
            total_frames=info.frames,
            progress=sys.stderr if p.progress else None,
            title=p.video.name,
        ),
    ]
    if p.writes_video:
        labels = LabelAnnotator(
            top_k=p.predict.top_k,
            threshold=p.predict.threshold,
            font_scale=p.draw.font_scale,
            font_color=p.label_color if p.draw.font_color == "white" else p.draw.font_color,
            waiting_text="Preparing action recognition ...",
            waiting_color=p.msg_color,
        )
        overlay = OverlayAnnotator(font_scale=p.draw.font_scale, show_fps=False, show_latency=False)
        stages += [AnnotateStage([labels, overlay]), VideoWriterSink(p.out_file, fps=p.out.output_fps)]
    return Graph([FileSource(p.video)], stages, live=False, run=p.out)


# ---------------------------------------------------------------------------------- RTSP monitor


@dataclass(frozen=True)
class CameraSpec:
    """One camera: its URL and optional name (the source id)."""

    url: str
    name: str | None = None


@dataclass(frozen=True)
class RtspParams:
    """``stream.rtsp``: headless monitoring of several cameras with one shared engine."""

    model: ModelParams
    predict: RecognitionParams
    cameras: tuple[CameraSpec, ...] = ()
    events: Path | None = None
    publish: str | None = None
    curve_secret_key: str | None = None
    curve_allow: str | None = None
    insecure: bool = False
    record_dir: Path | None = None
    event_threshold: float = 0.5
    start_after: int = 3
    end_after: int = 1
    health_interval: float = 5.0
    health_file: Path | None = None
    open_timeout: float = 5.0
    read_timeout: float = 5.0
    max_backoff: float = 10.0
    draw: DrawParams = field(default_factory=DrawParams)
    out: OutputParams = field(default_factory=OutputParams)


def config_cameras(config: Path) -> tuple[CameraSpec, ...]:
    """The cameras listed in the config's ``sources`` (URLs or ``dict(url=..., name=...)``).

    Raises:
        ConfigError: If there is none, or an entry is malformed.
    """
    from engines.config import read_config

    entries = read_config(config).get("sources") or []
    cameras: list[CameraSpec] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            cameras.append(CameraSpec(entry))
        elif isinstance(entry, dict) and isinstance(entry.get("url"), str):
            cameras.append(CameraSpec(entry["url"], entry.get("name")))
        else:
            raise ConfigError(f"{config}: sources[{i}]: expected a URL or dict(url=..., name=...), got {entry!r}")
    if not cameras:
        raise ConfigError(
            "no cameras: pass --source rtsp://... (repeatable) or list them in the config as sources=[...]"
        )
    return tuple(cameras)


def _camera_sources(p: RtspParams) -> list[Source]:
    sources: list[Source] = []
    for cam in p.cameras or config_cameras(p.model.config):
        if detect_kind(cam.url) != "rtsp":  # files and cameras work too, e.g. for trying it out
            sources.append(open_source(cam.url, source_id=cam.name))
            continue
        sources.append(
            NetworkSource(
                cam.url,
                source_id=cam.name,
                open_timeout_s=p.open_timeout,
                read_timeout_s=p.read_timeout,
                backoff=Backoff(max_s=p.max_backoff),
            )
        )
    names = [s.source_id for s in sources]
    if len(set(names)) != len(names):
        raise ConfigError(f"camera names must be unique, got {names}; name them in the config: dict(url=..., name=...)")
    return sources


class HealthLog(HealthStage):
    """:class:`~stream.health.HealthStage` that also appends each record to a JSON-lines file."""

    def __init__(self, interval_s: float, path: Path | None) -> None:
        super().__init__(interval_s, on_report=self._write if path is not None else None)
        self.path = path
        self._file: Any = None
        self._write_lock = threading.Lock()

    def setup(self) -> None:
        if self.path is not None:
            self._file = self.path.open("a", encoding="utf-8")
        super().setup()

    def _write(self, record: dict[str, Any]) -> None:
        with self._write_lock:
            if self._file is not None:
                self._file.write(json.dumps(record) + "\n")
                self._file.flush()

    def close(self) -> None:
        super().close()
        with self._write_lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def rtsp_publisher(p: RtspParams) -> ZmqPublisherSink | None:
    """The ``--publish`` stage of ``stream.rtsp`` (see :func:`publisher_stage`)."""
    return publisher_stage(p.publish, p.curve_secret_key, p.curve_allow, insecure=p.insecure)


def publisher_stage(
    publish: str | None, curve_secret_key: str | None, curve_allow: str | None, *, insecure: bool
) -> ZmqPublisherSink | None:
    """The ``--publish`` stage (see :mod:`stream.security`), or None without ``--publish``.

    Raises:
        ConfigError: If the address reaches other machines without CurveZMQ or ``--insecure``,
            or the CurveZMQ flags are incomplete or their files unusable.
    """
    curve = curve_server_from_args(curve_secret_key, curve_allow)
    if not publish:
        if curve is not None or insecure:
            raise ConfigError("--curve-secret-key, --curve-allow and --insecure apply to --publish; add --publish")
        return None
    return ZmqPublisherSink(publish, include_frames="none", curve=curve, insecure=insecure)


def rtsp_graph(p: RtspParams) -> Graph:
    """Cameras → recognition (newest clip of each, one batch) → events → health → outputs."""
    check_output_paths(
        {"--events": p.events, "--health-file": p.health_file, "--metrics": p.out.metrics},
        {**p.model.paths(), **{f"--source {c.url}": c.url for c in p.cameras}},
    )
    from pipelines.events import ActionEvents, ActionEventStage
    from pipelines.recognition import RecognitionStage

    publisher = rtsp_publisher(p)  # checked before anything heavy starts
    sources = _camera_sources(p)
    recognizer = p.model.open()
    predict = replace(p.predict, live=True)
    stages: list[Stage] = [
        RecognitionStage(recognizer, predict),
        ActionEventStage(ActionEvents(p.event_threshold, p.start_after, p.end_after)),
        HealthLog(p.health_interval, p.health_file),
    ]
    if p.events:
        # A monitor's events are a log: appended as they happen (follow with tail -f), never replaced.
        stages.append(JsonlSink(p.events, include_frames="none", append=True))
    if publisher is not None:
        stages.append(publisher)
    if p.record_dir:
        annotators = default_annotators(
            font_scale=p.draw.font_scale, font_color=p.draw.font_color, threshold=predict.threshold, top_k=predict.top_k
        )
        recorder = VideoWriterSink(p.record_dir / "{source_id}.mp4", per_source=True, fragmented=p.out.fragmented)
        stages += [AnnotateStage(annotators), recorder]
    # A file given as a camera (to try the monitor out) is read losslessly unless a real camera
    # runs beside it: drop policies on a file decoded at full speed would record and label an
    # arbitrary subset of its frames.
    return Graph(sources, stages, live=any(s.live for s in sources), run=p.out)


# ---------------------------------------------------------------------------------- demo.py

DEMO_OUT_SUFFIXES = (*VIDEO_SUFFIXES, ".gif")
#: Output rate of an annotated frame folder when ``--fps`` is not given (MMAction2's default).
DEMO_FRAMES_FPS = 30.0


@dataclass(frozen=True)
class DemoParams:
    """``stream.demo``: one label for a whole video (MMAction2's ``demo/demo.py``)."""

    model: ModelParams
    video: Path
    use_frames: bool = False
    out_filename: Path | None = None
    fps: float | None = None
    target_resolution: tuple[int, int] | None = None
    resize_algorithm: str = "bicubic"
    top_k: int = 5
    draw: DrawParams = field(default_factory=DrawParams)
    out: OutputParams = field(default_factory=OutputParams)


def video_input(video: Path, use_frames: bool, fps: float | None = None) -> Callable[[], Source]:
    """The frames of MMAction2's ``VIDEO`` argument: a video file, or with ``--use-frames`` a folder of frames.

    Args:
        video: The path.
        use_frames: It is a folder of frames, read at ``fps`` (default 30, as the demos write them).
        fps: Frame rate of a frame folder.

    Returns:
        A callable giving a fresh (not set up) source of the frames each time.

    Raises:
        SourceNotFound: If the file or folder is not there (one line, with a hint for a folder
            given without ``--use-frames``).
    """
    if use_frames and not video.is_dir():
        raise SourceNotFound(f"--use-frames: frame folder not found: {video}")
    if not use_frames and not video.is_file():
        hint = " (a frame folder needs --use-frames)" if video.is_dir() else ""
        raise SourceNotFound(f"video not found: {video}{hint}")

    def open_input() -> Source:
        if use_frames:
            return open_source(video, kind="images", fps=fps or DEMO_FRAMES_FPS)
        return FileSource(video)

    return open_input


def probe_video(open_input: Callable[[], Source]) -> tuple[int, int] | None:
    """Open the input once (a broken file or an empty folder fails here, before any model work).

    Returns:
        ``(width, height)`` of a video file, None for a frame folder.
    """
    probe = open_input()
    probe.setup()
    info = getattr(probe, "info", None)
    probe.close()
    return (info.width, info.height) if info is not None else None


def demo_graph(p: DemoParams) -> tuple[VideoLabels, Graph | None]:
    """Classify the whole video; with ``out_filename`` also the graph that writes it annotated.

    Everything the user typed is checked before the model is opened: the output's suffix and
    path (never an input), ``--target-resolution``, ``--resize-algorithm``, the video itself.

    Raises:
        ConfigError / SourceNotFound / OutputError: Bad input, one line naming it.
    """
    from pipelines.video_demo import RESIZE_ALGORITHMS, AttachPrediction, ResizeStage, classify_video, target_size

    out = p.out_filename
    if out is not None and out.suffix.lower() not in DEMO_OUT_SUFFIXES:
        raise ConfigError(f"--out-filename {out}: expected a video ({', '.join(VIDEO_SUFFIXES)}) or a .gif")
    if p.resize_algorithm not in RESIZE_ALGORITHMS:
        raise ConfigError(
            f"--resize-algorithm: expected one of {', '.join(RESIZE_ALGORITHMS)}, got {p.resize_algorithm!r}"
        )
    target_size(p.target_resolution, 2, 2)  # checks the values
    open_input = video_input(p.video, p.use_frames, p.fps)
    check_output_paths(
        {"--out-filename": out, "--metrics": p.out.metrics}, {"VIDEO": p.video, **p.model.paths(positional=True)}
    )
    frame_size = probe_video(open_input)
    recognizer = p.model.open(frame_size=frame_size)
    try:
        labels = classify_video(recognizer, open_input, top_k=p.top_k)
    finally:
        recognizer.close()
    if out is None:
        return labels, None
    annotate = LabelAnnotator(top_k=1, font_scale=p.draw.font_scale, font_color=p.draw.font_color)
    stages: list[Stage] = [AttachPrediction(labels.prediction())]
    if p.target_resolution is not None:
        stages.append(ResizeStage(p.target_resolution, p.resize_algorithm))
    gif = out.suffix.lower() == ".gif"
    fps = p.fps or (DEMO_FRAMES_FPS if p.use_frames else None)
    writer = VideoWriterSink(out, fps=fps, codec="gif", pix_fmt="rgb8") if gif else VideoWriterSink(out, fps=fps)
    stages += [AnnotateStage([annotate]), writer]
    return labels, Graph([open_input()], stages, live=False, run=p.out)
