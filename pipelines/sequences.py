"""Per-key sequence buffers with a lifecycle: who it belongs to, when it is freed, how big it may grow.

Per-person models need the recent history of each person: skeleton recognizers a window of
keypoint arrays, spatio-temporal detectors a window of crops or boxes. :class:`SequenceBuffers`
keeps one bounded, time-ordered :class:`SequenceBuffer` per key — ``(source_id, track_id)`` for a
person, ``(source_id, None)`` for a whole frame — and

* creates it on the key's first item,
* frees it when the track ends (:meth:`SequenceBuffers.end`, on ``track_lost``) or its source
  disconnects or ends (:meth:`SequenceBuffers.end_source`),
* bounds the number of keys (``max_keys``) and the bytes held (``max_bytes``): past either, the
  least recently fed keys are evicted (counted in :attr:`SequenceBuffers.evicted`), so a crowd or
  a flood of spurious tracks cannot grow memory without bound.

Items are any objects; numpy arrays are counted by ``nbytes`` (others as 0 bytes unless a
``size_of`` function is given). Buffers are not thread-safe: one stage thread owns them.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from core.errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")
#: A buffer's key: ``(source_id, track_id)``; ``track_id`` is None for whole-frame models.
Key = tuple[str, Hashable]


def nbytes(item: object) -> int:
    """Bytes held by an item: ``nbytes`` of numpy arrays (also inside tuples / lists), else 0."""
    if isinstance(item, np.ndarray):
        return int(item.nbytes)
    if isinstance(item, (tuple, list)):
        return sum(nbytes(x) for x in item)
    return 0


@dataclass(frozen=True)
class Stamped(Generic[T]):
    """One item and where it lies in its stream."""

    time_s: float
    frame_idx: int
    item: T


class SequenceBuffer(Generic[T]):
    """The newest ``capacity`` items of one key, in stream-time order.

    A stream time that goes backwards (a looping file, a restarted camera) empties it first.
    """

    def __init__(self, key: Hashable, capacity: int, size_of: Callable[[object], int] = nbytes) -> None:
        if capacity < 1:
            raise ConfigError(f"SequenceBuffer.capacity: expected >= 1, got {capacity}")
        self.key = key
        self.capacity = capacity
        self._size_of = size_of
        self._items: deque[Stamped[T]] = deque()
        self.bytes = 0
        #: Items pushed since creation (also those dropped since).
        self.pushed = 0
        #: Times the stream time went backwards and the buffer was emptied.
        self.resets = 0

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Stamped[T]]:
        return iter(self._items)

    def push(self, time_s: float, frame_idx: int, item: T) -> None:
        """Append an item; the oldest is dropped past ``capacity``."""
        if self._items and time_s < self._items[-1].time_s:
            self.resets += 1
            self.clear()
        self._items.append(Stamped(time_s, frame_idx, item))
        self.bytes += self._size_of(item)
        self.pushed += 1
        while len(self._items) > self.capacity:
            self.bytes -= self._size_of(self._items.popleft().item)

    def last(self, count: int) -> list[Stamped[T]]:
        """The newest ``count`` items, oldest first (fewer if the buffer holds fewer)."""
        if count <= 0:
            return []
        return list(self._items)[-count:]

    def drop_oldest(self) -> None:
        if self._items:
            self.bytes -= self._size_of(self._items.popleft().item)

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0

    @property
    def newest_time_s(self) -> float | None:
        return self._items[-1].time_s if self._items else None


class SequenceBuffers(Generic[T]):
    """One :class:`SequenceBuffer` per key, created on first sight and freed with its track or source.

    Args:
        capacity: Items kept per key.
        max_keys: Most keys held at once; past it the least recently fed key is evicted.
        max_bytes: Most bytes held in all; past it least recently fed keys are evicted (never
            the key just fed) and, if it alone exceeds the limit, its oldest items are dropped.
        size_of: Bytes of one item (default: numpy ``nbytes``).

    Raises:
        ConfigError: For non-positive limits.
    """

    def __init__(
        self,
        capacity: int,
        *,
        max_keys: int = 256,
        max_bytes: int = 512 * 1024 * 1024,
        size_of: Callable[[object], int] = nbytes,
    ) -> None:
        for name, value in (("capacity", capacity), ("max_keys", max_keys), ("max_bytes", max_bytes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"SequenceBuffers.{name}: expected a positive int, got {value!r}")
        self.capacity = capacity
        self.max_keys = max_keys
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._buffers: OrderedDict[Hashable, SequenceBuffer[T]] = OrderedDict()  # least recently fed first
        self.bytes = 0
        #: Keys evicted for the limits (not ended by their track or source).
        self.evicted = 0
        #: Keys created so far.
        self.created = 0

    def __len__(self) -> int:
        return len(self._buffers)

    def __contains__(self, key: object) -> bool:
        return key in self._buffers

    def __iter__(self) -> Iterator[Hashable]:
        return iter(list(self._buffers))

    def __getitem__(self, key: Hashable) -> SequenceBuffer[T]:
        try:
            return self._buffers[key]
        except KeyError:
            raise KeyError(f"no sequence buffer for {key!r}; {len(self._buffers)} keys held") from None

    def push(self, key: Hashable, time_s: float, frame_idx: int, item: T) -> SequenceBuffer[T]:
        """Append ``item`` to ``key``'s buffer (created on first sight); returns that buffer."""
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = SequenceBuffer[T](key, self.capacity, self._size_of)
            self._buffers[key] = buffer
            self.created += 1
        else:
            self._buffers.move_to_end(key)
        before = buffer.bytes
        buffer.push(time_s, frame_idx, item)
        self.bytes += buffer.bytes - before
        self._enforce(key)
        return buffer

    def end(self, key: Hashable) -> bool:
        """Free ``key``'s buffer (its track ended). Returns whether it existed."""
        buffer = self._buffers.pop(key, None)
        if buffer is None:
            return False
        self.bytes -= buffer.bytes
        return True

    def end_source(self, source_id: str) -> int:
        """Free every buffer of ``source_id`` (keys ``(source_id, ...)`` or ``source_id``). Returns how many."""
        keys = [k for k in self._buffers if k == source_id or (isinstance(k, tuple) and k and k[0] == source_id)]
        for key in keys:
            self.end(key)
        return len(keys)

    def _enforce(self, fed: Hashable) -> None:
        while len(self._buffers) > self.max_keys or self.bytes > self.max_bytes:
            oldest = next(iter(self._buffers))
            if oldest == fed:  # only the key just fed is left over the byte limit: trim it instead
                buffer = self._buffers[fed]
                while self.bytes > self.max_bytes and len(buffer) > 1:
                    before = buffer.bytes
                    buffer.drop_oldest()
                    self.bytes -= before - buffer.bytes
                return
            self.end(oldest)
            self.evicted += 1
            log.debug("sequence buffer %r evicted (limits: %d keys, %d bytes)", oldest, self.max_keys, self.max_bytes)

    def metrics(self) -> dict[str, int]:
        return {"keys": len(self._buffers), "bytes": self.bytes, "evicted": self.evicted, "created": self.created}
