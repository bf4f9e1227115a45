"""Per-key sequence buffers: created on first sight, freed with their track or source, bounded."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ConfigError
from pipelines.sequences import SequenceBuffers


def keypoints(value: float) -> np.ndarray:
    return np.full((17, 3), value, np.float32)  # 204 bytes


def test_each_person_has_its_own_window_in_time_order() -> None:
    buffers: SequenceBuffers[np.ndarray] = SequenceBuffers(capacity=3)
    for i in range(5):
        buffers.push(("cam", 1), i / 10, i, keypoints(i))
        if i % 2 == 0:
            buffers.push(("cam", 2), i / 10, i, keypoints(100 + i))
    one = buffers[("cam", 1)].last(3)
    assert [s.frame_idx for s in one] == [2, 3, 4]
    assert [float(s.item[0, 0]) for s in one] == [2.0, 3.0, 4.0]
    assert [s.frame_idx for s in buffers[("cam", 2)].last(10)] == [0, 2, 4]
    assert buffers.bytes == 6 * 204


def test_track_end_and_source_end_free_memory() -> None:
    buffers: SequenceBuffers[np.ndarray] = SequenceBuffers(capacity=4)
    for track in (1, 2, 3):
        buffers.push(("a", track), 0.0, 0, keypoints(track))
    buffers.push(("b", 1), 0.0, 0, keypoints(9))
    buffers.push("c", 0.0, 0, keypoints(9))  # whole-frame key
    assert buffers.end(("a", 2)) and not buffers.end(("a", 2))
    assert buffers.end_source("a") == 2
    assert buffers.end_source("c") == 1
    assert list(buffers) == [("b", 1)]
    assert buffers.bytes == 204


def test_key_and_byte_limits_evict_the_least_recently_fed() -> None:
    buffers: SequenceBuffers[np.ndarray] = SequenceBuffers(capacity=10, max_keys=3, max_bytes=5 * 204)
    for track in range(5):
        buffers.push(("cam", track), 0.0, 0, keypoints(track))
    assert list(buffers) == [("cam", 2), ("cam", 3), ("cam", 4)]
    assert buffers.evicted == 2
    buffers.push(("cam", 2), 0.1, 1, keypoints(2))  # 2 becomes the most recent
    buffers.push(("cam", 2), 0.2, 2, keypoints(2))
    buffers.push(("cam", 2), 0.3, 3, keypoints(2))  # 6 arrays > 5: the least recent (3) goes
    assert ("cam", 3) not in buffers and ("cam", 2) in buffers
    assert buffers.bytes <= 5 * 204
    for i in range(4, 20):  # one key alone past the byte limit keeps only what fits
        buffers.push(("cam", 2), i / 10, i, keypoints(2))
    assert list(buffers) == [("cam", 2)]
    assert buffers.bytes == len(buffers[("cam", 2)]) * 204 <= 5 * 204


def test_time_going_back_restarts_a_sequence() -> None:
    buffers: SequenceBuffers[int] = SequenceBuffers(capacity=5)
    for t in (0.0, 0.1, 0.2, 0.05):
        buffers.push(("cam", 1), t, int(t * 100), 0)
    buffer = buffers[("cam", 1)]
    assert [s.time_s for s in buffer] == [0.05] and buffer.resets == 1


@pytest.mark.parametrize("kwargs", [{"capacity": 0}, {"capacity": 2, "max_keys": 0}, {"capacity": 2, "max_bytes": -1}])
def test_bad_limits(kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        SequenceBuffers(**kwargs)
