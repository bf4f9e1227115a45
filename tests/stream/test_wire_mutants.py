"""Wire behaviour that mutation testing found unchecked (docs/mutation.md).

A peer that sends a wrong message reads exactly what is wrong in the ``TransportError``; the
limits of the format (time bases, image sides, id lengths, header size) are accepted up to
and including the documented bound; what a frame may leave out decodes to empty defaults.
"""

from __future__ import annotations

import re
from fractions import Fraction

import msgpack
import numpy as np
import pytest

from stream.errors import TransportError
from stream.packet import EndOfStream, FramePacket, Prediction, SourceEvent
from stream.wire import (
    MAX_HEADER_BYTES,
    MAX_ID_CHARS,
    MAX_IMAGE_SIDE,
    MAX_TIME_BASE_S,
    MAX_TIME_BASE_TERM,
    WIRE_VERSION,
    decode,
    encode,
)

MALFORMED = "malformed message on the wire: "


def frame_parts(*, height: int = 2, width: int = 3, **fields: object) -> list:
    """A frame message whose header fields (by name) are replaced by ``fields``."""
    header = {
        "source_id": "cam",
        "frame_idx": 1,
        "pts": 1,
        "tb_num": 1,
        "tb_den": 25,
        "capture_ns": 0,
        "height": height,
        "width": width,
        "extras": None,
    }
    header.update(fields)
    pixels = b"\x00" * (max(int(height), 0) * max(int(width), 0) * 3) if isinstance(height, int) else b""
    return [msgpack.packb([WIRE_VERSION, "f", *header.values()]), pixels]


def refused(parts: list, message: str) -> None:
    with pytest.raises(TransportError, match="^" + re.escape(MALFORMED + message) + "$"):
        decode(parts)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"source_id": ""}, f"source_id: expected a non-empty text of at most {MAX_ID_CHARS} characters"),
        ({"source_id": 5}, f"source_id: expected a non-empty text of at most {MAX_ID_CHARS} characters"),
        (
            {"source_id": "c" * (MAX_ID_CHARS + 1)},
            f"source_id: expected a non-empty text of at most {MAX_ID_CHARS} characters",
        ),
        ({"frame_idx": "1"}, "frame_idx: expected a number, got str"),
        ({"pts": float("nan")}, "pts: expected a number, got float"),
        ({"capture_ns": float("inf")}, "capture_ns: expected a number, got float"),
        ({"height": 0}, f"height: expected 1..{MAX_IMAGE_SIDE} pixels, got 0"),
        ({"width": MAX_IMAGE_SIDE + 1}, f"width: expected 1..{MAX_IMAGE_SIDE} pixels, got {MAX_IMAGE_SIDE + 1}"),
        ({"extras": [1]}, "frame extras: expected a map, got list"),
        ({"tb_num": 1.0}, "time base: expected two integers, got 1.0/25"),
        ({"tb_num": 0}, f"time base 0/25: expected a positive fraction of at most {MAX_TIME_BASE_S:g} s"),
        ({"tb_num": -1, "tb_den": 1}, f"time base -1/1: expected a positive fraction of at most {MAX_TIME_BASE_S:g} s"),
        ({"tb_den": 0}, f"time base 1/0: expected a positive fraction of at most {MAX_TIME_BASE_S:g} s"),
        ({"tb_num": 61, "tb_den": 1}, f"time base 61/1: expected a positive fraction of at most {MAX_TIME_BASE_S:g} s"),
    ],
)
def test_a_frame_header_with_one_bad_field_says_which(fields: dict, message: str) -> None:
    refused(frame_parts(**fields), message)


def test_a_float_time_base_is_refused_even_after_its_integer_twin_was_seen() -> None:
    assert decode(frame_parts(tb_num=1, tb_den=25)).time_base == Fraction(1, 25)
    refused(frame_parts(tb_num=1.0, tb_den=25), "time base: expected two integers, got 1.0/25")
    refused(frame_parts(tb_num=1, tb_den=25.0), "time base: expected two integers, got 1/25.0")


@pytest.mark.parametrize(
    ("num", "den"),
    [(1, 1), (int(MAX_TIME_BASE_S), 1), (MAX_TIME_BASE_TERM, MAX_TIME_BASE_TERM), (1, MAX_TIME_BASE_TERM)],
)
def test_time_bases_up_to_the_limits_are_accepted(num: int, den: int) -> None:
    assert decode(frame_parts(tb_num=num, tb_den=den)).time_base == Fraction(num, den)


@pytest.mark.parametrize(("height", "width"), [(1, 1), (MAX_IMAGE_SIDE, 1), (1, MAX_IMAGE_SIDE)])
def test_image_sides_up_to_the_limit_are_accepted(height: int, width: int) -> None:
    assert decode(frame_parts(height=height, width=width)).image.shape == (height, width, 3)


def test_float_stream_times_and_longest_source_id_are_accepted() -> None:
    packet = decode(frame_parts(pts=1.5, capture_ns=2.0, source_id="c" * MAX_ID_CHARS))
    assert isinstance(packet, FramePacket) and packet.pts == 1.5 and packet.source_id == "c" * MAX_ID_CHARS


def test_a_decoded_image_is_read_only_even_from_a_writable_buffer() -> None:
    header, pixels = frame_parts()
    packet = decode([header, bytearray(pixels)])
    assert isinstance(packet, FramePacket) and not packet.image.flags.writeable


def test_parts_counts_are_checked() -> None:
    refused([], "expected 1 or 2 message parts, got 0")
    refused([*frame_parts(), b""], "expected 1 or 2 message parts, got 3")
    refused(frame_parts()[:1], "a frame message has 2 parts, got 1")


def test_a_header_of_exactly_the_limit_decodes_and_one_byte_more_is_refused() -> None:
    def event_parts(size: int) -> list:
        pad = size - len(msgpack.packb([WIRE_VERSION, "e", "cam", "error", "x" * 70000, 0.0, {}])) + 70000
        return [msgpack.packb([WIRE_VERSION, "e", "cam", "error", "x" * pad, 0.0, {}])]

    parts = event_parts(MAX_HEADER_BYTES)
    assert len(parts[0]) == MAX_HEADER_BYTES
    assert isinstance(decode(parts), SourceEvent)
    too_big = event_parts(MAX_HEADER_BYTES + 1)
    refused(too_big, f"a {MAX_HEADER_BYTES + 1}-byte header (at most {MAX_HEADER_BYTES})")


def test_event_data_with_integer_keys_and_numpy_values_round_trips() -> None:
    event = SourceEvent("cam", "error", "counts", 1.5, {1: "one", "score": np.float32(0.5)})
    back = decode(encode(event))
    assert isinstance(back, SourceEvent) and dict(back.data) == {1: "one", "score": 0.5}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (["e", "cam", "bogus", "m", 0.0, {}], "unknown event kind 'bogus'"),
        (["e", "cam", "error", 5, 0.0, {}], "event: expected a text message, a numeric wall_time and a data map"),
        (["e", "cam", "error", "m", 0.0, []], "event: expected a text message, a numeric wall_time and a data map"),
        (["e", "cam", "error", "m", "now", {}], "event: expected a text message, a numeric wall_time and a data map"),
        (
            ["e", "", "error", "m", 0.0, {}],
            f"source_id: expected a non-empty text of at most {MAX_ID_CHARS} characters",
        ),
        (["x", "cam", 5], "end-of-stream error: expected text or nil, got int"),
        (["x", "", None], f"source_id: expected a non-empty text of at most {MAX_ID_CHARS} characters"),
    ],
)
def test_bad_events_and_end_of_stream_markers_say_what_is_wrong(header: list, message: str) -> None:
    refused([msgpack.packb([WIRE_VERSION, *header])], message)


def test_an_unknown_msgpack_extension_is_named() -> None:
    header = msgpack.packb([WIRE_VERSION, "e", "cam", "error", "m", 0.0, {"a": msgpack.ExtType(5, b"")}])
    refused([header], "unknown msgpack extension 5")


def test_what_cannot_be_encoded_is_named() -> None:
    image = np.zeros((2, 3, 3), np.uint8)
    packet = FramePacket(image, "cam", 0, 0, Fraction(1, 25), 0, meta={"tags": {1, 2}})
    with pytest.raises(TransportError, match=r"^cannot encode FramePacket: cannot put set on the wire$"):
        encode(packet)
    with pytest.raises(TransportError, match=r"^cannot encode int: not a packet type$"):
        encode(42)  # type: ignore[arg-type]


def test_extras_a_frame_leaves_out_decode_to_empty_defaults() -> None:
    image = np.zeros((2, 3, 3), np.uint8)
    with_meta = FramePacket(image, "cam", 0, 0, Fraction(1, 25), 0, meta={"k": 1})
    back = decode(encode(with_meta))
    assert isinstance(back, FramePacket) and back.predictions == [] and back.meta == {"k": 1}
    prediction = Prediction(np.array([0]), np.array([0.9]), ("wave",), 0.0, 1.0, 0)
    with_prediction = FramePacket(image, "cam", 0, 0, Fraction(1, 25), 0, predictions=[prediction])
    back = decode(encode(with_prediction))
    assert isinstance(back, FramePacket) and back.meta == {} and back.predictions[0].names == ("wave",)


def test_end_of_stream_round_trips_with_and_without_an_error() -> None:
    for error in (None, "camera lost"):
        back = decode(encode(EndOfStream("cam", error)))
        assert isinstance(back, EndOfStream) and back.error == error
