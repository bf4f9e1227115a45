"""The typed packets that travel between stages.

One :class:`FramePacket` per decoded frame carries the image plus everything stages add
to it (people as :class:`Detections` rows with their keypoints, predictions).
:class:`SourceEvent` reports source status (disconnects, reconnects, tracks) and
:class:`EndOfStream` closes a stream. Stream time comes from the container's timestamps
(``pts * time_base``), never from counting frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

import numpy as np

JsonScalar = str | int | float | bool | None


def _as_array(value: Any, dtype: type, name: str, shape_tail: tuple[int, ...]) -> np.ndarray:
    array: np.ndarray = np.asarray(value, dtype=dtype)
    if array.ndim != 1 + len(shape_tail) or tuple(array.shape[1:]) != shape_tail:
        want = "(N" + "".join(f", {d}" for d in shape_tail) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {array.shape}")
    return array


@dataclass(eq=False)
class Detections:
    """Boxes in one frame, one numpy array per field; people are rows.

    Every per-person field has one row per box in the same order, so a person's box,
    score, track id and keypoints can never be misaligned; boolean-mask indexing keeps
    them together.

    Attributes:
        xyxy: ``(N, 4)`` float32 boxes in pixels, ``x1, y1, x2, y2``.
        scores: ``(N,)`` float32 confidences.
        labels: ``(N,)`` int64 class ids.
        track_ids: ``(N,)`` int64 track ids, or None before tracking.
        data: extra per-box arrays, each with N rows.
        keypoints: ``(N, K, 3)`` float32 ``[x, y, score]`` per keypoint in pixels (COCO-17
            order for people), or None before pose estimation.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    track_ids: np.ndarray | None = None
    data: dict[str, np.ndarray] = field(default_factory=dict)
    keypoints: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.xyxy = _as_array(self.xyxy, np.float32, "Detections.xyxy", (4,))
        n = len(self.xyxy)
        self.scores = _as_array(self.scores, np.float32, "Detections.scores", ())
        self.labels = _as_array(self.labels, np.int64, "Detections.labels", ())
        if self.track_ids is not None:
            self.track_ids = _as_array(self.track_ids, np.int64, "Detections.track_ids", ())
        for name, arr in [("scores", self.scores), ("labels", self.labels), ("track_ids", self.track_ids)]:
            if arr is not None and len(arr) != n:
                raise ValueError(f"Detections.{name}: expected {n} rows (as xyxy), got {len(arr)}")
        for name, arr in self.data.items():
            if len(arr) != n:
                raise ValueError(f"Detections.data[{name!r}]: expected {n} rows (as xyxy), got {len(arr)}")
        if self.keypoints is not None:
            keypoints: np.ndarray = np.asarray(self.keypoints, dtype=np.float32)
            if keypoints.ndim != 3 or keypoints.shape[2] != 3:
                raise ValueError(f"Detections.keypoints: expected shape (N, K, 3) [x, y, score], got {keypoints.shape}")
            if len(keypoints) != n:
                raise ValueError(f"Detections.keypoints: expected {n} rows (as xyxy), got {len(keypoints)}")
            self.keypoints = keypoints

    @classmethod
    def empty(cls) -> Detections:
        """No boxes."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: np.ndarray | slice | int) -> Detections:
        """Select rows with a boolean mask, an index array or a slice."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return Detections(
            self.xyxy[index],
            self.scores[index],
            self.labels[index],
            None if self.track_ids is None else self.track_ids[index],
            {k: v[index] for k, v in self.data.items()},
            None if self.keypoints is None else self.keypoints[index],
        )


@dataclass(eq=False)
class Prediction:
    """The labels of one clip: top-k of a single-label recognizer, or every label above the
    threshold of a multi-label (AVA-style) model, each with its own score.

    Attributes:
        label_ids: ``(k,)`` int64 class ids, best first.
        scores: ``(k,)`` float32 scores matching ``label_ids``.
        names: class names matching ``label_ids``.
        start_s: stream time of the clip's first frame, seconds.
        end_s: stream time of the clip's newest frame, seconds.
        capture_ns: capture timestamp (monotonic ns) of the clip's newest frame, for latency.
        track_id: the person this prediction is about, or None for the whole frame.
        box: ``(4,)`` float32 ``x1, y1, x2, y2`` pixels of that person, or None.
        multi_label: the labels are independent (sigmoid scores, several may hold at once)
            rather than alternatives ranked by a softmax.
    """

    label_ids: np.ndarray
    scores: np.ndarray
    names: tuple[str, ...]
    start_s: float
    end_s: float
    capture_ns: int
    track_id: int | None = None
    box: np.ndarray | None = None
    multi_label: bool = False

    def __post_init__(self) -> None:
        if self.box is not None:
            self.box = np.asarray(self.box, dtype=np.float32).reshape(-1)
            if self.box.shape != (4,):
                raise ValueError(f"Prediction.box: expected 4 numbers x1, y1, x2, y2, got shape {self.box.shape}")
        self.label_ids = np.asarray(self.label_ids, dtype=np.int64).reshape(-1)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.names = tuple(self.names)
        if not (len(self.label_ids) == len(self.scores) == len(self.names)):
            raise ValueError(
                "Prediction: label_ids, scores and names must have equal length, got "
                f"{len(self.label_ids)}, {len(self.scores)}, {len(self.names)}"
            )

    @property
    def top_name(self) -> str | None:
        return self.names[0] if self.names else None

    @property
    def top_score(self) -> float | None:
        return float(self.scores[0]) if len(self.scores) else None

    def to_json(self) -> dict[str, Any]:
        return {
            "labels": list(self.names),
            "label_ids": self.label_ids.tolist(),
            "scores": [round(float(s), 6) for s in self.scores],
            "start_s": round(self.start_s, 6),
            "end_s": round(self.end_s, 6),
            "capture_ns": self.capture_ns,
            "track_id": self.track_id,
            **({"box": [round(float(v), 2) for v in self.box]} if self.box is not None else {}),
            **({"multi_label": True} if self.multi_label else {}),
        }


@dataclass(eq=False)
class FramePacket:
    """One decoded frame and everything the stages add to it.

    Attributes:
        image: ``H×W×3`` uint8 BGR. Read-only after it crossed a link: copy before drawing.
        source_id: which stream the frame came from.
        frame_idx: 0-based index of the frame within its source (after any dropping at decode).
        pts: presentation timestamp in ``time_base`` units.
        time_base: seconds per ``pts`` unit.
        capture_ns: ``time.monotonic_ns()`` when the frame was captured/decoded.
        detections: the frame's boxes (people are rows, with their track ids and keypoints).
        predictions: action predictions attached to this frame.
        meta: small JSON-able extras (e.g. ``{"fps": 25.0}``).
    """

    image: np.ndarray
    source_id: str
    frame_idx: int
    pts: int
    time_base: Fraction
    capture_ns: int
    detections: Detections | None = None
    predictions: list[Prediction] = field(default_factory=list)
    meta: dict[str, JsonScalar] = field(default_factory=dict)

    def __post_init__(self) -> None:
        image = self.image
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(f"FramePacket.image: expected H×W×3 uint8 BGR array, got {got}")
        if type(self.time_base) is not Fraction:
            self.time_base = Fraction(self.time_base)
        if self.time_base.numerator <= 0:  # a Fraction's denominator is always positive
            raise ValueError(f"FramePacket.time_base: expected a positive fraction, got {self.time_base}")

    @property
    def time_s(self) -> float:
        """Stream time of this frame in seconds."""
        return float(self.pts * self.time_base)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


EventKind = Literal[
    "opened", "connected", "disconnected", "reconnecting", "gave_up", "error", "action", "track_started", "track_lost"
]
"""What a :class:`SourceEvent` reports. ``track_started`` / ``track_lost`` carry ``data`` with
``track_id`` and ``box`` ``[x1, y1, x2, y2]``; ``track_lost`` adds ``frames_seen`` and
``last_seen_s`` (stream time of the track's last detection)."""


@dataclass(eq=False)
class SourceEvent:
    """A status change of a source, or an event derived from predictions.

    Attributes:
        source_id: the stream concerned.
        kind: what happened.
        message: human-readable detail.
        wall_time: ``time.time()`` when it happened.
        data: JSON-able extras.
    """

    source_id: str
    kind: EventKind
    message: str
    wall_time: float
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "event",
            "source_id": self.source_id,
            "kind": self.kind,
            "message": self.message,
            "wall_time": self.wall_time,
            **({"data": dict(self.data)} if self.data else {}),
        }


@dataclass(eq=False)
class EndOfStream:
    """The last packet of a stream. ``error`` is set when the stream ended because of a failure."""

    source_id: str
    error: str | None = None


Packet = FramePacket | SourceEvent | EndOfStream
