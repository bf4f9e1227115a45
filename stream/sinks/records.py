"""JSON records of results, shared by the JSON-lines and ZeroMQ publisher sinks.

Two record types, told apart by ``"type"``::

    {"type": "frame", "source_id": "cam0", "frame_idx": 120, "pts": 4800, "time_s": 4.8,
     "capture_ns": 81234567890, "detections": 2, "poses": 2,
     "predictions": [{"labels": ["running", ...], "label_ids": [...], "scores": [...],
                      "start_s": 2.24, "end_s": 4.8, "capture_ns": ..., "track_id": null}],
     "meta": {"fps": 25.0}}
    {"type": "event", "source_id": "cam0", "kind": "disconnected", "message": "...", "wall_time": ...}

With ``include_boxes`` a frame record also has ``"boxes": [{"xyxy": [...], "score": ..,
"label": .., "track_id": ..}, ...]``. ``include_frames="people"`` gives every frame a record
listing its people, one entry per row of the frame's detections::

    "people": [{"track_id": 3, "box": [x1, y1, x2, y2], "score": 0.93,
                "keypoints": [[x, y, score], ...]}]   # 17 COCO keypoints, or null without pose
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

import numpy as np

from stream.errors import ConfigError
from stream.packet import FramePacket

IncludeFrames = Literal["predictions", "all", "none", "people"]
INCLUDE_FRAMES = ("predictions", "all", "none", "people")


def check_include_frames(value: str) -> IncludeFrames:
    """Validate an ``include_frames`` setting.

    Raises:
        ConfigError: If ``value`` is not one of ``predictions``, ``all``, ``none``, ``people``.
    """
    if value not in INCLUDE_FRAMES:
        raise ConfigError(f"include_frames: expected one of {', '.join(INCLUDE_FRAMES)}, got {value!r}")
    return value  # type: ignore[return-value]


def wants_frame(packet: FramePacket, include_frames: IncludeFrames) -> bool:
    """Whether a frame gets a record: every frame (``all``, ``people``), frames with predictions, or none."""
    return include_frames in ("all", "people") or (include_frames == "predictions" and bool(packet.predictions))


def people_records(packet: FramePacket) -> list[dict[str, Any]]:
    """One JSON-able entry per person (row) of the frame: track id, box, score, keypoints."""
    detections = packet.detections
    if detections is None:
        return []
    track_ids, keypoints = detections.track_ids, detections.keypoints
    xyxy = np.round(detections.xyxy.astype(np.float64), 2).tolist()
    scores = np.round(detections.scores.astype(np.float64), 4).tolist()
    kpts = None if keypoints is None else np.round(keypoints.astype(np.float64), 3).tolist()
    return [
        {
            "track_id": None if track_ids is None else int(track_ids[i]),
            "box": xyxy[i],
            "score": scores[i],
            "keypoints": None if kpts is None else kpts[i],
        }
        for i in range(len(detections))
    ]


def frame_record(packet: FramePacket, *, include_boxes: bool = False, include_people: bool = False) -> dict[str, Any]:
    """The JSON-able record of one frame's results (no pixels)."""
    detections = packet.detections
    record: dict[str, Any] = {
        "type": "frame",
        "source_id": packet.source_id,
        "frame_idx": packet.frame_idx,
        "pts": packet.pts,
        "time_s": round(packet.time_s, 6),
        "capture_ns": packet.capture_ns,
        "detections": 0 if detections is None else len(detections),
        "poses": 0 if detections is None or detections.keypoints is None else len(detections),
        "predictions": [p.to_json() for p in packet.predictions],
    }
    if include_boxes and detections is not None:
        track_ids = detections.track_ids
        record["boxes"] = [
            {
                "xyxy": [round(float(v), 2) for v in detections.xyxy[i]],
                "score": round(float(detections.scores[i]), 6),
                "label": int(detections.labels[i]),
                "track_id": None if track_ids is None else int(track_ids[i]),
            }
            for i in range(len(detections))
        ]
    if include_people:
        record["people"] = people_records(packet)
    if packet.meta:
        record["meta"] = dict(packet.meta)
    return record


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def dumps(record: dict[str, Any]) -> str:
    """One compact line of strict JSON (NaN and infinities become null)."""
    try:
        return json.dumps(record, separators=(",", ":"), default=_default, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(record), separators=(",", ":"), default=_default, allow_nan=False)
