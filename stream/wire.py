"""Wire format of packets on ZeroMQ sockets: a msgpack header plus raw image bytes.

A frame travels as two message parts, ``[header, pixels]``: the header is a small
msgpack map (never pickle), the pixels the image's buffer sent without copying.
Events and end-of-stream markers are a single header part. Numpy arrays inside the
header (boxes, keypoints, scores) are encoded as ``{dtype, shape, bytes}``.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import msgpack
import numpy as np

from stream.errors import TransportError
from stream.packet import Detections, EndOfStream, FramePacket, Packet, Poses, Prediction, SourceEvent

WIRE_VERSION = 1
_ND_EXT = 1  # msgpack extension code of a numpy array: packed [dtype, shape, bytes]


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        return msgpack.ExtType(_ND_EXT, msgpack.packb([arr.dtype.str, list(arr.shape), arr.tobytes()]))
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot put {type(obj).__name__} on the wire")


def _ext_hook(code: int, data: bytes) -> Any:
    if code != _ND_EXT:
        raise ValueError(f"unknown msgpack extension {code}")
    dtype, shape, raw = msgpack.unpackb(data)
    return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape)


def _detections(d: Detections | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {"xyxy": d.xyxy, "scores": d.scores, "labels": d.labels, "track_ids": d.track_ids, "data": d.data}


def _prediction(p: Prediction) -> dict[str, Any]:
    return {
        "label_ids": p.label_ids,
        "scores": p.scores,
        "names": list(p.names),
        "start_s": p.start_s,
        "end_s": p.end_s,
        "capture_ns": p.capture_ns,
        "track_id": p.track_id,
    }


def encode(packet: Packet) -> list[Any]:
    """Turn a packet into message parts; the image part is the array itself (zero-copy).

    Raises:
        TransportError: If the packet holds something that cannot go on the wire.
    """
    try:
        if isinstance(packet, FramePacket):
            image = packet.image if packet.image.flags.c_contiguous else np.ascontiguousarray(packet.image)
            header = {
                "v": WIRE_VERSION,
                "k": "frame",
                "source_id": packet.source_id,
                "frame_idx": packet.frame_idx,
                "pts": packet.pts,
                "tb": [packet.time_base.numerator, packet.time_base.denominator],
                "capture_ns": packet.capture_ns,
                "shape": list(image.shape),
                "detections": _detections(packet.detections),
                "poses": None
                if packet.poses is None
                else {"keypoints": packet.poses.keypoints, "scores": packet.poses.scores},
                "predictions": [_prediction(p) for p in packet.predictions],
                "meta": packet.meta,
            }
            return [msgpack.packb(header, default=_default), image]
        if isinstance(packet, SourceEvent):
            header = {
                "v": WIRE_VERSION,
                "k": "event",
                "source_id": packet.source_id,
                "kind": packet.kind,
                "message": packet.message,
                "wall_time": packet.wall_time,
                "data": dict(packet.data),
            }
            return [msgpack.packb(header, default=_default)]
        if isinstance(packet, EndOfStream):
            header = {"v": WIRE_VERSION, "k": "eos", "source_id": packet.source_id, "error": packet.error}
            return [msgpack.packb(header, default=_default)]
    except (TypeError, ValueError) as exc:
        raise TransportError(f"cannot encode {type(packet).__name__}: {exc}") from exc
    raise TransportError(f"cannot encode {type(packet).__name__}: not a packet type")


def decode(parts: list[Any]) -> Packet:
    """Rebuild a packet from message parts (``bytes`` or ``zmq.Frame``).

    The returned image is a read-only view of the received buffer (no copy).

    Raises:
        TransportError: If the message is not in this wire format.
    """
    try:
        header = msgpack.unpackb(_as_bytes(parts[0]), ext_hook=_ext_hook, strict_map_key=False)
        if not isinstance(header, dict) or header.get("v") != WIRE_VERSION:
            raise ValueError(f"unknown wire version {header.get('v') if isinstance(header, dict) else header!r}")
        kind = header["k"]
        if kind == "frame":
            if len(parts) != 2:
                raise ValueError(f"a frame message has 2 parts, got {len(parts)}")
            buffer = parts[1].buffer if hasattr(parts[1], "buffer") else parts[1]
            image = np.frombuffer(buffer, dtype=np.uint8).reshape(header["shape"])
            image.flags.writeable = False  # inproc shares the sender's memory: never write into it
            det = header["detections"]
            poses = header["poses"]
            return FramePacket(
                image=image,
                source_id=header["source_id"],
                frame_idx=header["frame_idx"],
                pts=header["pts"],
                time_base=Fraction(*header["tb"]),
                capture_ns=header["capture_ns"],
                detections=None if det is None else Detections(**det),
                poses=None if poses is None else Poses(**poses),
                predictions=[Prediction(**p) for p in header["predictions"]],
                meta=header["meta"],
            )
        if kind == "event":
            return SourceEvent(
                source_id=header["source_id"],
                kind=header["kind"],
                message=header["message"],
                wall_time=header["wall_time"],
                data=header["data"],
            )
        if kind == "eos":
            return EndOfStream(source_id=header["source_id"], error=header["error"])
        raise ValueError(f"unknown message kind {kind!r}")
    except (KeyError, ValueError, TypeError, IndexError, msgpack.UnpackException) as exc:
        raise TransportError(f"malformed message on the wire: {exc}") from exc


def _as_bytes(part: Any) -> bytes:
    return part.bytes if hasattr(part, "bytes") else bytes(part)
