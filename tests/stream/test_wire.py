from fractions import Fraction

import numpy as np
import pytest

from stream.errors import TransportError
from stream.packet import Detections, EndOfStream, FramePacket, Prediction, SourceEvent
from stream.wire import decode, encode


def _frame(**extra: object) -> FramePacket:
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    return FramePacket(image, "cam0", 7, 3003, Fraction(1, 90000), 123456789, **extra)  # type: ignore[arg-type]


def test_frame_round_trip_keeps_every_field() -> None:
    keypoints = np.random.default_rng(1).random((1, 17, 3)).astype(np.float32)
    det = Detections(
        np.array([[1, 2, 30, 40]]), np.array([0.9]), np.array([0]), np.array([5]), {"area": np.ones(1)}, keypoints
    )
    pred = Prediction(np.array([3, 1]), np.array([0.7, 0.2]), ("wave", "clap"), 0.5, 1.5, 99, track_id=5)
    packet = _frame(detections=det, predictions=[pred], meta={"fps": 29.97})
    back = decode(encode(packet))
    assert isinstance(back, FramePacket)
    np.testing.assert_array_equal(back.image, packet.image)
    assert (back.source_id, back.frame_idx, back.pts, back.time_base, back.capture_ns) == (
        "cam0",
        7,
        3003,
        Fraction(1, 90000),
        123456789,
    )
    assert back.detections is not None and back.detections.track_ids is not None
    np.testing.assert_array_equal(back.detections.xyxy, det.xyxy)
    np.testing.assert_array_equal(back.detections.data["area"], np.ones(1))
    assert back.detections.keypoints is not None
    np.testing.assert_array_equal(back.detections.keypoints, keypoints)
    assert back.predictions[0].names == ("wave", "clap") and back.predictions[0].track_id == 5
    assert back.meta == {"fps": 29.97}
    assert back.time_s == pytest.approx(3003 / 90000)


def test_image_is_sent_without_copy() -> None:
    packet = _frame()
    parts = encode(packet)
    assert parts[1] is packet.image  # the pixels go to ZeroMQ as the array itself
    assert len(parts[0]) < 512  # the header stays small


def test_non_contiguous_image_is_made_contiguous() -> None:
    packet = _frame()
    packet.image = np.ascontiguousarray(packet.image)[:, ::2]
    back = decode(encode(packet))
    assert isinstance(back, FramePacket)
    np.testing.assert_array_equal(back.image, packet.image)


@pytest.mark.parametrize(
    "packet",
    [
        SourceEvent("cam", "disconnected", "lost", 1.5, {"attempt": 2}),
        SourceEvent("cam", "track_lost", "track 3 lost", 2.5, {"track_id": 3, "box": [1.0, 2.0, 3.0, 4.0]}),
        EndOfStream("cam", error="boom"),
        EndOfStream("x"),
    ],
)
def test_control_packets_round_trip(packet: object) -> None:
    back = decode(encode(packet))  # type: ignore[arg-type]
    assert type(back) is type(packet) and vars(back) == vars(packet)


@pytest.mark.parametrize(
    "parts, match",
    [
        ([b"\x00garbage"], "malformed"),
        ([b"\x81\xa1v\x63"], "unknown wire version 99"),
        ([b"\x82\xa1v\x01\xa1k\xa5frame"], "unknown wire version 1"),  # a version-1 peer
        ([b"\x92\x02\xa1x"], "unknown wire version 2"),  # a version-2 peer (separate poses)
        ([b"\x92\x03\xa3zzz"], "unknown message kind"),
        ([b"\x93\x03\xa1f\x00", b"x"], "malformed"),  # a frame header cut short
        ([b"\x9b\x03\xa1f\xa1c\x00\x00\x01\x1e\x00\x02\x02\xc0", b"x" * 13], "13 pixel bytes for a 2x2"),
    ],
)
def test_malformed_messages_raise_transport_error(parts: list[bytes], match: str) -> None:
    with pytest.raises(TransportError, match=match):
        decode(parts)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image": np.zeros((4, 4), np.uint8)}, "H×W×3 uint8"),
        ({"image": np.zeros((4, 4, 3), np.float32)}, "H×W×3 uint8"),
        ({"time_base": Fraction(0)}, "positive"),
    ],
)
def test_invalid_packets_are_rejected(kwargs: dict, match: str) -> None:
    base = dict(
        image=np.zeros((4, 4, 3), np.uint8), source_id="s", frame_idx=0, pts=0, time_base=Fraction(1, 25), capture_ns=0
    )
    with pytest.raises(ValueError, match=match):
        FramePacket(**{**base, **kwargs})


def test_detections_validate_and_index() -> None:
    det = Detections(np.array([[0, 0, 1, 1], [2, 2, 3, 3]]), np.array([0.2, 0.9]), np.array([0, 0]))
    assert len(det[det.scores > 0.5]) == 1 and len(Detections.empty()) == 0
    with pytest.raises(ValueError, match="expected 2 rows"):
        Detections(det.xyxy, np.array([0.1]), det.labels)


def test_per_person_multi_label_prediction_round_trip() -> None:
    pred = Prediction(
        np.array([11, 4, 79]), np.array([0.9, 0.6, 0.31]), ("stand", "talk", "watch"), 1.0, 2.0, 7,
        track_id=3, box=np.array([10.5, 20, 110, 220]), multi_label=True,
    )  # fmt: skip
    back = decode(encode(_frame(predictions=[pred])))
    assert isinstance(back, FramePacket)
    got = back.predictions[0]
    assert got.multi_label and got.track_id == 3 and got.names == ("stand", "talk", "watch")
    np.testing.assert_array_equal(got.box, np.array([10.5, 20, 110, 220], np.float32))
    assert got.to_json()["box"] == [10.5, 20.0, 110.0, 220.0] and got.to_json()["multi_label"] is True
    with pytest.raises(ValueError, match=r"Prediction\.box"):
        Prediction(np.array([1]), np.array([0.5]), ("a",), 0, 1, 0, box=np.array([1, 2, 3]))


def test_keypoints_are_validated_and_kept_with_their_rows() -> None:
    keypoints = np.arange(2 * 17 * 3, dtype=np.float32).reshape(2, 17, 3)
    boxes = np.array([[0, 0, 1, 1], [2, 2, 3, 3]])
    det = Detections(boxes, np.array([0.2, 0.9]), np.array([0, 0]), keypoints=keypoints)
    kept = det[det.scores > 0.5]
    assert kept.keypoints is not None and kept.keypoints.shape == (1, 17, 3)
    np.testing.assert_array_equal(kept.keypoints[0], keypoints[1])
    assert det[np.zeros(2, bool)].keypoints is not None  # no rows, still (0, 17, 3)
    with pytest.raises(ValueError, match=r"expected shape \(N, K, 3\)"):
        Detections(det.xyxy, det.scores, det.labels, keypoints=np.zeros((2, 17, 2)))
    with pytest.raises(ValueError, match="expected 2 rows"):
        Detections(det.xyxy, det.scores, det.labels, keypoints=np.zeros((1, 17, 3)))
