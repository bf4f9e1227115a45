"""Graphs of the per-person jobs: who does what, on top of the people stages.

* ``stream.skeleton``: source → detect → track → pose (every frame) → per-person skeleton
  recognition → action events → drawing → outputs.
* ``stream.stdet``: source → detect → track → spatio-temporal detection on keyframes (every
  tracked person in one RoI batch) → action events → drawing → outputs.
* ``stream.structuralize``: one graph that detects, tracks and estimates pose once and shares
  them between a per-person spatio-temporal detector (RGB or skeleton-based) and an action
  recognizer (whole-frame RGB, or per-person skeleton).

Detection, tracking and pose come from :func:`pipelines.people.people_stages`; the models are
loaded in the stages' ``setup()``, so building a graph loads nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError
from pipelines.graphs import DrawParams, Graph, ModelParams, OutputParams, publisher_stage, with_outputs
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

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from pipelines.recognition import RecognitionParams

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
class ActionModelParams:
    """An action model's files and where it runs (``--config``, ``--checkpoint``, ``--label-map``, …).

    Attributes:
        flags: The flag names of config, checkpoint and label map, for error messages
            (``stream.structuralize`` has several models).
    """

    config: Path
    checkpoint: str | None = None
    label_map: str | None = None
    backend: str = "auto"
    device: str = "cpu"
    cfg_options: dict[str, Any] = field(default_factory=dict)
    trust_checkpoint: bool = False
    flags: tuple[str, str, str] = ("--config", "--checkpoint", "--label-map")

    def paths(self) -> dict[str, str | Path | None]:
        return dict(zip(self.flags, (self.config, self.checkpoint, self.label_map), strict=True))


@dataclass(frozen=True)
class SkeletonModelParams(ActionModelParams):
    """A skeleton model; ``num_clips`` clips sampled per window (None: the config's)."""

    num_clips: int | None = 1


@dataclass(frozen=True)
class StdetModelParams(ActionModelParams):
    """A spatio-temporal detector; frames resized to ``short_side`` (None: the config's)."""

    short_side: int | None = None


@dataclass(frozen=True)
class PersonJobParams:
    """What every per-person job shares: the source, the people models, outputs and events."""

    source: str
    people: PeopleParams
    short_side: int | None = None
    realtime: bool = False
    output_stepsize: int = 1
    publish: str | None = None
    curve_secret_key: str | None = None
    curve_allow: str | None = None
    insecure: bool = False
    event_threshold: float = 0.5
    start_after: int = 2
    end_after: int = 2
    draw: DrawParams = field(default_factory=DrawParams)
    out: OutputParams = field(default_factory=OutputParams)


@dataclass(frozen=True)
class SkeletonJobParams(PersonJobParams):
    """``stream.skeleton``: every person's action from their keypoints, continuously."""

    model: SkeletonModelParams = field(default_factory=lambda: SkeletonModelParams(Path("")))
    skeleton: SkeletonParams = field(default_factory=SkeletonParams)


@dataclass(frozen=True)
class StdetJobParams(PersonJobParams):
    """``stream.stdet``: who does what, where — per-person multi-label actions on keyframes."""

    model: StdetModelParams | None = None
    stdet: StdetParams = field(default_factory=StdetParams)


@dataclass(frozen=True)
class StructuralizeParams(PersonJobParams):
    """``stream.structuralize``: a per-person detector and a recognizer on shared people.

    Attributes:
        rgb_stdet: the RGB spatio-temporal detector, or None.
        skeleton_stdet: the skeleton-based per-person detector (``--use-skeleton-stdet``), or None.
        skeleton_recog: per-person skeleton recognition (``--use-skeleton-recog``), or None.
        rgb_recog: whole-frame RGB recognition (``--rgb-config``), or None.
    """

    rgb_stdet: StdetModelParams | None = None
    skeleton_stdet: SkeletonModelParams | None = None
    skeleton_recog: SkeletonModelParams | None = None
    rgb_recog: ModelParams | None = None
    stdet: StdetParams = field(default_factory=StdetParams)
    skeleton: SkeletonParams = field(default_factory=SkeletonParams)
    recognition: RecognitionParams | None = None


def skeleton_graph(p: SkeletonJobParams) -> Graph:
    """Build the ``stream.skeleton`` graph; flags and paths are checked before anything loads.

    Raises:
        ConfigError / SourceNotFound / OutputError: Bad input, one line naming it.
    """
    inputs = {"VIDEO": p.source, **p.model.paths()}
    return _graph(p, "stream.skeleton", inputs, skeleton=[(p.model, p.skeleton, "skeleton")])


def stdet_graph(p: StdetJobParams) -> Graph:
    """Build the ``stream.stdet`` graph; flags and paths are checked before anything loads.

    Raises:
        ConfigError / SourceNotFound / OutputError: Bad input, one line naming it.
    """
    if p.model is None:  # zero-download default: per-person actions from skeletons, the built-in demo model
        from pipelines.demo import SKELETON_CONFIG

        log.info(
            "no --config: skeleton-based detection with the built-in demo model (standing, walking, waving, arms up, "
            "squatting, jumping); an AVA model needs --config and --checkpoint"
        )
        demo = SkeletonModelParams(SKELETON_CONFIG, backend=p.people.backend, device=p.people.device)
        skeleton = SkeletonParams(predict_stepsize=p.stdet.predict_stepsize)
        return _graph(p, "stream.stdet", {"--input-video": p.source}, skeleton=[(demo, skeleton, "skeleton")])
    return _graph(p, "stream.stdet", {"--input-video": p.source, **p.model.paths()}, stdet=(p.model, p.stdet))


def structuralize_graph(p: StructuralizeParams) -> Graph:
    """Build the ``stream.structuralize`` graph; flags and paths are checked before anything loads.

    Raises:
        ConfigError / SourceNotFound / OutputError: Bad input, one line naming it.
    """
    if p.rgb_stdet is not None and p.skeleton_stdet is not None:
        raise ConfigError("--use-skeleton-stdet replaces the RGB detector: drop --rgb-stdet-config or the flag")
    if p.skeleton_recog is not None and p.rgb_recog is not None:
        raise ConfigError("--use-skeleton-recog replaces the RGB recognizer: drop --rgb-config or the flag")
    inputs: dict[str, str | Path | None] = {"--video": p.source}
    skeletons: list[tuple[SkeletonModelParams, SkeletonParams, str]] = []
    for model, name in ((p.skeleton_stdet, "skeleton-stdet"), (p.skeleton_recog, "skeleton")):
        if model is not None:
            inputs.update(model.paths())
            skeletons.append((model, p.skeleton, name))
    if p.rgb_stdet is not None:
        inputs.update(p.rgb_stdet.paths())
    recognizer = None
    if p.rgb_recog is not None:
        inputs.update(p.rgb_recog.paths())
        recognizer = (p.rgb_recog, p.recognition)
    stdet = (p.rgb_stdet, p.stdet) if p.rgb_stdet is not None else None
    if not skeletons and stdet is None and recognizer is None:
        raise ConfigError(
            "nothing to run: give --rgb-stdet-config, --use-skeleton-stdet, --use-skeleton-recog or --rgb-config"
        )
    return _graph(p, "stream.structuralize", inputs, skeleton=skeletons, stdet=stdet, recognition=recognizer)


def _graph(
    p: PersonJobParams,
    window: str,
    inputs: dict[str, str | Path | None],
    *,
    skeleton: list[tuple[SkeletonModelParams, SkeletonParams, str]] | None = None,
    stdet: tuple[StdetModelParams, StdetParams] | None = None,
    recognition: tuple[ModelParams, RecognitionParams | None] | None = None,
) -> Graph:
    """source → people → [stdet] → [skeleton models] → [recognition] → events → drawing → outputs."""
    from pipelines.events import ActionEvents, ActionEventStage
    from pipelines.recognition import RecognitionParams, RecognitionStage
    from pipelines.video_demo import ResizeStage

    check_output_paths(p.out.paths(), inputs)
    if p.output_stepsize < 1:
        raise ConfigError(f"--output-stepsize: expected >= 1, got {p.output_stepsize}")
    models = [(_skeleton_factory(model, params), params, name) for model, params, name in skeleton or []]
    stdet_factory = _stdet_factory(*stdet) if stdet is not None else None
    publisher = publisher_stage(p.publish, p.curve_secret_key, p.curve_allow, insecure=p.insecure)
    pose = None if not models else p.people.pose
    stages: list[Stage] = people_stages(_people(p.people, pose=pose, pose_every_frame=bool(models)))
    kind = detect_kind(p.source)
    options: dict[str, Any] = {"fail_fast": True} if kind == "rtsp" else {}
    source = open_source(p.source, realtime=p.realtime, kind=kind, **options)
    if p.short_side is not None:
        stages.insert(0, ResizeStage(short_side=p.short_side))
    top_k, threshold = 3, 0.0
    if stdet_factory is not None and stdet is not None:
        stages.append(StdetStage(stdet_factory, replace(stdet[1], live=source.live)))
    for factory, params, name in models:
        stages.append(SkeletonStage(factory, replace(params, live=source.live), name=name))
        top_k, threshold = min(params.top_k, 3), params.threshold
    if recognition is not None:
        rgb, predict = recognition
        stages.append(RecognitionStage(rgb.open(), replace(predict or RecognitionParams(), live=source.live)))
    stages.append(ActionEventStage(ActionEvents(p.event_threshold, p.start_after, p.end_after)))
    labels = LabelAnnotator(
        top_k=top_k, threshold=threshold, font_scale=p.draw.font_scale, font_color=p.draw.font_color
    )
    stages.append(
        AnnotateStage([*people_annotators(font_scale=p.draw.font_scale, font_color=p.draw.font_color), labels])
    )
    if p.output_stepsize > 1:
        stages.append(EveryNth(p.output_stepsize))
    if publisher is not None:
        stages.append(publisher)
    return with_outputs([source], stages, p.out, live=source.live, window=window, include_frames="people")


def _skeleton_factory(model: SkeletonModelParams, params: SkeletonParams) -> Callable[[], Any]:
    """Checks the model's files and flags now; the factory opens it in the stage's ``setup()``."""
    from pipelines.skeleton_model import check_skeleton_model, open_skeleton_recognizer

    clip_len = check_skeleton_model(model.config, model.checkpoint, model.label_map, model.cfg_options)
    window = params.window or clip_len
    if params.min_frames is not None and params.min_frames > window:
        raise ConfigError(f"--min-frames {params.min_frames}: expected at most the window ({window} frames)")
    return partial(
        open_skeleton_recognizer, model.config, model.checkpoint, label_map=model.label_map, backend=model.backend,
        device=model.device, cfg_options=model.cfg_options, max_batch=params.batch_size, num_clips=model.num_clips,
        trust_checkpoint=model.trust_checkpoint,
    )  # fmt: skip


def _stdet_factory(model: StdetModelParams, params: StdetParams) -> Callable[[], Any]:
    from pipelines.stdet_model import check_stdet_model, open_stdet_detector

    check_stdet_model(model.config, model.checkpoint, model.label_map, model.cfg_options)
    return partial(
        open_stdet_detector, model.config, model.checkpoint, label_map=model.label_map, backend=model.backend,
        device=model.device, short_side=model.short_side, cfg_options=model.cfg_options,
        trust_checkpoint=model.trust_checkpoint,
    )  # fmt: skip


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
