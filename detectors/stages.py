"""The people stages: detect, track, pose (in that order), each a small :class:`Stage`.

* :class:`DetectStage` runs a :class:`~detectors.base.PersonDetector` on every
  ``interval``-th frame of each source and marks each frame ``meta["detected"]``.
* :class:`TrackStage` gives people stable ids (:class:`~detectors.tracking.PersonTracker`)
  on detection frames, carries the tracked boxes across the frames in between with sparse
  optical flow, and emits ``track_started`` / ``track_lost`` events.
* :class:`PoseStage` adds COCO-17 keypoints with a :class:`~detectors.base.PoseEstimator`
  on the frames that need it: detection frames, and people it has no keypoints for yet;
  in between, a track's last keypoints follow its box. Its per-track keypoints are freed
  on ``track_lost``.

The runner owns threads and errors; models are built in ``setup()`` (in the stage's own
thread) from a factory, so building a pipeline loads nothing.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from detectors.base import PersonDetector, PoseEstimator
from detectors.errors import DetectorConfigError
from detectors.tracking import PersonTracker, TrackChange
from stream.packet import Detections, FramePacket, SourceEvent
from stream.stage import Outputs, Stage

log = logging.getLogger(__name__)

DETECTED = "detected"  # meta key: whether the detector ran on this frame
_FLOW_SCALE = 0.5  # optical flow runs on frames scaled by this
_MAX_POSE_CACHE = 4096  # tracks whose keypoints are remembered (oldest forgotten first)


class DetectStage(Stage):
    """Person detection every ``interval`` frames of each source.

    Args:
        detector: builds the detector (called once, in ``setup()``).
        interval: run the detector on every ``interval``-th frame (``--det-interval``);
            frames in between get ``detections = None`` and ``meta["detected"] = False``
            for the tracker to fill.
        cat_id: keep detections of this class id only (``--det-cat-id``; 0 = person).
        name: stage name.

    Raises:
        DetectorConfigError: If ``interval`` < 1.
    """

    def __init__(
        self, detector: Callable[[], PersonDetector], *, interval: int = 1, cat_id: int = 0, name: str = "detector"
    ) -> None:
        super().__init__(name)
        if interval < 1:
            raise DetectorConfigError(f"det_interval: expected >= 1 frame, got {interval}")
        self.factory = detector
        self.interval = interval
        self.cat_id = cat_id
        self.detector: PersonDetector | None = None
        self._seen: dict[str, int] = {}
        self.detected_frames = 0
        self.people = 0

    def setup(self) -> None:
        self.detector = self.factory()

    def process(self, packet: FramePacket) -> Outputs:
        if self.detector is None:
            raise DetectorConfigError(f"{self.name}: process() before setup()")
        seen = self._seen.get(packet.source_id, 0)
        self._seen[packet.source_id] = seen + 1
        if seen % self.interval:
            packet.detections = None
            packet.meta[DETECTED] = False
            return packet
        detections = self.detector.detect([packet.image])[0]
        detections = detections[detections.labels == self.cat_id]
        packet.detections = detections
        packet.meta[DETECTED] = True
        self.detected_frames += 1
        self.people += len(detections)
        return packet

    def close(self) -> None:
        if self.detector is not None:
            self.detector.close()
            self.detector = None

    def metrics(self) -> dict[str, Any]:
        return {"detected_frames": self.detected_frames, "people_detected": self.people}


class _SourceTracks:
    """Tracking state of one source: the tracker, the last boxes and the last small gray frame."""

    def __init__(self, tracker: PersonTracker) -> None:
        self.tracker = tracker
        self.last: Detections = Detections.empty()
        self.gray: np.ndarray | None = None


def _small_gray(image: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return cv2.resize(gray, None, fx=_FLOW_SCALE, fy=_FLOW_SCALE, interpolation=cv2.INTER_AREA)


def flow_shift(prev: np.ndarray, cur: np.ndarray, boxes: np.ndarray, grid: int = 4) -> np.ndarray:
    """Each box moved by the median sparse optical flow (Lucas-Kanade) of a grid of points inside it.

    ``prev`` / ``cur`` are gray frames scaled by ``_FLOW_SCALE``; ``boxes`` are in full-frame pixels.
    A box whose points are all lost keeps its place.
    """
    if len(boxes) == 0:
        return boxes
    fractions = (np.arange(grid) + 0.5) / grid
    points = []
    for x1, y1, x2, y2 in boxes * _FLOW_SCALE:
        xs = x1 + (0.2 + 0.6 * fractions) * (x2 - x1)
        ys = y1 + (0.1 + 0.6 * fractions) * (y2 - y1)  # head to hips: steadier than the legs
        points.append(np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2))
    start = np.concatenate(points).astype(np.float32).reshape(-1, 1, 2)
    end, status, _ = cv2.calcOpticalFlowPyrLK(prev, cur, start, None, winSize=(15, 15), maxLevel=2)
    moves = (end - start).reshape(len(boxes), grid * grid, 2)
    good = status.reshape(len(boxes), grid * grid).astype(bool)
    shifted = boxes.copy()
    for i in range(len(boxes)):
        if good[i].any():
            dx, dy = np.median(moves[i][good[i]], axis=0) / _FLOW_SCALE
            shifted[i] += (dx, dy, dx, dy)
    return shifted


class TrackStage(Stage):
    """Stable track ids, boxes carried between detection frames, start / lost events.

    Args:
        tracker: builds one :class:`PersonTracker` per source.
        max_sources: sources tracked at once; beyond it the least recently seen source is
            forgotten and its tracks are reported lost.
        name: stage name.
    """

    def __init__(
        self, tracker: Callable[[], PersonTracker] = PersonTracker, *, max_sources: int = 64, name: str = "tracker"
    ) -> None:
        super().__init__(name)
        self.factory = tracker
        self.max_sources = max_sources
        self._sources: collections.OrderedDict[str, _SourceTracks] = collections.OrderedDict()
        self.started = 0
        self.lost = 0

    def setup(self) -> None:
        """Build one tracker now, so that a missing library or a bad setting fails at start-up."""
        self.factory()

    def process(self, packet: FramePacket) -> Outputs:
        events: list[SourceEvent] = []
        state = self._sources.get(packet.source_id)
        if state is None:
            state = self._sources[packet.source_id] = _SourceTracks(self.factory())
            while len(self._sources) > self.max_sources:  # forget the least recently seen source
                source_id, dropped = self._sources.popitem(last=False)
                events += [self._event(source_id, change) for change in dropped.tracker.end()]
        self._sources.move_to_end(packet.source_id)
        gray = _small_gray(packet.image)
        if packet.meta.get(DETECTED, packet.detections is not None) and packet.detections is not None:
            tracked, changes = state.tracker.update(packet.detections, packet.time_s)
            events += [self._event(packet.source_id, change) for change in changes]
        else:
            tracked = state.last
            if len(tracked) and state.gray is not None and state.gray.shape == gray.shape:
                xyxy = flow_shift(state.gray, gray, tracked.xyxy)
                h, w = packet.height, packet.width
                xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, w)
                xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, h)
                tracked = Detections(xyxy, tracked.scores, tracked.labels, tracked.track_ids)
        state.gray, state.last = gray, tracked
        packet.detections = tracked
        return [*events, packet]

    def _event(self, source_id: str, change: TrackChange) -> SourceEvent:
        if change.kind == "track_started":
            self.started += 1
            message = f"track {change.state.track_id} started"
        else:
            self.lost += 1
            message = f"track {change.state.track_id} lost after {change.state.frames_seen} detections"
        return SourceEvent(source_id, change.kind, message, time.time(), change.data())  # type: ignore[arg-type]

    def finish(self) -> Outputs:
        events = []
        for source_id, state in self._sources.items():
            events += [self._event(source_id, change) for change in state.tracker.end()]
        self._sources.clear()
        return events

    def metrics(self) -> dict[str, Any]:
        return {"tracks_started": self.started, "tracks_lost": self.lost}


class PoseStage(Stage):
    """COCO-17 keypoints for the people of each frame, estimated where needed.

    Args:
        estimator: builds the pose estimator (called once, in ``setup()``).
        every_frame: estimate on every frame; by default only on detection frames and for
            people without keypoints yet, a track's keypoints following its box in between.
        name: stage name.
    """

    def __init__(
        self, estimator: Callable[[], PoseEstimator], *, every_frame: bool = False, name: str = "pose"
    ) -> None:
        super().__init__(name)
        self.factory = estimator
        self.every_frame = every_frame
        self.estimator: PoseEstimator | None = None
        # (source_id, track_id) -> keypoints relative to the box: (x - x1) / w, (y - y1) / h, score
        self._cache: collections.OrderedDict[tuple[str, int], np.ndarray] = collections.OrderedDict()
        self.estimated = 0
        self.carried = 0

    def setup(self) -> None:
        self.estimator = self.factory()

    def process(self, packet: FramePacket) -> Outputs:
        if self.estimator is None:
            raise DetectorConfigError(f"{self.name}: process() before setup()")
        detections = packet.detections
        if detections is None or len(detections) == 0:
            if detections is not None and detections.keypoints is None:
                packet.detections = Detections(
                    detections.xyxy, detections.scores, detections.labels, detections.track_ids, dict(detections.data),
                    np.zeros((0, 17, 3), np.float32),
                )  # fmt: skip
            return packet
        n = len(detections)
        origin = detections.xyxy[:, :2]
        size = np.maximum(detections.xyxy[:, 2:] - detections.xyxy[:, :2], 1.0)
        keypoints = np.zeros((n, 17, 3), np.float32)
        need = np.ones(n, bool)
        track_ids = detections.track_ids
        fresh = self.every_frame or bool(packet.meta.get(DETECTED, True)) or track_ids is None
        if not fresh and track_ids is not None:
            for i, track_id in enumerate(track_ids.tolist()):
                relative = self._cache.get((packet.source_id, track_id))
                if relative is not None:
                    keypoints[i, :, :2] = relative[:, :2] * size[i] + origin[i]
                    keypoints[i, :, 2] = relative[:, 2]
                    need[i] = False
        if need.any():
            subset = detections[need]
            keypoints[need] = self.estimator.estimate([packet.image], [subset])[0].keypoints
            self.estimated += int(need.sum())
        self.carried += int((~need).sum())
        if track_ids is not None:
            for i in np.flatnonzero(need).tolist():
                relative = keypoints[i].copy()
                relative[:, :2] = (relative[:, :2] - origin[i]) / size[i]
                key = (packet.source_id, int(track_ids[i]))
                self._cache[key] = relative
                self._cache.move_to_end(key)
            while len(self._cache) > _MAX_POSE_CACHE:
                self._cache.popitem(last=False)
        packet.detections = Detections(
            detections.xyxy, detections.scores, detections.labels, track_ids, dict(detections.data), keypoints
        )
        return packet

    def on_event(self, event: SourceEvent) -> Outputs:
        if event.kind == "track_lost":
            self._cache.pop((event.source_id, int(event.data.get("track_id", -1))), None)
        return event

    def close(self) -> None:
        self._cache.clear()
        if self.estimator is not None:
            self.estimator.close()
            self.estimator = None

    @property
    def cached_tracks(self) -> int:
        """Tracks whose keypoints are remembered (freed on ``track_lost``)."""
        return len(self._cache)

    def metrics(self) -> dict[str, Any]:
        return {"poses_estimated": self.estimated, "poses_carried": self.carried}
