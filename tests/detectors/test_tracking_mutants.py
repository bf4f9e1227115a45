"""Tracker behaviour that mutation testing found unchecked (docs/mutation.md).

What a user of :class:`PersonTracker` sees: the ids, boxes and scores of each frame's people
(detected first, then coasting ones at their predicted boxes), when ``track_started`` /
``track_lost`` come and what their ``data`` says, the exact bounds of ``coast_s`` and
``lost_timeout_s``, timestamps that do not move forward, the end of a stream, and one-line
errors for settings out of range.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from detectors.base import PERSON_LABEL
from detectors.errors import DetectorConfigError, LibraryMissing
from detectors.tracking import PersonTracker, TrackChange
from stream.packet import Detections

pytestmark = pytest.mark.timeout(30)

Box = tuple[float, float, float, float]
A: Box = (10.0, 10.0, 50.0, 110.0)
B: Box = (150.0, 10.0, 190.0, 110.0)
C: Box = (300.0, 10.0, 340.0, 110.0)
NOBODY = Detections.empty()


def people(*rows: tuple[Box, float]) -> Detections:
    """Detections of the given ``(box, score)`` rows (label 0, any ``track_ids`` left out)."""
    boxes = np.array([box for box, _ in rows], np.float64).reshape(-1, 4)
    return Detections(boxes, np.array([score for _, score in rows], np.float64), np.zeros(len(rows)))


def kinds(changes: list[TrackChange]) -> list[str]:
    return [change.kind for change in changes]


def ids(tracked: Detections) -> list[int]:
    assert tracked.track_ids is not None
    return tracked.track_ids.tolist()


def seen_twice(tracker: PersonTracker, box: Box = A, score: float = 0.9) -> int:
    """A person at ``box`` in the frames at 0.0 s and 0.1 s; returns their track id."""
    tracker.update(people((box, score)), 0.0)
    tracked, _ = tracker.update(people((box, score)), 0.1)
    (track_id,) = ids(tracked)
    return track_id


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"activation_thr": 0.0},
        {"activation_thr": 1.0},
        {"high_thr": 0.0},
        {"high_thr": 1.0},
        {"iou_thr": 1.0},
        {"min_hits": 2},
        {"coast_s": 0.0},
        {"lost_timeout_s": 1e-3},
    ],
)
def test_settings_at_their_bounds_are_accepted(kwargs):
    tracker = PersonTracker(**kwargs)
    tracked, changes = tracker.update(people((A, 1.0)), 0.0)
    assert len(tracked) == 1 and kinds(changes) == ["track_started"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"activation_thr": -0.1},
            "tracker thresholds: expected values in 0..1, got activation -0.1, high 0.7, iou 0.1",
        ),
        ({"activation_thr": 1.1}, "tracker thresholds: expected values in 0..1, got activation 1.1, high 0.7, iou 0.1"),
        ({"high_thr": -0.1}, "tracker thresholds: expected values in 0..1, got activation 0.6, high -0.1, iou 0.1"),
        ({"high_thr": 1.5}, "tracker thresholds: expected values in 0..1, got activation 0.6, high 1.5, iou 0.1"),
        ({"iou_thr": 0.0}, "tracker thresholds: expected values in 0..1, got activation 0.6, high 0.7, iou 0.0"),
        ({"iou_thr": 1.01}, "tracker thresholds: expected values in 0..1, got activation 0.6, high 0.7, iou 1.01"),
        (
            {"min_hits": 1},
            "min_hits: expected >= 2 (a track is confirmed on its second detection at the earliest), got 1",
        ),
        ({"lost_timeout_s": 0.0}, "lost_timeout_s / coast_s: expected > 0 / >= 0, got 0.0 / 1.0"),
        ({"lost_timeout_s": -1.0}, "lost_timeout_s / coast_s: expected > 0 / >= 0, got -1.0 / 1.0"),
        ({"coast_s": -0.5}, "lost_timeout_s / coast_s: expected > 0 / >= 0, got 2.0 / -0.5"),
    ],
)
def test_settings_out_of_range_say_which_and_what(kwargs, message):
    with pytest.raises(DetectorConfigError, match=f"^{re.escape(message)}$"):
        PersonTracker(**kwargs)


# --- what each frame reports ------------------------------------------------------------------


def test_detected_people_keep_the_detectors_box_and_score_and_are_people():
    tracker = PersonTracker()
    tracked, changes = tracker.update(people((A, 0.93), (C, 0.81)), 0.0)
    assert ids(tracked) == [0, 1]  # ids count from 0, as the events and frame lines show them
    np.testing.assert_allclose(tracked.xyxy, [A, C])
    np.testing.assert_allclose(tracked.scores, [0.93, 0.81], rtol=1e-6)
    assert tracked.labels.tolist() == [PERSON_LABEL, PERSON_LABEL]
    assert [change.data() for change in changes] == [
        {"track_id": 0, "box": list(A)},
        {"track_id": 1, "box": list(C)},
    ]
    moved = (12.0, 11.0, 52.0, 111.0)
    tracked, changes = tracker.update(people((moved, 0.75)), 0.1)
    assert ids(tracked) == [0, 1] and changes == []
    np.testing.assert_allclose(tracked.xyxy[0], moved)  # the detection's box, not the filter's
    np.testing.assert_allclose(tracked.scores, [0.75, 0.81], rtol=1e-6)  # a coasting one keeps its last score


def test_detected_people_come_first_then_coasting_ones_by_id():
    tracker = PersonTracker()
    tracker.update(people((C, 0.9), (A, 0.8), (B, 0.95)), 0.0)  # ids 0, 1, 2 in detection order
    tracked, _ = tracker.update(people((B, 0.7)), 0.1)
    assert ids(tracked) == [2, 0, 1]
    np.testing.assert_allclose(tracked.xyxy, [B, C, A], atol=1e-3)
    np.testing.assert_allclose(tracked.scores, [0.7, 0.9, 0.8], rtol=1e-6)
    assert tracked.labels.tolist() == [PERSON_LABEL] * 3


def test_a_coasting_person_moves_on_at_their_predicted_box():
    tracker = PersonTracker(coast_s=1.0)
    for t in range(10):  # walks right 5 px a frame
        tracker.update(people(((10 + 5 * t, 10, 50 + 5 * t, 110), 0.9)), t / 10)
    xs = []
    for t in range(10, 13):
        tracked, _ = tracker.update(NOBODY, t / 10)
        assert ids(tracked) == [0]
        xs.append(float(tracked.xyxy[0, 0]))
    assert xs == pytest.approx([60.0, 65.0, 70.0], abs=1.0)


@pytest.mark.parametrize(("gap", "reported"), [(0.5, 1), (0.5078125, 0)])
def test_coasting_lasts_coast_s_exactly(gap, reported):
    tracker = PersonTracker(lost_timeout_s=1.0, coast_s=0.5)
    tracker.update(people((A, 0.9)), 0.0)
    tracker.update(people((A, 0.9)), 0.25)
    tracked, changes = tracker.update(NOBODY, 0.25 + gap)  # binary fractions: exact differences
    assert len(tracked) == reported and changes == []


def test_coast_zero_reports_detected_people_only():
    tracker = PersonTracker(coast_s=0.0)
    seen_twice(tracker)
    tracked, changes = tracker.update(NOBODY, 0.2)
    assert len(tracked) == 0 and changes == []
    tracked, changes = tracker.update(people((A, 0.9)), 0.3)
    assert ids(tracked) == [0] and changes == []  # the same person again, same id


def test_coasting_never_outlasts_the_track():
    tracker = PersonTracker(lost_timeout_s=0.5, coast_s=5.0)
    assert tracker.coast_s == 0.5
    seen_twice(tracker)
    tracked, changes = tracker.update(NOBODY, 0.6)
    assert len(tracked) == 1 and changes == []
    tracked, changes = tracker.update(NOBODY, 0.7)
    assert len(tracked) == 0 and kinds(changes) == ["track_lost"]


# --- track_started / track_lost ---------------------------------------------------------------


@pytest.mark.parametrize(("lost_timeout_s", "gap"), [(1.0, 1.0), (2.0, 2.0), (0.5, 0.5)])
def test_a_track_ends_right_after_lost_timeout_s(lost_timeout_s, gap):
    tracker = PersonTracker(lost_timeout_s=lost_timeout_s, coast_s=0.0)
    track_id = seen_twice(tracker)
    _, changes = tracker.update(NOBODY, 0.1 + gap)
    assert changes == []
    _, changes = tracker.update(NOBODY, 0.1 + gap + 0.02)
    assert kinds(changes) == ["track_lost"] and changes[0].data()["track_id"] == track_id
    assert tracker.states == {}


def test_track_lost_reports_the_last_detection():
    tracker = PersonTracker(lost_timeout_s=0.5, coast_s=0.2)
    for t in range(4):
        tracker.update(people(((10 + 2.5 * t, 10, 50.123 + 2.5 * t, 110), 0.9)), 0.25 * t)
    lost = []
    for t in range(4, 10):
        lost += tracker.update(NOBODY, 0.25 * t)[1]
    assert [change.data() for change in lost] == [
        {"track_id": 0, "box": [17.5, 10.0, 57.62, 110.0], "frames_seen": 4, "last_seen_s": 0.75}
    ]


def test_people_of_the_first_frame_only_keep_its_time():
    """Bug fixed: the first frame is shown to the library again 1 ms later; that time leaked into
    ``last_seen_s`` (0.001 for a person seen at 0.0)."""
    for min_hits in (2, 3):
        tracker = PersonTracker(min_hits=min_hits, lost_timeout_s=0.5)
        tracked, changes = tracker.update(people((A, 0.9)), 0.0)
        assert ids(tracked) == [0] and kinds(changes) == ["track_started"]
        lost = []
        for t in range(1, 8):
            lost += tracker.update(NOBODY, t / 10)[1]
        assert [change.data() for change in lost] == [
            {"track_id": 0, "box": list(A), "frames_seen": 1, "last_seen_s": 0.0}
        ]


def test_min_hits_counts_the_detections_of_a_newcomer():
    tracker = PersonTracker(min_hits=3)
    tracked, changes = tracker.update(people((A, 0.9)), 0.0)
    assert ids(tracked) == [0] and kinds(changes) == ["track_started"]
    started_at = []
    for t in range(1, 5):
        tracked, changes = tracker.update(people((A, 0.9), (C, 0.9)), t / 10)
        started_at += [(t, change.data()["track_id"]) for change in changes]
    assert started_at == [(3, 1)]  # C's third detection


def test_frames_seen_counts_detection_frames_not_coasting_ones():
    tracker = PersonTracker(lost_timeout_s=0.3, coast_s=0.3)
    tracker.update(people((A, 0.9)), 0.0)
    tracker.update(NOBODY, 0.1)
    tracker.update(people((A, 0.9)), 0.2)
    tracker.update(people((A, 0.9)), 0.3)
    lost = []
    for t in range(4, 10):
        lost += tracker.update(NOBODY, t / 10)[1]
    assert [(c.data()["frames_seen"], c.data()["last_seen_s"]) for c in lost] == [(3, 0.3)]


def test_track_started_carries_no_lifetime_figures():
    tracker = PersonTracker()
    _, changes = tracker.update(people(((10.004, 10.006, 50.0, 110.0), 0.9)), 0.0)
    assert changes[0].data() == {"track_id": 0, "box": [10.0, 10.01, 50.0, 110.0]}


def test_low_scores_start_no_track_and_mid_scores_only_keep_one():
    tracker = PersonTracker(activation_thr=0.6, high_thr=0.7)
    tracked, changes = tracker.update(people((A, 0.5)), 0.0)
    assert len(tracked) == 0 and changes == []
    track_id = seen_twice(PersonTracker())  # a high-score person is followed
    assert track_id == 0
    tracker = PersonTracker(activation_thr=0.6, high_thr=0.7, coast_s=0.0)
    seen_twice(tracker)
    tracked, changes = tracker.update(people((A, 0.65)), 0.2)  # below high_thr: revives the track
    assert ids(tracked) == [0] and changes == []


def test_timestamps_that_do_not_move_forward_keep_the_people():
    tracker = PersonTracker(coast_s=0.0)
    track_id = seen_twice(tracker)
    for t in (0.1, 0.05, 0.1):  # a repeated and a backward timestamp (a camera clock glitch)
        tracked, changes = tracker.update(people((A, 0.9)), t)
        assert ids(tracked) == [track_id] and changes == []
    lost = tracker.end()
    assert kinds(lost) == ["track_lost"]
    data = lost[0].data()
    # each frame is taken 1 us after the one before: the last one at 0.1 s + 3 us
    assert data["frames_seen"] == 5 and data["last_seen_s"] == 0.100003


# --- end of stream and memory -----------------------------------------------------------------


def test_end_frees_everything_and_the_next_stream_starts_afresh():
    tracker = PersonTracker()
    seen_twice(tracker, A)
    tracker.update(people((A, 0.9), (C, 0.9)), 0.2)
    tracker.update(people((A, 0.9), (C, 0.9)), 0.3)
    lost = tracker.end()
    assert sorted(change.data()["track_id"] for change in lost) == [0, 1] and kinds(lost) == ["track_lost"] * 2
    assert tracker.states == {} and tracker.end() == []

    # a new stream whose clock starts again at 0: its first frame's people get ids at once,
    # counted from 0 again, and the old tracks are not revived or reported
    tracked, changes = tracker.update(people((C, 0.9)), 0.0)
    assert ids(tracked) == [0] and kinds(changes) == ["track_started"]
    tracked, changes = tracker.update(people((C, 0.9)), 0.1)
    assert ids(tracked) == [0] and changes == []


def test_state_stays_bounded_while_people_come_and_go():
    tracker = PersonTracker(lost_timeout_s=0.3, coast_s=0.1)
    started = lost = 0
    for t in range(200):  # a new person every 5 frames, each seen for 3 frames
        x = 10.0 + 60.0 * ((t // 5) % 8)
        dets = people(((x, 10.0, x + 40.0, 110.0), 0.9)) if t % 5 < 3 else NOBODY
        _, changes = tracker.update(dets, t / 10)
        started += kinds(changes).count("track_started")
        lost += kinds(changes).count("track_lost")
        assert len(tracker.states) <= 2
        assert len(tracker._tracker.tracks) <= 4  # the library's own tracks end too
    assert started == 40 and lost >= 38


def test_a_score_equal_to_a_threshold_passes_it():
    """Bug fixed: scores travel as float32, where 0.7 is 0.69999999, so a person scoring exactly
    ``activation_thr`` or ``high_thr`` started no track."""
    tracker = PersonTracker(activation_thr=0.7, high_thr=0.7)
    tracked, changes = tracker.update(people((A, 0.7)), 0.0)
    assert ids(tracked) == [0] and kinds(changes) == ["track_started"]
    tracker = PersonTracker(activation_thr=0.5, high_thr=0.9)
    tracker.update(people((A, 0.95)), 0.0)
    for t in (1, 2):  # a newcomer scoring exactly high_thr is confirmed on its second detection
        tracked, changes = tracker.update(people((A, 0.95), (C, 0.9)), t / 10)
    assert ids(tracked) == [0, 1] and kinds(changes) == ["track_started"]


def test_last_seen_s_keeps_microseconds():
    tracker = PersonTracker(lost_timeout_s=0.5)
    tracker.update(people((A, 0.9)), 0.0)
    tracker.update(people((A, 0.9)), 0.12345678)
    assert [change.data()["last_seen_s"] for change in tracker.end()] == [0.123457]


def test_a_missing_trackers_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "trackers", None)  # import trackers -> ImportError
    with pytest.raises(LibraryMissing, match=r"^tracking people needs Roboflow's trackers package: pip install "):
        PersonTracker()


def test_a_stream_whose_clock_starts_late_gets_ids_at_once():
    """Camera clocks start anywhere: the first frame's people are reported at its own time."""
    tracker = PersonTracker(lost_timeout_s=0.5)
    tracked, changes = tracker.update(people((A, 0.9)), 37.2)
    assert ids(tracked) == [0] and kinds(changes) == ["track_started"]
    tracked, changes = tracker.update(people((A, 0.9)), 37.3)
    assert ids(tracked) == [0] and changes == []
    assert [change.data()["last_seen_s"] for change in tracker.end()] == [37.3]


@pytest.mark.parametrize(("score", "started"), [(0.75, False), (0.8, True)])
def test_activation_thr_decides_who_may_start_a_track(score, started):
    tracker = PersonTracker(activation_thr=0.8, high_thr=0.5)
    tracked, changes = tracker.update(people((A, score)), 0.0)
    assert len(tracked) == int(started) and kinds(changes) == ["track_started"] * int(started)


def test_below_high_thr_a_newcomer_starts_no_track():
    tracker = PersonTracker(activation_thr=0.5, high_thr=0.95)
    tracker.update(people((A, 0.99)), 0.0)
    for t in range(1, 5):  # scores 0.9: enough to activate, not enough for the first pass
        tracked, changes = tracker.update(people((A, 0.99), (C, 0.9)), t / 10)
        assert ids(tracked) == [0] and changes == []


@pytest.mark.parametrize(("iou_thr", "same_person"), [(0.1, True), (0.8, False)])
def test_iou_thr_decides_whether_a_jump_is_the_same_person(iou_thr, same_person):
    tracker = PersonTracker(iou_thr=iou_thr, coast_s=0.0)
    tracker.update(people((A, 0.9)), 0.0)
    tracked, _ = tracker.update(people(((30.0, 10.0, 70.0, 110.0), 0.9)), 0.1)  # IoU 1/3 with A
    assert (ids(tracked) == [0]) == same_person


@pytest.mark.parametrize(("gap", "lost"), [(0.03, False), (0.04, True)])
def test_a_timeout_under_one_30_fps_frame_lasts_one_frame(gap, lost):
    """The library counts its budget in 30 fps frames, at least one: 0.01 s acts as 1/30 s."""
    tracker = PersonTracker(lost_timeout_s=0.01, coast_s=0.0)
    tracker.update(people((A, 0.9)), 0.0)
    _, changes = tracker.update(NOBODY, gap)
    assert kinds(changes) == ["track_lost"] * int(lost)


def test_by_default_a_missed_person_coasts_1_s_and_is_lost_after_2_s():
    """The defaults docs/people.md gives (``--lost-timeout`` 2)."""
    coasting, lost_at = [], []
    tracker = PersonTracker()
    tracker.update(people((A, 0.9)), 0.0)
    tracker.update(people((A, 0.9)), 0.25)
    for t in (1.25, 1.2578125, 2.25, 2.2578125):  # binary fractions: exact differences
        tracked, changes = tracker.update(NOBODY, t)
        coasting.append(len(tracked))
        lost_at += [t] * len(changes)
    assert coasting == [1, 0, 0, 0] and lost_at == [2.2578125]
