"""Graphs of the per-person jobs: who does what, on top of the people stages.

* ``stream.skeleton``: source → detect → track → pose (every frame) → per-person skeleton
  recognition → action events → drawing → outputs.
* ``stream.stdet``: source → detect → track → spatio-temporal detection on keyframes (every
  tracked person in one RoI batch) → action events → drawing → outputs.

Detection, tracking and pose come from :func:`pipelines.people.people_stages`; the models are
loaded in the stages' ``setup()``, so building a graph loads nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from pipelines.graphs import DrawParams, Graph, OutputParams, publisher_stage, with_outputs
from pipelines.people import PeopleParams, people_annotators, people_stages
from pipelines.skeleton import SkeletonParams, SkeletonStage
from pipelines.stdet import StdetParams, StdetStage
from stream.annotate import AnnotateStage
from stream.annotate.labels import LabelAnnotator
from stream.cli import check_output_paths
from stream.packet import FramePacket
from stream.sources import detect_kind, open_source
from stream.stage import Outputs, Stage
from stream.transport import LIVE_RECORDING

#: People models that run on OpenVINO only (``--backend`` then means the action model's backend).
BUILTIN_PEOPLE_MODELS = ("hog", "blazepose")


def _people(people: PeopleParams, **changes: Any) -> PeopleParams:
    """The people stages' params in a per-person graph: no drawing of their own (the graph draws
    people and labels together), and ``--backend`` left to the action model when the people
    models are the built-in ones (they run on OpenVINO)."""
    builtin = people.detector in BUILTIN_PEOPLE_MODELS and people.pose in (*BUILTIN_PEOPLE_MODELS, None)
    if builtin and people.backend not in ("auto", "openvino"):
        changes["backend"] = "auto"
    return replace(people, draw=False, **changes)


@dataclass(frozen=True)
class SkeletonModelParams:
    """The skeleton model (``--config``, ``--checkpoint``, ``--label-map``, …)."""

    config: Path
    checkpoint: str | None = None
    label_map: str | None = None
    backend: str = "auto"
    device: str = "cpu"
    num_clips: int | None = 1
    cfg_options: dict[str, Any] = field(default_factory=dict)
    trust_checkpoint: bool = False

    def paths(self) -> dict[str, str | Path | None]:
        return {"--config": self.config, "--checkpoint": self.checkpoint, "--label-map": self.label_map}


@dataclass(frozen=True)
class SkeletonJobParams:
    """``stream.skeleton``: every person's action from their keypoints, continuously."""

    source: str
    model: SkeletonModelParams
    people: PeopleParams
    skeleton: SkeletonParams = field(default_factory=SkeletonParams)
    short_side: int | None = None
    realtime: bool = False
    publish: str | None = None
    curve_secret_key: str | None = None
    curve_allow: str | None = None
    insecure: bool = False
    event_threshold: float = 0.5
    start_after: int = 2
    end_after: int = 2
    draw: DrawParams = field(default_factory=DrawParams)
    out: OutputParams = field(default_factory=OutputParams)


def skeleton_graph(p: SkeletonJobParams) -> Graph:
    """Build the ``stream.skeleton`` graph; flags and paths are checked before anything loads.

    Raises:
        ConfigError / SourceNotFound / OutputError: Bad input, one line naming it.
    """
    from pipelines.events import ActionEvents, ActionEventStage
    from pipelines.skeleton_model import check_skeleton_model, open_skeleton_recognizer
    from pipelines.video_demo import ResizeStage

    check_output_paths(p.out.paths(), {"VIDEO": p.source, **p.model.paths()})
    clip_len = check_skeleton_model(p.model.config, p.model.checkpoint, p.model.label_map, p.model.cfg_options)
    window = p.skeleton.window or clip_len
    if p.skeleton.min_frames is not None and p.skeleton.min_frames > window:
        raise ConfigError(f"--min-frames {p.skeleton.min_frames}: expected at most the window ({window} frames)")
    publisher = publisher_stage(p.publish, p.curve_secret_key, p.curve_allow, insecure=p.insecure)
    stages: list[Stage] = people_stages(_people(p.people, pose_every_frame=True))  # checks the people flags
    kind = detect_kind(p.source)
    options: dict[str, Any] = {"fail_fast": True} if kind == "rtsp" else {}
    source = open_source(p.source, realtime=p.realtime, kind=kind, **options)
    skeleton = replace(p.skeleton, live=source.live)
    model = p.model

    def factory() -> Any:
        return open_skeleton_recognizer(
            model.config,
            model.checkpoint,
            label_map=model.label_map,
            backend=model.backend,
            device=model.device,
            cfg_options=model.cfg_options,
            max_batch=skeleton.batch_size,
            num_clips=model.num_clips,
            trust_checkpoint=model.trust_checkpoint,
        )

    if p.short_side is not None:
        stages.insert(0, ResizeStage(short_side=p.short_side))
    stages.append(SkeletonStage(factory, skeleton))
    stages.append(ActionEventStage(ActionEvents(p.event_threshold, p.start_after, p.end_after)))
    annotators = [
        *people_annotators(font_scale=p.draw.font_scale, font_color=p.draw.font_color),
        LabelAnnotator(
            top_k=min(skeleton.top_k, 3),
            threshold=skeleton.threshold,
            font_scale=p.draw.font_scale,
            font_color=p.draw.font_color,
        ),
    ]
    stages.append(AnnotateStage(annotators))
    if publisher is not None:
        stages.append(publisher)
    return with_outputs([source], stages, p.out, live=source.live, window="stream.skeleton", include_frames="people")


@dataclass(frozen=True)
class StdetModelParams:
    """The spatio-temporal detector (``--config``, ``--checkpoint``, ``--label-map``, …)."""

    config: Path
    checkpoint: str | None = None
    label_map: str | None = None
    backend: str = "auto"
    device: str = "cpu"
    short_side: int | None = None
    cfg_options: dict[str, Any] = field(default_factory=dict)
    trust_checkpoint: bool = False

    def paths(self) -> dict[str, str | Path | None]:
        return {"--config": self.config, "--checkpoint": self.checkpoint, "--label-map": self.label_map}


@dataclass(frozen=True)
class StdetJobParams:
    """``stream.stdet``: who does what, where — per-person multi-label actions on keyframes."""

    source: str
    model: StdetModelParams
    people: PeopleParams
    stdet: StdetParams = field(default_factory=StdetParams)
    output_stepsize: int = 1
    realtime: bool = False
    publish: str | None = None
    curve_secret_key: str | None = None
    curve_allow: str | None = None
    insecure: bool = False
    start_after: int = 1
    end_after: int = 1
    draw: DrawParams = field(default_factory=DrawParams)
    out: OutputParams = field(default_factory=OutputParams)


def stdet_graph(p: StdetJobParams) -> Graph:
    """Build the ``stream.stdet`` graph; flags and paths are checked before anything loads.

    Raises:
        ConfigError / SourceNotFound / OutputError: Bad input, one line naming it.
    """
    from pipelines.events import ActionEvents, ActionEventStage
    from pipelines.stdet_model import check_stdet_model, open_stdet_detector

    check_output_paths(p.out.paths(), {"--input-video": p.source, **p.model.paths()})
    check_stdet_model(p.model.config, p.model.checkpoint, p.model.label_map, p.model.cfg_options)
    publisher = publisher_stage(p.publish, p.curve_secret_key, p.curve_allow, insecure=p.insecure)
    if p.output_stepsize < 1:
        raise ConfigError(f"--output-stepsize: expected >= 1, got {p.output_stepsize}")
    stages: list[Stage] = people_stages(_people(p.people, pose=None))
    kind = detect_kind(p.source)
    options: dict[str, Any] = {"fail_fast": True} if kind == "rtsp" else {}
    source = open_source(p.source, realtime=p.realtime, kind=kind, **options)
    stdet = replace(p.stdet, live=source.live)
    model = p.model

    def factory() -> Any:
        return open_stdet_detector(
            model.config,
            model.checkpoint,
            label_map=model.label_map,
            backend=model.backend,
            device=model.device,
            short_side=model.short_side,
            cfg_options=model.cfg_options,
            trust_checkpoint=model.trust_checkpoint,
        )

    stages.append(StdetStage(factory, stdet))
    stages.append(ActionEventStage(ActionEvents(stdet.threshold, p.start_after, p.end_after)))
    annotators = [
        *people_annotators(font_scale=p.draw.font_scale, font_color=p.draw.font_color),
        LabelAnnotator(top_k=5, threshold=stdet.threshold, font_scale=p.draw.font_scale, font_color=p.draw.font_color),
    ]
    stages.append(AnnotateStage(annotators))
    if p.output_stepsize > 1:
        stages.append(EveryNth(p.output_stepsize))
    if publisher is not None:
        stages.append(publisher)
    return with_outputs([source], stages, p.out, live=source.live, window="stream.stdet", include_frames="people")


class EveryNth(Stage):
    """Passes on every N-th frame of each source (``--output-stepsize``); events all pass."""

    live_policy = LIVE_RECORDING

    def __init__(self, n: int, name: str = "output-stepsize") -> None:
        super().__init__(name)
        self.n = n
        self._count: dict[str, int] = {}

    def process(self, packet: FramePacket) -> Outputs:
        count = self._count.get(packet.source_id, 0)
        self._count[packet.source_id] = count + 1
        return packet if count % self.n == 0 else None
