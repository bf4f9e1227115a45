"""People-stage behaviour that mutation testing found unchecked (docs/mutation.md).

What a user of the detect / track / pose stages sees: which frames are detected and which
class is kept, one-line errors when a stage is used before ``setup()`` or after ``close()``,
the ids, boxes and events of the tracks (with their messages), boxes carried between
detections by the optical flow of the person's torso and kept inside the frame, how many
sources and tracks are remembered, and keypoints that follow their box where no pose was
estimated.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import pytest

from detectors.errors import DetectorConfigError
from detectors.stages import DETECTED, DetectStage, PoseStage, TrackStage, _small_gray, flow_shift
from detectors.tracking import PersonTracker
from stream.packet import Detections, FramePacket, SourceEvent
from stream.stage import as_outputs

pytestmark = pytest.mark.timeout(30)

H, W = 240, 320


def frame(t: int, image: np.ndarray | None = None, source_id: str = "cam") -> FramePacket:
    """Frame ``t`` of ``source_id`` at 10 fps (a black ``H×W`` image unless given)."""
    if image is None:
        image = np.zeros((H, W, 3), np.uint8)
    return FramePacket(image, source_id, t, t, Fraction(1, 10), time.monotonic_ns())


def boxes(*rows: Sequence[float], labels: Sequence[int] | None = None) -> Detections:
    """Detections of the given boxes, scoring 0.9, label 0 unless given."""
    xyxy = np.array(rows, np.float32).reshape(-1, 4)
    return Detections(xyxy, np.full(len(xyxy), 0.9), np.zeros(len(xyxy)) if labels is None else np.array(labels))


class FixedDetector:
    """Finds the same people in every image; counts its calls and whether it was closed."""

    def __init__(self, found: Detections) -> None:
        self.found = found
        self.images = 0
        self.closed = 0

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        self.images += len(images)
        return [self.found for _ in images]

    def close(self) -> None:
        self.closed += 1


class OffsetPose:
    """Keypoint k at the box's top-left corner + (k, 2k), scoring k / 20; records whom it was asked about."""

    def __init__(self) -> None:
        self.asked: list[list[int]] = []  # the track ids (or -1) of each call
        self.closed = 0

    def estimate(self, images: Sequence[np.ndarray], detections: Sequence[Detections]) -> list[Detections]:
        assert len(images) == len(detections) and all(image.shape == (H, W, 3) for image in images)
        out = []
        for d in detections:
            self.asked.append([-1] * len(d) if d.track_ids is None else d.track_ids.tolist())
            kpts = np.zeros((len(d), 17, 3), np.float32)
            kpts[:, :, 0] = d.xyxy[:, None, 0] + np.arange(17)
            kpts[:, :, 1] = d.xyxy[:, None, 1] + 2 * np.arange(17)
            kpts[:, :, 2] = np.arange(17) / 20
            out.append(Detections(d.xyxy, d.scores, d.labels, d.track_ids, keypoints=kpts))
        return out

    def close(self) -> None:
        self.closed += 1


def expected_keypoints(box: Sequence[float]) -> np.ndarray:
    """What :class:`OffsetPose` gives for ``box``, as the pose stage should carry it."""
    kpts = np.zeros((17, 3), np.float32)
    kpts[:, 0] = box[0] + np.arange(17)
    kpts[:, 1] = box[1] + 2 * np.arange(17)
    kpts[:, 2] = np.arange(17) / 20
    return kpts


def only(outputs: object) -> FramePacket:
    """The one packet of a stage's outputs."""
    (packet,) = as_outputs(outputs)  # type: ignore[arg-type]
    assert isinstance(packet, FramePacket)
    return packet


def split(outputs: object) -> tuple[list[SourceEvent], FramePacket]:
    """A track stage's outputs: its events, then the frame."""
    listed = as_outputs(outputs)  # type: ignore[arg-type]
    packet = listed[-1]
    assert isinstance(packet, FramePacket)
    events = [o for o in listed[:-1] if isinstance(o, SourceEvent)]
    assert len(events) == len(listed) - 1
    return events, packet


def people_of(packet: FramePacket) -> Detections:
    assert packet.detections is not None
    return packet.detections


def ids(packet: FramePacket) -> list[int]:
    track_ids = people_of(packet).track_ids
    assert track_ids is not None
    return track_ids.tolist()


# --- DetectStage ------------------------------------------------------------------------------


def test_detect_stage_defaults_detect_every_frame_and_keep_people():
    detector = FixedDetector(boxes([0, 0, 10, 20], [5, 5, 30, 40], [1, 1, 9, 9], labels=[0, 1, 0]))
    stage = DetectStage(lambda: detector)
    assert stage.name == "detector"
    stage.setup()
    for t in range(3):
        packet = only(stage.process(frame(t)))
        assert packet.meta["detected"] is True  # the key other stages and users read
        assert people_of(packet).xyxy.tolist() == [[0, 0, 10, 20], [1, 1, 9, 9]]
    assert detector.images == 3
    assert stage.metrics() == {"detected_frames": 3, "people_detected": 6}


def test_detect_stage_keeps_the_class_it_is_given():
    detector = FixedDetector(boxes([0, 0, 10, 20], [5, 5, 30, 40], [1, 1, 9, 9], labels=[0, 2, 1]))
    stage = DetectStage(lambda: detector, cat_id=2)
    stage.setup()
    packet = only(stage.process(frame(0)))
    assert people_of(packet).xyxy.tolist() == [[5, 5, 30, 40]] and people_of(packet).labels.tolist() == [2]
    assert stage.metrics() == {"detected_frames": 1, "people_detected": 1}


def test_detect_stage_interval_counts_frames_of_each_source_from_its_first():
    stage = DetectStage(lambda: FixedDetector(boxes([0, 0, 10, 20])), interval=2)
    stage.setup()
    marks = [only(stage.process(frame(t, source_id=s))).meta[DETECTED] for t, s in enumerate("aabab")]
    assert marks == [True, False, True, True, False]  # "b" starts detected at its own first frame


def test_detect_stage_interval_of_one_is_accepted_and_below_is_refused_in_one_line():
    DetectStage(lambda: FixedDetector(boxes()), interval=1)
    with pytest.raises(DetectorConfigError) as raised:
        DetectStage(lambda: FixedDetector(boxes()), interval=0)
    assert str(raised.value) == "det_interval: expected >= 1 frame, got 0"


def test_detect_stage_used_before_setup_or_after_close_says_so():
    detector = FixedDetector(boxes([0, 0, 10, 20]))
    built = []
    stage = DetectStage(lambda: built.append(1) or detector, name="people")
    assert built == []  # building a pipeline loads nothing
    with pytest.raises(DetectorConfigError) as raised:
        stage.process(frame(0))
    assert str(raised.value) == "people: process() before setup()"
    stage.setup()
    assert built == [1]
    only(stage.process(frame(0)))
    stage.close()
    stage.close()  # a second close does not close the detector again
    assert detector.closed == 1
    with pytest.raises(DetectorConfigError, match=r"^people: process\(\) before setup\(\)$"):
        stage.process(frame(1))


def test_detect_stage_close_before_setup_does_nothing():
    stage = DetectStage(lambda: FixedDetector(boxes()))
    stage.close()
    assert stage.metrics() == {"detected_frames": 0, "people_detected": 0}


# --- TrackStage -------------------------------------------------------------------------------

TEXTURE = np.random.default_rng(7).integers(0, 255, (H, W, 3), dtype=np.uint8)  # a static, textured scene


def detected(t: int, found: Detections, source_id: str = "cam", image: np.ndarray | None = None) -> FramePacket:
    """Frame ``t`` as the detect stage leaves it on a detection frame."""
    packet = frame(t, TEXTURE if image is None else image, source_id)
    packet.detections = found
    packet.meta[DETECTED] = True
    return packet


def between(t: int, source_id: str = "cam", image: np.ndarray | None = None) -> FramePacket:
    """Frame ``t`` as the detect stage leaves it between detections."""
    packet = frame(t, TEXTURE if image is None else image, source_id)
    packet.meta[DETECTED] = False
    return packet


def test_track_stage_builds_a_tracker_at_setup_so_bad_settings_fail_at_start_up():
    built = []

    def tracker() -> PersonTracker:
        built.append(1)
        return PersonTracker(lost_timeout_s=0.0)  # refused

    stage = TrackStage(tracker)
    assert stage.name == "tracker" and built == []
    with pytest.raises(DetectorConfigError, match="lost_timeout_s"):
        stage.setup()
    assert built == [1]


def test_track_events_name_the_track_and_how_often_it_was_detected():
    stage = TrackStage()
    stage.setup()
    before = time.time()
    started, packet = split(stage.process(detected(0, boxes([40, 50, 90, 200]))))
    (track_id,) = ids(packet)
    assert [(e.source_id, e.kind, e.message) for e in started] == [
        ("cam", "track_started", f"track {track_id} started")
    ]
    assert started[0].data == {"track_id": track_id, "box": [40.0, 50.0, 90.0, 200.0]}
    for t in (1, 2):
        assert split(stage.process(detected(t, boxes([40, 50, 90, 200]))))[0] == []
    assert split(stage.process(between(3)))[0] == []  # carried frames are not detections
    lost = as_outputs(stage.finish())
    after = time.time()
    assert [(e.source_id, e.kind, e.message) for e in lost] == [
        ("cam", "track_lost", f"track {track_id} lost after 3 detections")
    ]
    assert all(isinstance(e, SourceEvent) and before <= e.wall_time <= after for e in [*started, *lost])
    assert stage.metrics() == {"tracks_started": 1, "tracks_lost": 1}


def test_finish_forgets_every_source():
    stage = TrackStage()
    stage.setup()
    split(stage.process(detected(0, boxes([40, 50, 90, 200]))))
    assert len(as_outputs(stage.finish())) == 1
    assert as_outputs(stage.finish()) == []  # nothing left to end
    started, _ = split(stage.process(detected(10, boxes([40, 50, 90, 200]))))  # a new run starts afresh
    assert [e.kind for e in started] == ["track_started"]


def test_frames_before_the_first_detection_have_nobody_and_no_none():
    stage = TrackStage()
    stage.setup()
    events, packet = split(stage.process(between(0)))
    assert events == [] and packet.detections is not None and len(packet.detections) == 0


def test_detections_without_a_detected_mark_are_tracked():
    """A graph without the detect stage (detections from elsewhere) gets track ids too."""
    stage = TrackStage()
    stage.setup()
    packet = frame(0, TEXTURE)
    packet.detections = boxes([40, 50, 90, 200])
    events, out = split(stage.process(packet))
    assert [e.kind for e in events] == ["track_started"] and len(ids(out)) == 1


def test_between_detections_the_last_people_are_carried_whatever_the_frame_holds():
    stage = TrackStage()
    stage.setup()
    _, first = split(stage.process(detected(0, boxes([40, 50, 90, 200]))))
    marked = between(1)
    marked.detections = boxes([200, 50, 250, 200], [100, 20, 150, 170])  # not marked detected: ignored
    events, carried = split(stage.process(marked))
    assert events == [] and ids(carried) == ids(first)
    np.testing.assert_allclose(people_of(carried).xyxy, [[40, 50, 90, 200]], atol=0.5)
    unmarked = detected(2, boxes())
    unmarked.detections = None  # marked detected, but nothing came: carried too
    events, carried = split(stage.process(unmarked))
    assert events == [] and ids(carried) == ids(first)
    np.testing.assert_allclose(people_of(carried).xyxy, [[40, 50, 90, 200]], atol=0.5)


def test_detections_on_a_frame_marked_not_detected_are_not_shown_to_the_tracker():
    stage = TrackStage()
    stage.setup()
    a, b = [40, 50, 90, 200], [200, 40, 250, 190]
    split(stage.process(detected(0, boxes(a))))
    marked = between(1)
    marked.detections = boxes(a, b)
    split(stage.process(marked))
    # b is seen for the first time now: a new track needs two detections (min_hits) to start
    events, packet = split(stage.process(detected(2, boxes(a, b))))
    assert events == [] and len(ids(packet)) == 1
    events, packet = split(stage.process(detected(3, boxes(a, b))))
    assert [e.kind for e in events] == ["track_started"] and len(ids(packet)) == 2


def test_carried_boxes_are_kept_inside_the_frame():
    stage = TrackStage()
    stage.setup()
    inside, across = [60, 40, 110, 200], [-12, -7, W + 9, H + 5]
    _, first = split(stage.process(detected(0, boxes(inside, across))))
    np.testing.assert_allclose(people_of(first).xyxy, [inside, across])  # as detected
    _, carried = split(stage.process(between(1)))  # the scene did not move
    assert ids(carried) == ids(first)
    np.testing.assert_allclose(people_of(carried).xyxy, [inside, [0, 0, W, H]], atol=0.5)
    np.testing.assert_array_equal(people_of(carried).scores, people_of(first).scores)
    np.testing.assert_array_equal(people_of(carried).labels, [0, 0])


def test_a_new_frame_size_keeps_the_carried_boxes_where_they_were():
    stage = TrackStage()
    stage.setup()
    _, first = split(stage.process(detected(0, boxes([40, 50, 90, 200]))))
    events, carried = split(stage.process(between(1, image=TEXTURE[: H // 2, : W // 2].copy())))
    assert events == [] and ids(carried) == ids(first)
    np.testing.assert_array_equal(people_of(carried).xyxy, people_of(first).xyxy)


def test_the_least_recently_seen_source_is_forgotten():
    stage = TrackStage(max_sources=2)
    stage.setup()
    for t, source in enumerate("aba"):  # "a" is seen again after "b"
        split(stage.process(detected(t, boxes([40, 50, 90, 200]), source)))
    events, _ = split(stage.process(detected(3, boxes([40, 50, 90, 200]), "c")))
    assert sorted((e.source_id, e.kind) for e in events) == [("b", "track_lost"), ("c", "track_started")]
    assert sorted(e.source_id for e in as_outputs(stage.finish())) == ["a", "c"]
    assert stage.metrics() == {"tracks_started": 3, "tracks_lost": 3}


def test_sixty_four_sources_are_tracked_by_default():
    stage = TrackStage()
    stage.setup()
    for source in range(64):
        events, _ = split(stage.process(detected(0, boxes([40, 50, 90, 200]), f"cam{source}")))
        assert [e.kind for e in events] == ["track_started"]
    events, _ = split(stage.process(detected(0, boxes([40, 50, 90, 200]), "cam64")))
    assert sorted((e.source_id, e.kind) for e in events) == [("cam0", "track_lost"), ("cam64", "track_started")]
    assert stage.metrics() == {"tracks_started": 65, "tracks_lost": 1}


# --- PoseStage --------------------------------------------------------------------------------


def tracked(t: int, rows: dict[int, Sequence[float]], *, detected_frame: bool | None, source_id: str = "cam"):
    """Frame ``t`` with the tracked people ``{track_id: box}``; ``detected_frame=None`` leaves the mark out."""
    packet = frame(t, source_id=source_id)
    found = boxes(*rows.values())
    packet.detections = Detections(found.xyxy, found.scores, found.labels, np.array(list(rows), np.int64))
    if detected_frame is not None:
        packet.meta[DETECTED] = detected_frame
    return packet


def keypoints_of(packet: FramePacket) -> np.ndarray:
    kpts = people_of(packet).keypoints
    assert kpts is not None
    return kpts


def pose_stage(**kwargs) -> tuple[PoseStage, OffsetPose]:
    estimator = OffsetPose()
    stage = PoseStage(lambda: estimator, **kwargs)
    stage.setup()
    return stage, estimator


def test_pose_stage_used_before_setup_or_after_close_says_so():
    estimator = OffsetPose()
    stage = PoseStage(lambda: estimator)
    assert stage.name == "pose"
    with pytest.raises(DetectorConfigError) as raised:
        stage.process(tracked(0, {1: [0, 0, 10, 20]}, detected_frame=True))
    assert str(raised.value) == "pose: process() before setup()"
    stage.setup()
    only(stage.process(tracked(0, {1: [0, 0, 10, 20]}, detected_frame=True)))
    stage.close()
    stage.close()
    assert estimator.closed == 1
    with pytest.raises(DetectorConfigError, match=r"^pose: process\(\) before setup\(\)$"):
        stage.process(tracked(1, {1: [0, 0, 10, 20]}, detected_frame=True))
    PoseStage(lambda: estimator).close()  # closing a stage never set up closes nothing
    assert estimator.closed == 1


def test_frames_without_people_get_an_empty_keypoint_array_and_keep_their_fields():
    stage, estimator = pose_stage()
    packet = frame(0)
    packet.detections = Detections(
        np.zeros((0, 4)), np.zeros(0), np.zeros(0), np.zeros(0, np.int64), {"extra": np.zeros(0)}
    )
    out = people_of(only(stage.process(packet)))
    assert out.keypoints is not None and out.keypoints.shape == (0, 17, 3) and out.keypoints.dtype == np.float32
    assert out.track_ids is not None and list(out.data) == ["extra"]
    nothing = only(stage.process(frame(1)))
    assert nothing.detections is None  # no detector ran: nothing is made up
    assert estimator.asked == []
    assert stage.metrics() == {"poses_estimated": 0, "poses_carried": 0}


def test_estimated_keypoints_keep_the_people_their_fields_and_order():
    stage, estimator = pose_stage()
    packet = tracked(0, {7: [10, 20, 50, 120], 3: [100, 30, 160, 200]}, detected_frame=True)
    people_of(packet).data["color"] = np.array([5, 6])
    out = people_of(only(stage.process(packet)))
    assert estimator.asked == [[7, 3]]
    np.testing.assert_allclose(out.keypoints, [expected_keypoints([10, 20]), expected_keypoints([100, 30])])
    assert out.track_ids is not None and out.track_ids.tolist() == [7, 3]
    assert out.data["color"].tolist() == [5, 6] and out.scores.tolist() == pytest.approx([0.9, 0.9])


def test_carried_keypoints_follow_their_box_when_it_moves_and_resizes():
    stage, estimator = pose_stage()
    only(stage.process(tracked(0, {1: [10, 20, 50, 120], 2: [100, 30, 160, 200]}, detected_frame=True)))
    # between detections: person 1 moved and doubled in size, person 2 shrank to a third
    out = only(
        stage.process(tracked(1, {1: [30, 40, 110, 240], 2: [100, 30, 120, 30 + 170 / 3]}, detected_frame=False))
    )
    assert estimator.asked == [[1, 2]]  # nobody new: nothing estimated
    kpts = keypoints_of(out)
    first = expected_keypoints([10, 20])
    np.testing.assert_allclose(kpts[0, :, 0], 30 + 2 * (first[:, 0] - 10), atol=1e-4)
    np.testing.assert_allclose(kpts[0, :, 1], 40 + 2 * (first[:, 1] - 20), atol=1e-4)
    np.testing.assert_allclose(kpts[0, :, 2], first[:, 2])  # the scores stay
    second = expected_keypoints([100, 30])
    np.testing.assert_allclose(kpts[1, :, 0], 100 + (second[:, 0] - 100) / 3, atol=1e-4)
    np.testing.assert_allclose(kpts[1, :, 1], 30 + (second[:, 1] - 30) / 3, atol=1e-4)
    assert stage.metrics() == {"poses_estimated": 2, "poses_carried": 2}


def test_a_box_of_no_width_carries_keypoints_without_dividing_by_zero():
    stage, _ = pose_stage()
    only(stage.process(tracked(0, {1: [10, 20, 10.5, 20.5]}, detected_frame=True)))  # under a pixel: 1 px
    out = only(stage.process(tracked(1, {1: [12, 22, 13.5, 23.5]}, detected_frame=False)))
    first = expected_keypoints([10, 20])
    np.testing.assert_allclose(keypoints_of(out)[0, :, 0], 12 + 1.5 * (first[:, 0] - 10), atol=1e-4)
    np.testing.assert_allclose(keypoints_of(out)[0, :, 1], 22 + 1.5 * (first[:, 1] - 20), atol=1e-4)
    flat = only(stage.process(tracked(2, {1: [12, 22, 12, 22]}, detected_frame=False)))
    assert np.isfinite(keypoints_of(flat)).all()
    np.testing.assert_allclose(keypoints_of(flat)[0, :, 0], 12 + (first[:, 0] - 10), atol=1e-4)
    assert stage.metrics() == {"poses_estimated": 1, "poses_carried": 2}


@pytest.mark.parametrize(
    ("kwargs", "mark", "asked"),
    [
        ({"every_frame": True}, False, [[1, 2], [1, 2]]),  # skeleton recognition: every frame
        ({}, None, [[1, 2], [1, 2]]),  # no detect stage upstream: every frame is a detection frame
        ({}, True, [[1, 2], [1, 2]]),
        ({}, False, [[1, 2]]),
    ],
)
def test_who_is_estimated_on_the_second_frame(kwargs, mark, asked):
    stage, estimator = pose_stage(**kwargs)
    only(stage.process(tracked(0, {1: [10, 20, 50, 120], 2: [100, 30, 160, 200]}, detected_frame=True)))
    out = only(stage.process(tracked(1, {1: [11, 20, 51, 120], 2: [100, 31, 160, 201]}, detected_frame=mark)))
    assert estimator.asked == asked
    np.testing.assert_allclose(
        keypoints_of(out), [expected_keypoints([11, 20]), expected_keypoints([100, 31])], atol=1e-4
    )
    assert stage.metrics() == {"poses_estimated": 2 * len(asked), "poses_carried": 4 - 2 * len(asked)}


def test_people_without_track_ids_are_estimated_on_every_frame():
    stage, estimator = pose_stage()
    for t in range(2):
        packet = frame(t)
        packet.detections = boxes([10 + t, 20, 50 + t, 120])
        packet.meta[DETECTED] = False
        out = people_of(only(stage.process(packet)))
        assert out.track_ids is None
        np.testing.assert_allclose(out.keypoints, [expected_keypoints([10 + t, 20])])
    assert estimator.asked == [[-1], [-1]] and stage.cached_tracks == 0


def test_only_people_without_keypoints_are_estimated_and_sources_are_apart():
    stage, estimator = pose_stage()
    only(stage.process(tracked(0, {1: [10, 20, 50, 120]}, detected_frame=True, source_id="a")))
    out = only(
        stage.process(tracked(1, {1: [12, 20, 52, 120], 4: [200, 30, 260, 200]}, detected_frame=False, source_id="a"))
    )
    only(stage.process(tracked(1, {1: [12, 20, 52, 120]}, detected_frame=False, source_id="b")))  # another camera's 1
    assert estimator.asked == [[1], [4], [1]]
    np.testing.assert_allclose(keypoints_of(out)[1], expected_keypoints([200, 30]), atol=1e-4)
    assert stage.cached_tracks == 3


def test_track_lost_frees_that_track_of_that_source_only():
    stage, estimator = pose_stage()
    for source in "ab":
        only(
            stage.process(
                tracked(0, {1: [10, 20, 50, 120], 2: [100, 30, 160, 200]}, detected_frame=True, source_id=source)
            )
        )
    lost = SourceEvent("a", "track_lost", "track 2 lost", 0.0, {"track_id": 2, "box": [0, 0, 1, 1]})
    assert stage.on_event(lost) is lost  # passed on
    assert stage.cached_tracks == 3
    other = SourceEvent("a", "track_started", "track 1 started", 0.0, {"track_id": 1, "box": [0, 0, 1, 1]})
    assert stage.on_event(other) is other and stage.cached_tracks == 3
    bare = SourceEvent("a", "track_lost", "gone", 0.0)  # no data: nothing to free, no error
    assert stage.on_event(bare) is bare and stage.cached_tracks == 3
    estimator.asked.clear()
    only(stage.process(tracked(1, {1: [10, 20, 50, 120], 2: [100, 30, 160, 200]}, detected_frame=False, source_id="a")))
    only(stage.process(tracked(1, {1: [10, 20, 50, 120], 2: [100, 30, 160, 200]}, detected_frame=False, source_id="b")))
    assert estimator.asked == [[2]]


def test_the_keypoints_of_at_most_4096_tracks_are_remembered_oldest_forgotten_first():
    stage, estimator = pose_stage()
    many = {i: [i % 300, 10, i % 300 + 20, 60] for i in range(4096)}
    only(stage.process(tracked(0, many, detected_frame=True)))
    assert stage.cached_tracks == 4096
    only(stage.process(tracked(1, {0: [0, 10, 20, 60]}, detected_frame=True)))  # track 0 refreshed: newest now
    only(stage.process(tracked(2, {9000: [5, 5, 25, 55]}, detected_frame=True)))  # one more: track 1 is forgotten
    assert stage.cached_tracks == 4096
    estimator.asked.clear()
    only(stage.process(tracked(3, {0: [0, 10, 20, 60], 1: [1, 10, 21, 60], 2: [2, 10, 22, 60]}, detected_frame=False)))
    assert estimator.asked == [[1]]


# --- flow_shift: boxes carried between detections ---------------------------------------------

_rng = np.random.default_rng(5)
_BACKGROUND = np.ascontiguousarray(
    np.repeat(_rng.integers(0, 255, (H // 4, W // 4, 3), dtype=np.uint8), 4, 0).repeat(4, 1)
)
_TORSO = np.repeat(_rng.integers(0, 255, (50, 50, 3), dtype=np.uint8), 4, 0).repeat(4, 1)
_LEGS = np.repeat(_rng.integers(0, 255, (50, 50, 3), dtype=np.uint8), 4, 0).repeat(4, 1)
PERSON = (100, 20, 220, 220)  # the detector's box: the person and a margin of background on each side


def walker(t: int, speed: int, box: tuple[int, int, int, int] = PERSON) -> np.ndarray:
    """A person in ``box`` whose head-to-hips part (top 70 % of the box, its middle 60 % wide)
    moves ``speed`` pixels right per frame, while the legs below stay put and the box's margins
    show the static background."""
    image = _BACKGROUND.copy()
    x1, y1, x2, y2 = box
    left, width = x1 + (x2 - x1) // 5, (x2 - x1) * 3 // 5
    torso = (y2 - y1) * 7 // 10
    image[y1 : y1 + torso, left + speed * t : left + speed * t + width] = _TORSO[:torso, :width]
    image[y1 + torso : y2, left : left + width] = _LEGS[: y2 - y1 - torso, :width]
    return image


@pytest.mark.parametrize(("speed", "box"), [(6, PERSON), (14, PERSON), (6, (130, 110, 230, 235))])
def test_a_box_follows_the_torso_not_the_legs_nor_the_background_around_it(speed, box):
    before, after = walker(0, speed, box), walker(1, speed, box)
    moved = flow_shift(_small_gray(before), _small_gray(after), np.array([box], np.float32))
    np.testing.assert_allclose(moved[0], np.add(box, (speed, 0, speed, 0)), atol=1.0)


def test_a_box_without_anything_to_follow_keeps_its_place_and_the_others_still_move():
    flat = np.full((H, W, 3), 128, np.uint8)
    before, after = walker(0, 6), walker(1, 6)
    before[150:230, 10:90] = after[150:230, 10:90] = flat[:80, :80]  # a featureless patch
    outside = [-300.0, -300.0, -200.0, -200.0]  # a box far out of the frame
    people = np.array([outside, PERSON, [10, 150, 90, 230]], np.float32)
    moved = flow_shift(_small_gray(before), _small_gray(after), people)
    np.testing.assert_array_equal(moved[0], outside)
    np.testing.assert_allclose(moved[1], np.add(PERSON, (6, 0, 6, 0)), atol=1.0)
    np.testing.assert_array_equal(moved[2], [10, 150, 90, 230])


def test_the_track_stage_carries_a_walking_person_between_detections():
    stage = TrackStage()
    stage.setup()
    _, first = split(stage.process(detected(0, boxes(PERSON), image=walker(0, 5))))
    for t in range(1, 4):
        _, carried = split(stage.process(between(t, image=walker(t, 5))))
        assert ids(carried) == ids(first)
        np.testing.assert_allclose(people_of(carried).xyxy[0], np.add(PERSON, (5 * t, 0, 5 * t, 0)), atol=1.5)
