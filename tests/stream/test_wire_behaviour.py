"""Wire messages in the current format that are wrong in one way only are refused.

The older tests feed version-1 map headers, which fail before the current format's checks
are reached; these start from a real encoded frame and change one thing.
"""

from __future__ import annotations

from fractions import Fraction

import msgpack
import numpy as np
import pytest
import zmq

from stream.errors import TransportError
from stream.packet import EndOfStream, FramePacket
from stream.wire import WIRE_VERSION, decode, encode


def frame() -> FramePacket:
    image = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    return FramePacket(image, "cam0", 7, 3003, Fraction(1, 90000), 123456789)


def with_version(parts: list, version: object) -> list:
    header = msgpack.unpackb(parts[0], strict_map_key=False)
    header[0] = version
    return [msgpack.packb(header), *parts[1:]]


def test_a_current_frame_message_decodes() -> None:  # the baseline the cases below change
    back = decode(encode(frame()))
    assert isinstance(back, FramePacket) and back.frame_idx == 7


@pytest.mark.parametrize("extra", [b"", b"more pixels", b"\x00" * (6 * 8 * 3)])
def test_a_frame_message_with_an_extra_part_is_refused(extra: bytes) -> None:
    with pytest.raises(TransportError, match=r"message parts|2 parts"):
        decode([*encode(frame()), extra])


@pytest.mark.parametrize("version", [WIRE_VERSION - 1, WIRE_VERSION + 1, 0, "3", None])
@pytest.mark.parametrize("packet", [frame(), EndOfStream("cam0")], ids=["frame", "end-of-stream"])
def test_a_current_format_header_with_another_version_is_refused(packet: object, version: object) -> None:
    with pytest.raises(TransportError, match="unknown wire version"):
        decode(with_version(encode(packet), version))  # type: ignore[arg-type]


def test_over_a_real_socket_only_the_well_formed_message_gets_through() -> None:
    ctx = zmq.Context.instance()
    push, pull = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    try:
        pull.bind("inproc://wire-behaviour")
        push.connect("inproc://wire-behaviour")
        parts = encode(frame())
        for message in ([*parts, b"x"], with_version(parts, WIRE_VERSION + 1), parts):
            push.send_multipart(message, copy=False)
        received = [pull.recv_multipart(copy=False) for _ in range(3)]
    finally:
        push.close(0)
        pull.close(0)
    for message in received[:2]:
        with pytest.raises(TransportError):
            decode(message)
    back = decode(received[2])
    assert isinstance(back, FramePacket)
    np.testing.assert_array_equal(back.image, frame().image)
