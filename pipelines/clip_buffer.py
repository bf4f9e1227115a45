"""Per-source ring buffers of frames in stream time, and the policy that says when a clip is due.

A :class:`ClipBuffer` holds the newest *window* of one source: ``window_frames``
consecutive frame slots at the stream's frame rate, ending at the newest frame
(``ClipSpec.window_frames`` by default: ``clip_len × frame_interval × num_clips``, so a
SlowOnly 8x8x1 window is 64 frames and TSN 1x1x8 takes 8 consecutive frames as
MMAction2's webcam demo does). Time comes from the packets' ``pts × time_base``, never
from the wall clock, so a file pushed faster than real time yields the same clips as the
live stream would.

* **Slots and gaps.** Slot ``j`` of the window lies at ``t_newest - (W - 1 - j) × period``;
  it takes the frame nearest to that time within half a period (ties: the earlier one),
  else the last frame before it. A dropped frame (a jump in ``pts``) therefore leaves
  its slot to the frame before it, and the sampled clip keeps its timing. A gap longer
  than ``max_gap_s`` (default: the window's duration) empties the buffer instead.
* **Timestamp resets.** ``pts`` going backwards (a looping file, a restarted camera)
  empties the buffer; the first reset is logged as a warning, later ones at debug level.
  A change of frame size empties it too.
* **Frame rate.** ``period = 1 / fps`` from the ``fps`` argument, else from
  ``packet.meta['fps']``, else the median of the last 31 ``pts`` steps. A given ``fps``
  must not exceed the stream's real rate (frames closer than a period each still count
  as one slot).
* **Counting frames.** Readiness and the stride count frames: each ``pts`` step counts
  ``round(step / period)`` slots (at least one), so dropped frames are counted and
  timestamp jitter is not.
* **Stride.** A clip is due when the window is full and, after the first clip, the
  stream advanced ``predict_stepsize`` frames (MMAction2 webcam demo) or
  ``stride × window_frames`` frames (long-video demo's ``--stride``; 0 means every
  frame); the default is one clip per window. ``inference_fps`` caps this at that many
  clips per second of stream time on an anchored schedule: the ``k``-th clip after the
  first comes no sooner than ``k / inference_fps`` seconds after it (re-anchored after a
  stall), so the long-run rate never exceeds the cap and two clips are never closer than
  ``1 / inference_fps`` minus one frame period.
* **Memory.** Frames are stored by reference (packets are read-only) and only the
  window is kept (plus one frame before it), with a hard ``capacity``. With
  ``resize_on_push`` each frame is resized by ``spec.resize`` on arrival, so 1080p frames
  are not kept; pass ``resized=clip.resized`` to :func:`~engines.transforms.preprocess`
  (or use :meth:`Clip.to_input`).

Buffers are not thread-safe: one stage thread owns them.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import OrderedDict, deque
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from core.errors import ConfigError
from engines.clip_spec import ClipSpec
from engines.transforms import preprocess, resize_frame
from stream.packet import FramePacket

logger = logging.getLogger(__name__)

#: Stream-time slack (seconds) when comparing against the ``inference_fps`` schedule.
TIME_EPS = 1e-6
#: ``pts`` steps remembered to estimate the frame period.
PERIOD_HISTORY = 31


class _Entry(NamedTuple):
    time_s: float
    frame_idx: int
    capture_ns: int
    image: np.ndarray


@dataclass(frozen=True, eq=False)
class Clip:
    """The frames one model input is made of, and where they lie in the stream.

    Attributes:
        source_id: The stream they came from.
        frames: ``spec.frames_per_sample`` BGR frames in sampling order (clip by clip);
            an array may repeat.
        slots: ``(clips, clip_len)`` sampled slot indices within the window (MMAction2's
            ``frame_inds`` for a video of ``window_frames`` frames).
        start_s: Stream time of the frame in the window's first slot.
        end_s: Stream time of the newest frame.
        capture_ns: ``capture_ns`` of the newest frame (for latency).
        frame_idx: ``frame_idx`` of the newest frame.
        resized: The frames went through ``spec.resize`` already (``resize_on_push``).
        filled_slots: Window slots with no frame of their own (dropped frames), filled
            by the frame before them.
        track_id: The person the clip follows (buffers keyed ``(source_id, track_id)``), or None.
        frame_ids: ``frame_idx`` of each of ``frames`` (a filled slot repeats its frame's), so
            frames shared by overlapping clips can be told apart (:mod:`pipelines.frame_reuse`);
            empty when unknown.
    """

    source_id: str
    frames: tuple[np.ndarray, ...]
    slots: np.ndarray
    start_s: float
    end_s: float
    capture_ns: int
    frame_idx: int
    resized: bool
    filled_slots: int = 0
    track_id: int | None = None
    frame_ids: tuple[int, ...] = ()

    def to_input(self, spec: ClipSpec, *, normalize: bool = True) -> np.ndarray:
        """The model input of this clip: :func:`~engines.transforms.preprocess` of its frames.

        Raises:
            ValueError: If the frames do not fit ``spec`` (see ``preprocess``).
        """
        return preprocess(self.frames, spec, normalize=normalize, resized=self.resized)


def _nearest_frames(times: np.ndarray, slot_times: np.ndarray, period: float) -> tuple[np.ndarray, int]:
    """For each slot, the frame nearest to it within half a period (ties: the earlier), else
    the last frame before it (a dropped frame's slot), else the first frame.

    Returns:
        The picked frame positions and how many slots had no frame within half a period.
    """
    count = len(times)
    right = np.searchsorted(times, slot_times, side="left")  # first frame at or after the slot
    left = right - 1
    r_dist = np.where(right < count, times[np.minimum(right, count - 1)] - slot_times, np.inf)
    l_dist = np.where(left >= 0, slot_times - times[np.maximum(left, 0)], np.inf)
    half = period / 2 + TIME_EPS
    use_right = (right < count) & ((left < 0) | ((r_dist < l_dist) & (r_dist <= half)))
    picks = np.where(use_right, right, left)
    filled = int(np.count_nonzero(np.where(use_right, r_dist, l_dist) > half))
    return picks, filled


def _positive(name: str, value: Any, *, allow_zero: bool = False, integer: bool = False) -> None:
    if value is None:
        return
    kinds: tuple[type, ...] = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    if not ok or (float(value) < 0 if allow_zero else float(value) <= 0):
        want = "a non-negative" if allow_zero else "a positive"
        raise ConfigError(f"ClipBuffer.{name}: expected {want} {'int' if integer else 'number'} or None, got {value!r}")


class ClipBuffer:
    """Ring buffer of one source's newest window of frames, in stream time.

    Args:
        spec: Clip settings (sampling, resize).
        source_id: The source, for clips and log messages.
        window_frames: Frame slots per window; default ``spec.window_frames_at(fps)``.
        predict_stepsize: A clip every this many frames (MMAction2 webcam demo's flag).
        stride: A clip every ``stride × window_frames`` frames (long-video demo's
            ``--stride``; 0: every frame). Exclusive with ``predict_stepsize``; with
            neither, one clip per window.
        inference_fps: At most this many clips per second of stream time.
        fps: The stream's frame rate, if known; otherwise read from ``packet.meta['fps']``
            or estimated from ``pts``.
        resize_on_push: Resize frames by ``spec.resize`` when they arrive (the fast path:
            big frames are not kept, and each is resized once).
        max_gap_s: A ``pts`` step longer than this empties the buffer; default: the window's
            duration.
        capacity: Most frames kept; default ``2 × window_frames + 8``.

    Raises:
        ConfigError: For non-positive sizes or rates, or both ``predict_stepsize`` and ``stride``.
    """

    def __init__(
        self,
        spec: ClipSpec,
        *,
        source_id: str = "",
        window_frames: int | None = None,
        predict_stepsize: int | None = None,
        stride: float | None = None,
        inference_fps: float | None = None,
        fps: float | None = None,
        resize_on_push: bool = False,
        max_gap_s: float | None = None,
        capacity: int | None = None,
    ) -> None:
        _positive("window_frames", window_frames, integer=True)
        _positive("predict_stepsize", predict_stepsize, integer=True)
        _positive("stride", stride, allow_zero=True)
        _positive("inference_fps", inference_fps)
        _positive("fps", fps)
        _positive("max_gap_s", max_gap_s)
        _positive("capacity", capacity, integer=True)
        if predict_stepsize is not None and stride is not None:
            raise ConfigError("ClipBuffer: give predict_stepsize or stride, not both")
        self.spec = spec
        self.source_id = source_id
        self.window_frames = int(window_frames) if window_frames is not None else spec.window_frames_at(fps)
        if predict_stepsize is not None:
            self.step_frames = int(predict_stepsize)
        elif stride is not None:
            self.step_frames = max(1, round(stride * self.window_frames))
        else:
            self.step_frames = self.window_frames
        self.inference_fps = None if inference_fps is None else float(inference_fps)
        self.fps = None if fps is None else float(fps)
        self.resize_on_push = bool(resize_on_push) and spec.resize is not None
        self.max_gap_s = None if max_gap_s is None else float(max_gap_s)
        self.capacity = int(capacity) if capacity is not None else 2 * self.window_frames + 8
        if self.capacity < self.window_frames:
            raise ConfigError(f"ClipBuffer.capacity: expected >= window_frames ({self.window_frames}), got {capacity}")
        self._frames: deque[_Entry] = deque(maxlen=self.capacity)
        self._steps: deque[float] = deque(maxlen=PERIOD_HISTORY)
        self._meta_fps: float | None = None
        self._last_time: float | None = None
        self._last_idx: int | None = None
        self._frame_shape: tuple[int, ...] | None = None
        self._span_slots = 0  # window slots the frames since the last reset cover
        self._slots_since_clip: int | None = None  # None until the first clip
        self._next_allowed: float | None = None
        self._warned: set[str] = set()
        #: Times the buffer was emptied (timestamp reset, long gap, frame size change).
        self.resets = 0
        #: ``pts`` steps longer than 1.5 periods (dropped frames) that were bridged.
        self.gaps = 0
        #: Frames missing according to ``frame_idx`` jumps.
        self.dropped_frames = 0
        #: Packets skipped because their ``pts`` repeated the previous one.
        self.duplicates = 0
        #: Clips handed out by :meth:`poll`.
        self.clips = 0

    # ---------------------------------------------------------------- state
    def __len__(self) -> int:
        return len(self._frames)

    def period(self) -> float | None:
        """Seconds per frame: ``1 / fps`` if known, else the median ``pts`` step; None before two frames."""
        if self.fps is not None:
            return 1.0 / self.fps
        if self._meta_fps is not None:
            return 1.0 / self._meta_fps
        if self._steps:
            return statistics.median(self._steps)
        return None

    def reset(self) -> None:
        """Forget the frames and the clip schedule (the frame-rate estimate is kept)."""
        self._frames.clear()
        self._last_time = None
        self._last_idx = None
        self._frame_shape = None
        self._span_slots = 0
        self._slots_since_clip = None
        self._next_allowed = None

    def ready(self) -> bool:
        """Whether the frames since the last reset cover a whole window.

        Frames are counted, each ``pts`` step as ``round(step / period)`` slots (at least
        one), so dropped frames count and timestamp jitter does not.
        """
        return self._span_slots >= self.window_frames

    def due(self) -> bool:
        """Whether a new clip is due under the stride policy and the ``inference_fps`` cap."""
        if not self.ready():
            return False
        if self._slots_since_clip is None:
            return True
        if self._slots_since_clip < self.step_frames:
            return False
        return self._next_allowed is None or self._frames[-1].time_s >= self._next_allowed - TIME_EPS

    # ----------------------------------------------------------------- push
    def push(self, packet: FramePacket) -> bool:
        """Add one frame of this source.

        Returns:
            Whether a clip is due now (see :meth:`poll`).

        Raises:
            ValueError: If the packet belongs to another source.
        """
        if self.source_id and packet.source_id != self.source_id:
            raise ValueError(f"ClipBuffer({self.source_id!r}): got a packet of source {packet.source_id!r}")
        now = packet.time_s
        advance = 1
        if self._last_time is not None:
            if now < self._last_time:
                self._log_once(
                    "pts-reset",
                    "source %r: stream time went back from %.3f s to %.3f s (frame %d); clip buffer reset",
                    self.source_id,
                    self._last_time,
                    now,
                    packet.frame_idx,
                )
                self._reset_counted()
            elif now == self._last_time:
                self.duplicates += 1
                logger.debug(
                    "source %r: frame %d repeats pts %d; skipped", self.source_id, packet.frame_idx, packet.pts
                )
                return self.due()
            else:
                advance = self._note_step(now - self._last_time, packet)
        if self._frame_shape is not None and packet.image.shape != self._frame_shape:
            self._log_once(
                "size",
                "source %r: frame size changed from %s to %s; clip buffer reset",
                self.source_id,
                self._frame_shape,
                packet.image.shape,
            )
            self._reset_counted()
        if self._last_idx is not None and packet.frame_idx > self._last_idx + 1:
            self.dropped_frames += packet.frame_idx - self._last_idx - 1
        meta_fps = packet.meta.get("fps")
        if self.fps is None and isinstance(meta_fps, (int, float)) and not isinstance(meta_fps, bool) and meta_fps > 0:
            self._meta_fps = float(meta_fps)
        image = resize_frame(packet.image, self.spec.resize) if self.resize_on_push else packet.image
        self._frames.append(_Entry(now, packet.frame_idx, packet.capture_ns, image))
        self._span_slots = self._span_slots + advance if len(self._frames) > 1 else 1
        if self._slots_since_clip is not None:
            self._slots_since_clip += advance
        self._frame_shape = packet.image.shape
        self._last_time = now
        self._last_idx = packet.frame_idx
        self._trim()
        return self.due()

    def _note_step(self, step: float, packet: FramePacket) -> int:
        """Record a ``pts`` step; reset on a long gap. Returns the window slots it advances."""
        before = self.period()
        self._steps.append(step)
        if before is not None:
            limit = self.max_gap_s if self.max_gap_s is not None else self.window_frames * before
            if step > limit + TIME_EPS:
                self._log_once(
                    "gap",
                    "source %r: %.3f s without frames before frame %d (limit %.3f s); clip buffer reset",
                    self.source_id,
                    step,
                    packet.frame_idx,
                    limit,
                )
                self._reset_counted()
                return 1
            if step > 1.5 * before:
                self.gaps += 1
                logger.debug("source %r: %.3f s gap before frame %d", self.source_id, step, packet.frame_idx)
        period = self.period()
        return max(1, math.floor(step / period + 0.5)) if period else 1

    def _reset_counted(self) -> None:
        self.resets += 1
        self.reset()

    def _log_once(self, key: str, message: str, *args: Any) -> None:
        level = logging.DEBUG if key in self._warned else logging.WARNING
        self._warned.add(key)
        logger.log(level, message, *args)

    def _trim(self) -> None:
        """Drop frames older than the window, keeping the last one at or before its first slot
        (that slot may need it)."""
        period = self.period()
        if period is None:
            return
        first_slot = self._frames[-1].time_s - (self.window_frames - 1) * period
        while len(self._frames) >= 2 and self._frames[1].time_s <= first_slot + TIME_EPS:
            self._frames.popleft()

    # ----------------------------------------------------------------- clips
    def latest_clip(self, *, partial: bool = False) -> Clip | None:
        """The clip of the current window (ignoring the stride policy), or None before it is ready.

        With ``partial``, a window that is not whole yet (a video shorter than one window)
        gives a clip too: its slots before the first frame repeat that frame
        (``Clip.filled_slots`` counts them). None only when there are no frames.
        """
        if not self._frames or not (self.ready() or partial):
            return None
        frames = list(self._frames)  # deque indexing is O(n) in the middle
        newest = frames[-1]
        period = self.period()
        width = self.window_frames
        if period is None:  # one-slot window, one frame so far
            picks = np.full(width, len(frames) - 1)
            filled = 0
        else:
            times = np.fromiter((e.time_s for e in frames), np.float64, len(frames))
            slot_times = newest.time_s - (width - 1 - np.arange(width)) * period
            picks, filled = _nearest_frames(times, slot_times, period)
        fps = None if period is None else 1.0 / period
        slots = self.spec.sample(width, fps=fps)
        chosen = picks[slots.ravel()]
        return Clip(
            source_id=self.source_id,
            frames=tuple(frames[i].image for i in chosen),
            slots=slots,
            start_s=frames[int(picks[0])].time_s,
            end_s=newest.time_s,
            capture_ns=newest.capture_ns,
            frame_idx=newest.frame_idx,
            resized=self.resize_on_push,
            filled_slots=filled,
            frame_ids=tuple(frames[i].frame_idx for i in chosen),
        )

    def final_clip(self) -> Clip | None:
        """At the end of a stream that never filled a window: its padded clip (counted), else None.

        See :meth:`latest_clip` with ``partial``; a video shorter than one window still gets
        one clip this way.
        """
        if self.clips:
            return None
        clip = self.latest_clip(partial=True)
        if clip is not None:
            self.clips += 1
        return clip

    def poll(self) -> Clip | None:
        """The clip of the current window if one is due (and count it as handed out), else None."""
        if not self.due():
            return None
        clip = self.latest_clip()
        if clip is None:  # pragma: no cover - due() implies ready()
            return None
        now = clip.end_s
        self._slots_since_clip = 0
        if self.inference_fps is not None:
            interval = 1.0 / self.inference_fps
            if self._next_allowed is None or self._next_allowed + interval <= now:
                self._next_allowed = now + interval  # (re)anchor the schedule
            else:
                self._next_allowed += interval
        self.clips += 1
        return clip


class ClipBuffers:
    """One :class:`ClipBuffer` per key, created on the key's first frame.

    A key is a ``source_id`` (whole-frame models) or ``(source_id, track_id)`` (one buffer per
    person, fed with that person's crops). Buffers are freed with :meth:`remove` (a track
    ended) or :meth:`remove_source` (a source disconnected or ended); past ``max_keys`` the
    least recently fed buffer is dropped (counted in :attr:`evicted`).

    Args:
        spec: Clip settings shared by all keys.
        max_keys: Most buffers held at once.
        **options: :class:`ClipBuffer` keyword arguments (``predict_stepsize``, ``stride``,
            ``inference_fps``, ``fps``, ``resize_on_push``, …) used for every key.

    Raises:
        ConfigError: If the options are invalid (checked once, here).
    """

    def __init__(self, spec: ClipSpec, *, max_keys: int = 256, **options: Any) -> None:
        if "source_id" in options:
            raise ConfigError("ClipBuffers: source_id is set per key; do not pass it")
        if not isinstance(max_keys, int) or max_keys < 1:
            raise ConfigError(f"ClipBuffers.max_keys: expected a positive int, got {max_keys!r}")
        try:
            ClipBuffer(spec, **options)  # validate once
        except TypeError as exc:
            raise ConfigError(f"ClipBuffers: {exc}") from exc
        self.spec = spec
        self.max_keys = max_keys
        self.options = dict(options)
        self._buffers: OrderedDict[Hashable, ClipBuffer] = OrderedDict()  # least recently fed first
        #: Buffers dropped because ``max_keys`` was reached.
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._buffers)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(list(self._buffers))

    def __contains__(self, key: object) -> bool:
        return key in self._buffers

    def __getitem__(self, key: Hashable) -> ClipBuffer:
        try:
            return self._buffers[key]
        except KeyError:
            raise KeyError(f"no clip buffer for {key!r}; known: {list(self._buffers)}") from None

    def buffer(self, key: Hashable) -> ClipBuffer:
        """The buffer of ``key``, created if needed (evicting the least recently fed past ``max_keys``)."""
        buffer = self._buffers.get(key)
        if buffer is None:
            source_id = key[0] if isinstance(key, tuple) else key
            buffer = self._buffers[key] = ClipBuffer(self.spec, source_id=str(source_id), **self.options)
            while len(self._buffers) > self.max_keys:
                self._buffers.popitem(last=False)
                self.evicted += 1
        else:
            self._buffers.move_to_end(key)
        return buffer

    def push(self, packet: FramePacket, key: Hashable | None = None) -> bool:
        """Add a frame (or a person's crop in a packet) to ``key``'s buffer (default: its source's)."""
        return self.buffer(packet.source_id if key is None else key).push(packet)

    def poll(self, key: Hashable) -> Clip | None:
        """The due clip of ``key``, or None (also for an unknown key)."""
        buffer = self._buffers.get(key)
        clip = None if buffer is None else buffer.poll()
        if clip is not None and isinstance(key, tuple) and len(key) > 1 and key[1] is not None:
            clip = replace(clip, track_id=int(key[1]))
        return clip

    def feed(self, packet: FramePacket, key: Hashable | None = None) -> Clip | None:
        """:meth:`push` then :meth:`poll` for the packet's key."""
        key = packet.source_id if key is None else key
        self.push(packet, key)
        return self.poll(key)

    def remove(self, key: Hashable) -> None:
        """Drop a key's buffer (its track ended); unknown keys are ignored."""
        self._buffers.pop(key, None)

    def remove_source(self, source_id: str) -> int:
        """Drop every buffer of ``source_id`` (it disconnected or ended). Returns how many."""
        keys = [k for k in self._buffers if k == source_id or (isinstance(k, tuple) and k and k[0] == source_id)]
        for key in keys:
            del self._buffers[key]
        return len(keys)
