"""Track ids for people: ByteTrack association (Roboflow's ``trackers``) plus track lifecycles.

:class:`PersonTracker` follows the people of one source. Association is ByteTrack as
implemented by Roboflow's ``trackers`` package (``ByteTrackTracker``, Apache-2.0; the
successor of ``supervision.ByteTrack``): a Kalman filter predicts each track's box, high-score
detections are matched by IoU first, low-score ones then revive tracks the first pass left,
and a track is confirmed after ``min_hits`` consecutive detections (the people of the first
frame at once, as in the original ByteTrack). We use a maintained
library rather than our own association code because the association details (two-stage
matching, Kalman tuning, time-based budgets for variable frame rates) are where home-made
trackers go wrong, and this one is tested against MOT benchmarks upstream.

On top of it this module keeps what the pipeline needs: timestamps in stream time (so a
detection every N frames keeps the motion model right), coasting (a confirmed track missed
by the detector keeps its predicted box for up to ``coast_s``), and per-track state that
is created on ``track_started`` and freed on ``track_lost`` (after ``lost_timeout_s``
without a detection, or at the end of the stream).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.base import PERSON_LABEL
from detectors.errors import DetectorConfigError, LibraryMissing
from stream.packet import Detections

_REFERENCE_FPS = 30.0  # the trackers package counts its lost-track buffer in 30 fps frames


def _bytetrack() -> Any:
    """Roboflow's ``ByteTrackTracker`` class.

    Raises:
        LibraryMissing: If the ``trackers`` package is not installed.
    """
    try:
        from trackers import ByteTrackTracker
    except ImportError as exc:
        raise LibraryMissing(
            f"tracking people needs Roboflow's trackers package: pip install 'trackers>=2.6,<2.7' "
            f"(a core dependency: pip install -e .): {exc}"
        ) from exc
    return ByteTrackTracker


@dataclass
class TrackState:
    """What is known about one confirmed track."""

    track_id: int
    first_s: float
    last_seen_s: float
    frames_seen: int
    box: np.ndarray
    score: float


@dataclass(frozen=True)
class TrackChange:
    """A track started or ended; ``kind`` is ``track_started`` or ``track_lost``."""

    kind: str
    state: TrackState

    def data(self) -> dict[str, Any]:
        """The event's JSON-able ``data``: ``track_id``, ``box``, and for lost tracks
        ``frames_seen`` and ``last_seen_s``."""
        out: dict[str, Any] = {"track_id": self.state.track_id, "box": [round(float(v), 2) for v in self.state.box]}
        if self.kind == "track_lost":
            out["frames_seen"] = self.state.frames_seen
            out["last_seen_s"] = round(self.state.last_seen_s, 6)
        return out


class PersonTracker:
    """Stable ids for the people of one source.

    Args:
        activation_thr: detections scoring at least this may start a new track.
        high_thr: detections scoring at least this are matched in ByteTrack's first pass;
            the others only revive existing tracks.
        iou_thr: least IoU between a track's predicted box and a detection to match them.
        min_hits: consecutive detections before a track is confirmed and gets an id (at least
            2: the library confirms a track on its second detection at the earliest; the
            people of the first frame get ids at once whatever the setting).
        lost_timeout_s: stream seconds without a detection after which a track ends.
        coast_s: stream seconds a confirmed track missed by the detector is still reported,
            at its predicted box (0 reports detected people only).

    Raises:
        DetectorConfigError: If a parameter is out of range.
    """

    def __init__(
        self,
        *,
        activation_thr: float = 0.6,
        high_thr: float = 0.7,
        iou_thr: float = 0.1,
        min_hits: int = 2,
        lost_timeout_s: float = 2.0,
        coast_s: float = 1.0,
    ) -> None:
        if not (0.0 <= activation_thr <= 1.0 and 0.0 <= high_thr <= 1.0 and 0.0 < iou_thr <= 1.0):
            raise DetectorConfigError(
                f"tracker thresholds: expected values in 0..1, got activation {activation_thr}, "
                f"high {high_thr}, iou {iou_thr}"
            )
        if min_hits < 2:
            raise DetectorConfigError(
                f"min_hits: expected >= 2 (a track is confirmed on its second detection at the earliest), "
                f"got {min_hits}"
            )
        if lost_timeout_s <= 0 or coast_s < 0:
            raise DetectorConfigError(
                f"lost_timeout_s / coast_s: expected > 0 / >= 0, got {lost_timeout_s} / {coast_s}"
            )
        ByteTrackTracker = _bytetrack()
        self.coast_s = min(coast_s, lost_timeout_s)
        self._min_hits = min_hits
        # scores travel as float32 (Detections), where 0.7 is 0.69999999: the thresholds are
        # compared at the same precision, so a score equal to a threshold passes it
        self._tracker = ByteTrackTracker(
            lost_track_buffer=max(1, round(lost_timeout_s * _REFERENCE_FPS)),
            frame_rate=_REFERENCE_FPS,
            track_activation_threshold=float(np.float32(activation_thr)),
            minimum_consecutive_frames=min_hits,
            minimum_iou_threshold=iou_thr,
            high_conf_det_threshold=float(np.float32(high_thr)),
        )
        self.states: dict[int, TrackState] = {}
        self._last_time: float | None = None

    def update(self, detections: Detections, time_s: float) -> tuple[Detections, list[TrackChange]]:
        """Associate one frame's detections with the tracks.

        Args:
            detections: the frame's people (any ``track_ids`` are ignored).
            time_s: the frame's stream time; must not go backwards.

        Returns:
            The confirmed people of the frame with their ``track_ids`` (detected ones first,
            then coasting ones at their predicted boxes), and the tracks that started or
            ended with this frame.
        """
        import supervision as sv

        first = self._last_time is None
        if self._last_time is not None and time_s <= self._last_time:
            time_s = self._last_time + 1e-6  # equal or backward timestamps: keep the clock moving
        self._last_time = time_s
        sv_dets = sv.Detections(
            xyxy=detections.xyxy.astype(np.float32).reshape(-1, 4),
            confidence=detections.scores.astype(np.float32),
            class_id=detections.labels.astype(int),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            tracked = self._tracker.update(sv_dets, timestamp=time_s)
            if first and len(sv_dets):
                # As in the original ByteTrack, the people of the first frame get ids at once (a
                # still image has no second frame to confirm them): the library confirms a track
                # on its min_hits-th consecutive detection, so the first frame is shown to it
                # again, 1 ms apart. The people keep the frame's own time (``last_seen_s``).
                repeat_s = time_s
                for _ in range(self._min_hits - 1):
                    repeat_s += 1e-3
                    tracked = self._tracker.update(sv_dets, timestamp=repeat_s)
                self._last_time = repeat_s
        ids = np.asarray(tracked.tracker_id if tracked.tracker_id is not None else [], dtype=np.int64)
        confirmed = ids >= 0
        boxes = np.asarray(tracked.xyxy, np.float32).reshape(-1, 4)[confirmed]
        scores = np.asarray(tracked.confidence if tracked.confidence is not None else np.ones(len(ids)), np.float32)[
            confirmed
        ]
        ids = ids[confirmed]

        changes: list[TrackChange] = []
        for box, score, track_id in zip(boxes, scores, ids, strict=True):
            state = self.states.get(int(track_id))
            if state is None:
                state = TrackState(int(track_id), time_s, time_s, 0, box.copy(), float(score))
                self.states[int(track_id)] = state
                changes.append(TrackChange("track_started", state))
            state.last_seen_s, state.box, state.score = time_s, box.copy(), float(score)
            state.frames_seen += 1

        # confirmed tracks the detector missed this time: their predicted boxes, for a while
        alive = {int(t.tracker_id): t for t in self._tracker.tracks if int(t.tracker_id) >= 0}
        detected = set(ids.tolist())
        coast = [
            (track_id, t)
            for track_id, t in sorted(alive.items())
            if track_id not in detected and track_id in self.states and t.time_since_update_seconds <= self.coast_s
        ]
        if coast:
            boxes = np.concatenate([boxes, np.stack([t.get_state_bbox() for _, t in coast]).astype(np.float32)])
            scores = np.concatenate([scores, np.array([self.states[i].score for i, _ in coast], np.float32)])
            ids = np.concatenate([ids, np.array([i for i, _ in coast], np.int64)])

        for track_id in [i for i in self.states if i not in alive]:
            changes.append(TrackChange("track_lost", self.states.pop(track_id)))
        labels = np.full(len(ids), PERSON_LABEL, np.int64)
        return Detections(boxes, scores, labels, ids), changes

    def end(self) -> list[TrackChange]:
        """End every track (the stream ended); frees all state."""
        changes = [TrackChange("track_lost", state) for state in self.states.values()]
        self.states.clear()
        self._tracker.reset()
        self._last_time = None
        return changes
