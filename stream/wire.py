"""Wire format of packets on ZeroMQ sockets: a msgpack header plus raw image bytes.

A frame travels as two message parts, ``[header, pixels]``: the header is a small
msgpack array (never pickle), the pixels the image's buffer sent without copying.
Events and end-of-stream markers are a single header part. Numpy arrays inside the
header (boxes, keypoints, scores) are encoded as ``{dtype, shape, bytes}``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, get_args

import msgpack
import numpy as np

from stream.errors import TransportError
from stream.packet import Detections, EndOfStream, EventKind, FramePacket, Packet, Prediction, SourceEvent

WIRE_VERSION = 3  # 3: keypoints ride in the detections (2 had a separate poses entry; 1 had maps)
_ND_EXT = 1  # msgpack extension code of a numpy array: packed [dtype, shape, bytes]

# What a received header may hold: anything else is a malformed message (TransportError),
# whoever sent it. Remote peers are not trusted to send sane values (docs/security.md).
MAX_HEADER_BYTES = 4 << 20  # a header with thousands of boxes and keypoints is well under this
MAX_ID_CHARS = 256  # source ids and event kinds
MAX_IMAGE_SIDE = 16384  # pixels
MAX_TIME_BASE_TERM = 2**31 - 1  # numerator / denominator, as FFmpeg's AVRational
MAX_TIME_BASE_S = 60.0  # seconds per pts tick; 1/90000 ... 1 s are what containers use
_EVENT_KINDS = frozenset(get_args(EventKind))


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
    out = {"xyxy": d.xyxy, "scores": d.scores, "labels": d.labels, "track_ids": d.track_ids, "data": d.data}
    if d.keypoints is not None:
        out["keypoints"] = d.keypoints
    return out


def _prediction(p: Prediction) -> dict[str, Any]:
    return {
        "label_ids": p.label_ids,
        "scores": p.scores,
        "names": list(p.names),
        "start_s": p.start_s,
        "end_s": p.end_s,
        "capture_ns": p.capture_ns,
        "track_id": p.track_id,
        "box": p.box,
        "multi_label": p.multi_label,
    }


def _frame_extras(packet: FramePacket) -> dict[str, Any] | None:
    """What stages attached to a frame, or None for a bare frame (the common, fast case)."""
    extras: dict[str, Any] = {}
    if packet.detections is not None:
        extras["detections"] = _detections(packet.detections)
    if packet.predictions:
        extras["predictions"] = [_prediction(p) for p in packet.predictions]
    if packet.meta:
        extras["meta"] = packet.meta
    return extras or None


def encode(packet: Packet) -> list[Any]:
    """Turn a packet into message parts; the image part is the array itself (zero-copy).

    Headers are msgpack arrays with fixed positions (cheaper to pack and parse than maps):
    ``[version, "f", source_id, frame_idx, pts, tb_num, tb_den, capture_ns, height, width,
    extras]`` for a frame, ``[version, "e", source_id, kind, message, wall_time, data]`` for
    an event, ``[version, "x", source_id, error]`` for end-of-stream.

    Raises:
        TransportError: If the packet holds something that cannot go on the wire.
    """
    try:
        if type(packet) is FramePacket:
            image = packet.image if packet.image.flags.c_contiguous else np.ascontiguousarray(packet.image)
            tb = packet.time_base
            header = [
                WIRE_VERSION, "f", packet.source_id, packet.frame_idx, packet.pts, tb.numerator, tb.denominator,
                packet.capture_ns, image.shape[0], image.shape[1], _frame_extras(packet),
            ]  # fmt: skip
            return [msgpack.packb(header, default=_default), image]
        if isinstance(packet, SourceEvent):
            header = [
                WIRE_VERSION, "e", packet.source_id, packet.kind, packet.message, packet.wall_time, dict(packet.data),
            ]  # fmt: skip
            return [msgpack.packb(header, default=_default)]
        if isinstance(packet, EndOfStream):
            return [msgpack.packb([WIRE_VERSION, "x", packet.source_id, packet.error])]
    except (TypeError, ValueError) as exc:
        raise TransportError(f"cannot encode {type(packet).__name__}: {exc}") from exc
    raise TransportError(f"cannot encode {type(packet).__name__}: not a packet type")


_TIME_BASES: dict[tuple[int, int], Fraction] = {}  # a stream has one time base: build its Fraction once


def _time_base(num: Any, den: Any) -> Fraction:
    tb = _TIME_BASES.get((num, den)) if type(num) is int and type(den) is int else None
    if tb is None:
        if type(num) is not int or type(den) is not int:
            raise ValueError(f"time base: expected two integers, got {num!r}/{den!r}")
        if not (0 < num <= MAX_TIME_BASE_TERM and 0 < den <= MAX_TIME_BASE_TERM) or num / den > MAX_TIME_BASE_S:
            raise ValueError(f"time base {num}/{den}: expected a positive fraction of at most {MAX_TIME_BASE_S:g} s")
        tb = Fraction(num, den)
        if len(_TIME_BASES) < 1024:
            _TIME_BASES[(num, den)] = tb
    return tb


def decode(parts: list[Any]) -> Packet:
    """Rebuild a packet from message parts (``bytes`` or ``zmq.Frame``).

    The returned image is a read-only view of the received buffer (no copy).

    Raises:
        TransportError: If the message is not in this wire format.
    """
    try:
        if not parts or len(parts) > 2:
            raise ValueError(f"expected 1 or 2 message parts, got {len(parts)}")
        raw = _as_bytes(parts[0])
        if len(raw) > MAX_HEADER_BYTES:
            raise ValueError(f"a {len(raw)}-byte header (at most {MAX_HEADER_BYTES})")
        header = msgpack.unpackb(raw, ext_hook=_ext_hook, strict_map_key=False)
        if type(header) is not list or not header or header[0] != WIRE_VERSION:
            version = header[0] if type(header) is list and header else None
            if isinstance(header, dict):  # version 1 sent maps
                version = header.get("v")
            raise ValueError(f"unknown wire version {version!r} (this side speaks version {WIRE_VERSION})")
        kind = header[1]
        if kind == "f":
            if len(parts) != 2:
                raise ValueError(f"a frame message has 2 parts, got {len(parts)}")
            _, _, source_id, frame_idx, pts, tb_num, tb_den, capture_ns, height, width, extras = header
            _check_id(source_id, "source_id")
            for label, value in (("frame_idx", frame_idx), ("pts", pts), ("capture_ns", capture_ns)):
                if type(value) is not int and not (type(value) is float and math.isfinite(value)):
                    raise ValueError(f"{label}: expected a number, got {type(value).__name__}")
            for label, value in (("height", height), ("width", width)):
                if type(value) is not int or not 0 < value <= MAX_IMAGE_SIDE:
                    raise ValueError(f"{label}: expected 1..{MAX_IMAGE_SIDE} pixels, got {value!r}")
            if extras is not None and not isinstance(extras, dict):
                raise ValueError(f"frame extras: expected a map, got {type(extras).__name__}")
            buffer = parts[1].buffer if hasattr(parts[1], "buffer") else parts[1]
            nbytes = memoryview(buffer).nbytes
            if nbytes != height * width * 3:
                raise ValueError(f"{nbytes} pixel bytes for a {width}x{height} BGR frame")
            image = np.ndarray((height, width, 3), np.uint8, buffer)
            image.flags.writeable = False  # inproc shares the sender's memory: never write into it
            packet = FramePacket(image, source_id, frame_idx, pts, _time_base(tb_num, tb_den), capture_ns)
            if extras:
                det = extras.get("detections")
                packet.detections = None if det is None else Detections(**det)
                packet.predictions = [Prediction(**p) for p in extras.get("predictions", ())]
                packet.meta = extras.get("meta", {})
            return packet
        if kind == "e":
            _, _, source_id, event_kind, message, wall_time, data = header
            _check_id(source_id, "source_id")
            if event_kind not in _EVENT_KINDS:
                raise ValueError(f"unknown event kind {str(event_kind)[:MAX_ID_CHARS]!r}")
            if not isinstance(message, str) or not isinstance(data, dict) or type(wall_time) not in (int, float):
                raise ValueError("event: expected a text message, a numeric wall_time and a data map")
            return SourceEvent(source_id=source_id, kind=event_kind, message=message, wall_time=wall_time, data=data)
        if kind == "x":
            _, _, source_id, error = header
            _check_id(source_id, "source_id")
            if error is not None and not isinstance(error, str):
                raise ValueError(f"end-of-stream error: expected text or nil, got {type(error).__name__}")
            return EndOfStream(source_id=source_id, error=error)
        raise ValueError(f"unknown message kind {kind!r}")
    except (
        KeyError,
        ValueError,
        TypeError,
        IndexError,
        ZeroDivisionError,
        OverflowError,
        msgpack.UnpackException,
    ) as exc:
        raise TransportError(f"malformed message on the wire: {exc}") from exc


def _check_id(value: Any, label: str) -> None:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise ValueError(f"{label}: expected a non-empty text of at most {MAX_ID_CHARS} characters")


def _as_bytes(part: Any) -> bytes:
    return part.bytes if hasattr(part, "bytes") else bytes(part)
