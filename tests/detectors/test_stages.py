"""Detect / track / pose stages: detection interval, boxes carried by optical flow between
detections, track events, pose only where needed and per-track state freed on track_lost."""

from __future__ import annotations

import time
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import pytest

from detectors.errors import DetectorConfigError
from detectors.stages import DETECTED, DetectStage, PoseStage, TrackStage, flow_shift
from detectors.tracking import PersonTracker
from stream.packet import Detections, FramePacket, SourceEvent
from stream.stage import as_outputs

H, W = 240, 320
PATCH = np.random.default_rng(3).integers(0, 255, (60, 30, 3), dtype=np.uint8)  # a textured "person"


def scene(t: int, speed: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """A frame with the patch at x = 40 + speed * t, and the patch's box."""
    image = np.full((H, W, 3), 90, np.uint8)
    x = round(40 + speed * t)
    image[100:160, x : x + 30] = PATCH
    return image, np.array([x, 100, x + 30, 160], np.float32)


def frame(t: int, image: np.ndarray, source_id: str = "cam") -> FramePacket:
    return FramePacket(image, source_id, t, t, Fraction(1, 10), time.monotonic_ns())


class BoxDetector:
    """A fake detector returning fixed boxes (the real ones are tested in test_models.py)."""

    def __init__(self, boxes: list[list[float]], labels: list[int] | None = None) -> None:
        self.boxes = np.array(boxes, np.float32).reshape(-1, 4)
        self.labels = np.zeros(len(self.boxes)) if labels is None else np.array(labels)
        self.calls = 0

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        self.calls += len(images)
        return [Detections(self.boxes, np.full(len(self.boxes), 0.9), self.labels) for _ in images]

    def close(self) -> None:
        pass


class CornerPose:
    """A fake estimator putting keypoint k at the box's top-left corner + (k, k), and counting people."""

    def __init__(self) -> None:
        self.people = 0

    def estimate(self, images: Sequence[np.ndarray], detections: Sequence[Detections]) -> list[Detections]:
        out = []
        for d in detections:
            self.people += len(d)
            kpts = np.zeros((len(d), 17, 3), np.float32)
            kpts[:, :, 0] = d.xyxy[:, None, 0] + np.arange(17)
            kpts[:, :, 1] = d.xyxy[:, None, 1] + np.arange(17)
            kpts[:, :, 2] = 0.9
            out.append(Detections(d.xyxy, d.scores, d.labels, d.track_ids, keypoints=kpts))
        return out

    def close(self) -> None:
        pass


def test_detect_stage_runs_every_nth_frame_per_source_and_keeps_the_class():
    detector = BoxDetector([[0, 0, 10, 20], [5, 5, 30, 40]], labels=[0, 2])
    stage = DetectStage(lambda: detector, interval=3)
    stage.setup()
    marks = []
    for t in range(7):
        for source in ("a", "b"):
            (packet,) = as_outputs(stage.process(frame(t, np.zeros((8, 8, 3), np.uint8), source)))
            marks.append(packet.meta[DETECTED])
            if packet.meta[DETECTED]:
                assert packet.detections is not None and packet.detections.labels.tolist() == [0]
            else:
                assert packet.detections is None
    assert marks == [True, True, False, False, False, False] * 2 + [True, True]
    assert detector.calls == 6 and stage.metrics() == {"detected_frames": 6, "people_detected": 6}
    stage.close()
    with pytest.raises(DetectorConfigError, match="det_interval"):
        DetectStage(lambda: detector, interval=0)


def test_flow_follows_a_moving_patch():
    from detectors.stages import _small_gray

    a, box_a = scene(0, speed=4)
    b, box_b = scene(1, speed=4)
    moved = flow_shift(_small_gray(a), _small_gray(b), box_a[None])
    np.testing.assert_allclose(moved[0], box_b, atol=1.5)
    assert flow_shift(_small_gray(a), _small_gray(b), np.zeros((0, 4), np.float32)).shape == (0, 4)


def test_track_stage_carries_boxes_between_detections_and_reports_tracks():
    detect = DetectStage(lambda: _PatchDetector(), interval=4)
    track = TrackStage(lambda: PersonTracker(lost_timeout_s=1.0))
    detect.setup()
    events: list[SourceEvent] = []
    errors = []
    for t in range(12):
        image, truth = scene(t)
        _PatchDetector.truth = truth
        outputs = as_outputs(track.process(*as_outputs(detect.process(frame(t, image)))))
        events += [o for o in outputs if isinstance(o, SourceEvent)]
        packet = outputs[-1]
        assert isinstance(packet, FramePacket)
        if t >= 4:  # confirmed on the second detection (frame 4)
            assert packet.detections is not None and packet.detections.track_ids is not None
            assert packet.detections.track_ids.tolist() == [events[0].data["track_id"]]
            errors.append(np.abs(packet.detections.xyxy[0] - truth).max())
    assert [e.kind for e in events] == ["track_started"]
    assert max(errors) < 4.0, errors  # flow keeps the box on the patch between detections
    ended = as_outputs(track.finish())
    assert [e.kind for e in ended] == ["track_lost"]
    assert set(ended[0].data) == {"track_id", "box", "frames_seen", "last_seen_s"}
    assert track.metrics() == {"tracks_started": 1, "tracks_lost": 1}


class _PatchDetector(BoxDetector):
    truth = np.zeros(4, np.float32)

    def __init__(self) -> None:
        super().__init__([])

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return [Detections(self.truth[None], np.array([0.9]), np.zeros(1)) for _ in images]


def people(track_ids: list[int], detected: bool, t: int = 0) -> FramePacket:
    packet = frame(t, np.zeros((H, W, 3), np.uint8))
    boxes = [[10 + 50 * i + t, 20, 40 + 50 * i + t, 100] for i in range(len(track_ids))]
    n = len(boxes)
    packet.detections = Detections(np.array(boxes).reshape(-1, 4), np.ones(n), np.zeros(n), np.array(track_ids))
    packet.meta[DETECTED] = detected
    return packet


def test_pose_runs_where_needed_and_keypoints_follow_the_box():
    estimator = CornerPose()
    stage = PoseStage(lambda: estimator)
    stage.setup()
    first = stage.process(people([1, 2], detected=True))
    assert estimator.people == 2
    carried = stage.process(people([1, 2, 3], detected=False, t=5))  # only track 3 is new
    assert estimator.people == 3
    assert isinstance(carried, FramePacket) and carried.detections is not None
    kpts = carried.detections.keypoints
    assert kpts is not None and kpts.shape == (3, 17, 3)
    np.testing.assert_allclose(kpts[0, 4, :2], carried.detections.xyxy[0, :2] + 4, atol=1e-4)  # moved with the box
    assert isinstance(first, FramePacket) and first.detections is not None and first.detections.keypoints is not None
    assert stage.cached_tracks == 3
    stage.on_event(SourceEvent("cam", "track_lost", "gone", 0.0, {"track_id": 2, "box": [0, 0, 1, 1]}))
    assert stage.cached_tracks == 2
    stage.process(people([1, 2], detected=False, t=6))  # track 2 again: its keypoints were freed
    assert estimator.people == 4
    stage.process(people([1, 2], detected=True, t=7))  # detection frames refresh everyone
    assert estimator.people == 6
    empty = stage.process(people([], detected=True))
    assert isinstance(empty, FramePacket) and empty.detections is not None
    assert empty.detections.keypoints is not None and empty.detections.keypoints.shape == (0, 17, 3)
    stage.close()
    assert stage.cached_tracks == 0


def test_sources_are_tracked_apart_and_their_number_is_bounded():
    track = TrackStage(PersonTracker, max_sources=2)
    track.setup()

    def step(source: str, t: int) -> list:
        image, box = scene(t)
        packet = frame(t, image, source)
        packet.detections = Detections(box[None], np.array([0.9]), np.zeros(1))
        packet.meta[DETECTED] = True
        outputs = as_outputs(track.process(packet))
        out = outputs[-1]
        assert isinstance(out, FramePacket) and out.detections is not None and out.detections.track_ids is not None
        assert len(out.detections) == 1
        return [o for o in outputs if isinstance(o, SourceEvent)]

    for t in range(3):
        for source in ("a", "b"):
            events = step(source, t)
            assert [e.kind for e in events] == (["track_started"] if t == 0 else [])
    events = step("c", 0)  # a third source: "a", the least recently seen, is forgotten
    assert sorted((e.source_id, e.kind) for e in events) == [("a", "track_lost"), ("c", "track_started")]
    assert list(track._sources) == ["b", "c"]
    assert sorted(e.source_id for e in as_outputs(track.finish())) == ["b", "c"]
