"""People-graph behaviour that mutation testing found unchecked (docs/mutation.md).

What a user of ``python -m stream.people`` gets from its flags (:class:`PeopleParams`): which
stages run, the settings each model is built with (recorded by replacing the registered
models with recorders, as a new model would register itself), how often people are detected
and posed, when tracks start and end, what is drawn in which colour, and one-line errors for
flags that do not go together.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from fractions import Fraction
from functools import partial
from typing import Any

import numpy as np
import pytest

from detectors.errors import DetectorConfigError, ModelNotAvailable
from detectors.registry import DETECTORS, POSE_ESTIMATORS
from detectors.stages import DETECTED, DetectStage, PoseStage, TrackStage
from pipelines.people import PeopleParams, people_annotators, people_stages
from stream.annotate import AnnotateStage
from stream.annotate.style import PALETTE
from stream.packet import Detections, FramePacket, SourceEvent
from stream.stage import Stage, as_outputs

pytestmark = pytest.mark.timeout(30)

H, W = 480, 640


class Nobody:
    """A model that finds nobody and gives every person zero keypoints."""

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return [Detections.empty() for _ in images]

    def estimate(self, images: Sequence[np.ndarray], detections: Sequence[Detections]) -> list[Detections]:
        return [
            Detections(d.xyxy, d.scores, d.labels, d.track_ids, keypoints=np.zeros((len(d), 17, 3))) for d in detections
        ]

    def close(self) -> None:
        pass


Built = list[tuple[str, dict[str, Any]]]


def _record(built: Built, name: str, **kwargs: Any) -> Nobody:
    built.append((name, kwargs))
    return Nobody()


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Iterator[Built]:
    """Every registered detector and pose estimator replaced by a recorder of its settings."""
    calls: Built = []
    for family in (DETECTORS, POSE_ESTIMATORS):
        for name in list(family):
            monkeypatch.setitem(family, name, partial(_record, calls, name))
    yield calls


def of_type(stages: list[Stage], kind: type[Stage]) -> Any:
    (stage,) = [s for s in stages if isinstance(s, kind)]
    return stage


def frame(t: int, source_id: str = "cam") -> FramePacket:
    """Frame ``t`` at 10 fps (stream time ``t / 10`` s)."""
    return FramePacket(np.full((H, W, 3), 60, np.uint8), source_id, t, t, Fraction(1, 10), time.monotonic_ns())


def person(t: int, score: float, track_id: int | None = None, *, detected: bool = True) -> FramePacket:
    packet = frame(t)
    ids = None if track_id is None else np.array([track_id])
    packet.detections = Detections(np.array([[400, 120, 500, 400]], np.float32), np.array([score]), np.zeros(1), ids)
    packet.meta[DETECTED] = detected
    return packet


def events_of(outputs: object) -> list[str]:
    return [o.kind for o in as_outputs(outputs) if isinstance(o, SourceEvent)]  # type: ignore[arg-type]


# --- what is built from the flags -------------------------------------------------------------


def test_the_default_graph_builds_hog_and_blazepose_on_the_cpu(built):
    stages = people_stages(PeopleParams())
    assert [type(s) for s in stages] == [DetectStage, TrackStage, PoseStage, AnnotateStage]
    assert built == []  # nothing is loaded until setup()
    for stage in stages:
        stage.setup()
    assert built == [("hog", {"device": "cpu"}), ("blazepose", {"device": "cpu", "backend": "auto"})]


@pytest.mark.parametrize(
    ("params", "detector", "pose"),
    [
        (
            PeopleParams(detector="blazepose", backend="openvino", device="GPU", det_score_thr=0.4),
            ("blazepose", {"device": "GPU", "backend": "openvino", "score_thr": 0.4}),
            ("blazepose", {"device": "GPU", "backend": "openvino"}),
        ),
        (
            PeopleParams(device="CPU", det_score_thr=0.3),
            ("hog", {"device": "CPU", "score_thr": 0.3}),
            ("blazepose", {"device": "CPU", "backend": "auto"}),
        ),
    ],
)
def test_built_in_models_get_the_device_backend_and_threshold(built, params, detector, pose):
    for stage in people_stages(params):
        stage.setup()
    assert built == [detector, pose]


@pytest.mark.parametrize("name", ["rtmdet", "yolox", "mmdet"])
@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_compiled_detector_gets_its_config_checkpoint_class_and_backend(built, name, backend):
    params = PeopleParams(
        detector=name, det_config="det.py", det_checkpoint="det.pth", det_cat_id=26, backend=backend, device="cuda:0"
    )
    for stage in people_stages(params):
        stage.setup()
    detector = {"device": "cuda:0", "config": "det.py", "checkpoint": "det.pth", "cat_id": 26, "backend": backend}
    if name != "mmdet":  # mmdet's API picks its own precision
        detector["precision"] = "auto"
    # BlazePose runs on OpenVINO: a backend meant for the detector leaves it on "auto"
    pose = {"device": "cuda:0", "backend": backend if backend == "openvino" else "auto"}
    assert built == [(name, detector), ("blazepose", pose)]


def test_an_mmdet_checkpoint_finds_its_own_person_class_by_default(built):
    for stage in people_stages(PeopleParams(detector="rtmdet", det_config="d.py", det_checkpoint="d.pth", pose=None)):
        stage.setup()
    assert built == [
        (
            "rtmdet",
            {
                "device": "cpu",
                "config": "d.py",
                "checkpoint": "d.pth",
                "cat_id": None,
                "backend": "auto",
                "precision": "auto",
            },
        )
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "rtmpose",
            {"device": "cpu", "config": "p.py", "checkpoint": "p.pth", "backend": "onnxruntime", "precision": "auto"},
        ),
        ("mmpose", {"device": "cpu", "config": "p.py", "checkpoint": "p.pth"}),  # mmpose picks its own runtime
    ],
)
def test_a_compiled_pose_model_gets_its_config_and_checkpoint(built, name, expected):
    params = PeopleParams(
        detector="rtmdet", det_config="d.py", det_checkpoint="d.pth", pose=name, pose_config="p.py",
        pose_checkpoint="p.pth", backend="onnxruntime",
    )  # fmt: skip
    stages = people_stages(params)
    of_type(stages, PoseStage).setup()
    assert built == [(name, expected)]


@pytest.mark.parametrize(
    ("params", "detector", "pose"),
    [
        (  # both compiled: both take it
            PeopleParams(detector="yolox", det_config="d.py", det_checkpoint="d.pth", pose="rtmpose",
                         pose_config="p.py", pose_checkpoint="p.pth", precision="bf16"),
            "bf16", "bf16",
        ),
        (  # a compiled detector with the built-in pose: the detector only
            PeopleParams(detector="rtmdet", det_config="d.py", det_checkpoint="d.pth", precision="fp32"),
            "fp32", None,
        ),
        (  # mmdet's API with a compiled pose model: the pose model only
            PeopleParams(detector="mmdet", det_config="d.py", det_checkpoint="d.pth", pose="rtmpose",
                         pose_config="p.py", pose_checkpoint="p.pth", precision="fp16"),
            None, "fp16",
        ),
    ],
)  # fmt: skip
def test_precision_reaches_the_compiled_engines_only(built, params, detector, pose):
    for stage in people_stages(params):
        stage.setup()
    (det_kwargs, pose_kwargs) = (kwargs for _, kwargs in built)
    assert det_kwargs.get("precision") == detector
    assert pose_kwargs.get("precision") == pose


def test_without_pose_its_config_flags_are_ignored(built):
    stages = people_stages(PeopleParams(pose=None, pose_config="p.py", pose_checkpoint="p.pth", draw=False))
    assert [type(s) for s in stages] == [DetectStage, TrackStage]
    assert [type(s) for s in people_stages(PeopleParams(track=False, draw=False))] == [DetectStage, PoseStage]


# --- how the stages behave with the flags -----------------------------------------------------


def test_people_are_detected_every_fifth_frame_by_default(built):
    detect = of_type(people_stages(PeopleParams()), DetectStage)
    detect.setup()
    assert [detect.process(frame(t)).meta[DETECTED] for t in range(11)] == [True, False, False, False, False] * 2 + [
        True
    ]
    detect = of_type(people_stages(PeopleParams(det_interval=1)), DetectStage)
    detect.setup()
    assert all(detect.process(frame(t)).meta[DETECTED] for t in range(3))


@pytest.mark.parametrize(("every_frame", "estimated"), [(False, 1), (True, 2)])
def test_keypoints_are_estimated_on_detection_frames_unless_every_frame_is_asked(every_frame, estimated):
    pose = of_type(people_stages(PeopleParams(pose_every_frame=every_frame)), PoseStage)
    pose.factory = Nobody  # the estimator is not what is tested here
    pose.setup()
    pose.process(person(0, 0.9, track_id=1, detected=True))
    pose.process(person(1, 0.9, track_id=1, detected=False))
    assert pose.metrics()["poses_estimated"] == estimated


@pytest.mark.parametrize(("thr", "starts"), [(None, False), (0.5, True), (0.55, True)])
def test_people_scoring_above_the_detection_threshold_get_tracks(thr, starts):
    """ByteTrack starts tracks at 0.7 by default; a lower --det-score-thr lowers that bar."""
    track = of_type(people_stages(PeopleParams(det_score_thr=thr)), TrackStage)
    track.setup()
    kinds = events_of(track.process(person(0, 0.55))) + events_of(track.process(person(1, 0.55)))
    assert kinds == (["track_started"] if starts else [])


@pytest.mark.parametrize(("lost_timeout_s", "lost_at"), [(None, 22), (1.0, 12)])
def test_a_track_ends_after_lost_timeout_s_without_detections(lost_timeout_s, lost_at):
    params = PeopleParams() if lost_timeout_s is None else PeopleParams(lost_timeout_s=lost_timeout_s)
    track = of_type(people_stages(params), TrackStage)
    track.setup()
    assert events_of(track.process(person(0, 0.9))) == ["track_started"]
    events_of(track.process(person(1, 0.9)))
    nobody = {}
    for t in range(2, lost_at + 1):
        packet = frame(t)
        packet.detections = Detections.empty()
        packet.meta[DETECTED] = True
        nobody[t] = events_of(track.process(packet))
    assert nobody.pop(lost_at) == ["track_lost"]  # about lost_timeout_s after the last detection, at 0.1 s
    assert all(kinds == [] for kinds in nobody.values())


# --- drawing ----------------------------------------------------------------------------------


def drawn(annotate: Stage, track_id: int = 5) -> np.ndarray:
    packet = person(7, 0.9, track_id=track_id)
    assert packet.detections is not None
    keypoints = np.zeros((1, 17, 3), np.float32)
    keypoints[0, :, 0] = np.linspace(420, 480, 17)
    keypoints[0, :, 1] = np.linspace(150, 380, 17)
    keypoints[0, :, 2] = 1.0
    packet.detections.keypoints = keypoints
    (out,) = as_outputs(annotate.process(packet))
    assert isinstance(out, FramePacket)
    return out.image


def test_skeletons_take_the_colour_of_their_track():
    for track_id in (5, 6):
        image = drawn(of_type(people_stages(PeopleParams()), AnnotateStage), track_id)
        color = PALETTE[track_id % len(PALETTE)].bgr
        at_keypoint = image[265, 450]  # keypoint 8 of 17, the middle one
        assert tuple(int(v) for v in at_keypoint) == tuple(color)


def red_text_heights(params: PeopleParams) -> list[int]:
    """How tall the red text of the box's tag and of the status line is, in pixels."""
    image = drawn(of_type(people_stages(params), AnnotateStage))
    red = (image[..., 0] == 0) & (image[..., 1] == 0) & (image[..., 2] == 255)
    tag, status = red[:120, 380:], red[H // 2 :, : W // 2]  # the tag above the box, the status line bottom left
    rows = [np.flatnonzero(region.any(axis=1)) for region in (tag, status)]
    assert all(len(r) for r in rows), "no red text"
    return [int(r[-1] - r[0]) for r in rows]


def test_tags_and_the_status_line_use_the_font_flags():
    scaled = red_text_heights(PeopleParams(font_color="red"))  # 480 lines: 0.67 of a 720-line frame's text
    large = red_text_heights(PeopleParams(font_color="red", font_scale=1.5))
    assert all(b > 2 * a for a, b in zip(scaled, large, strict=True)), (scaled, large)


def test_people_annotators_default_to_white_text():
    image = drawn(AnnotateStage(people_annotators()))
    white = (image == 255).all(axis=2)
    assert white[:120, 380:].any() and white[H // 2 :, : W // 2].any()


# --- flags that do not go together ------------------------------------------------------------


BUILT_IN = (
    "the built-in models (--detector hog, --pose blazepose) take no config or checkpoint; pass --detector rtmdet / "
    "yolox / mmdet with --det-config and --det-checkpoint, --pose rtmpose / mmpose with --pose-config and "
    "--pose-checkpoint"
)


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        (PeopleParams(pose_checkpoint="p.pth"), ModelNotAvailable, f"--pose-checkpoint: {BUILT_IN}"),
        (PeopleParams(pose_config="p.py"), ModelNotAvailable, f"--pose-config: {BUILT_IN}"),
        (
            PeopleParams(det_config="d.py", det_checkpoint="d.pth"),
            ModelNotAvailable,
            f"--det-config, --det-checkpoint: {BUILT_IN}",
        ),
        (
            PeopleParams(det_cat_id=2),
            DetectorConfigError,
            "--det-cat-id 2: the built-in detectors find people only (class id 0)",
        ),
        (PeopleParams(det_interval=0), DetectorConfigError, "--det-interval: expected >= 1 frame, got 0"),
        (
            PeopleParams(backend="onnxruntime"),
            DetectorConfigError,
            "--backend onnxruntime: the built-in models run on 'openvino' (or 'auto')",
        ),
        (
            PeopleParams(device="gpu"),
            DetectorConfigError,
            "--device gpu: the built-in models run on the CPU ('cpu'; BlazePose also on OpenVINO devices)",
        ),
        (
            PeopleParams(detector="blazepose", device="cuda:0"),
            DetectorConfigError,
            "--device cuda:0: the built-in models run on the CPU ('cpu'; BlazePose also on OpenVINO devices)",
        ),
        (
            PeopleParams(precision="bf16"),
            DetectorConfigError,
            "--precision bf16: only the compiled engines take a precision (--detector rtmdet / yolox, --pose "
            "rtmpose); --detector hog and --pose blazepose run as they are: leave --precision at auto",
        ),
        (
            PeopleParams(detector="mmdet", det_config="d.py", det_checkpoint="d.pth", pose=None, precision="fp32"),
            DetectorConfigError,
            "--precision fp32: only the compiled engines take a precision (--detector rtmdet / yolox, --pose "
            "rtmpose); --detector mmdet runs as it is: leave --precision at auto",
        ),
        (
            PeopleParams(detector="rtmdet", det_config="d.py", det_checkpoint="d.pth", precision="int8"),
            DetectorConfigError,
            "--precision int8: expected one of auto, fp32, bf16, fp16",
        ),
        (
            PeopleParams(detector="nope"),
            DetectorConfigError,
            "unknown person detector 'nope': expected one of blazepose, hog, mmdet, rtmdet, yolox",
        ),
        (
            PeopleParams(pose="nope"),
            DetectorConfigError,
            "unknown pose estimator 'nope': expected one of blazepose, mmpose, rtmpose",
        ),
    ],
)
def test_flags_that_do_not_go_together_are_refused_in_one_line(params, error, message):
    with pytest.raises(error) as raised:
        people_stages(params)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    "params",
    [
        PeopleParams(det_cat_id=0, det_interval=1, backend="openvino", device="CPU"),
        PeopleParams(detector="blazepose", device="GPU"),
        PeopleParams(pose=None),
        PeopleParams(detector="mmdet", det_config="d.py", det_checkpoint="d.pth", det_cat_id=3, backend="tensorrt"),
        PeopleParams(pose="mmpose", pose_config="p.py", pose_checkpoint="p.pth"),
        PeopleParams(detector="yolox", det_config="d.py", det_checkpoint="d.pth", device="cuda"),
    ],
)
def test_flags_that_go_together_are_accepted(params):
    assert people_stages(params)
