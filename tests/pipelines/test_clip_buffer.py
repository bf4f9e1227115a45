"""Clip buffers: windows in stream time, stride policies, gaps, resets, several sources."""

from __future__ import annotations

import logging
import time
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from engines.clip_spec import ClipSpec, ResizeSpec
from engines.sampling import sample_frames
from engines.transforms import preprocess, resize_frame
from pipelines.clip_buffer import ClipBuffer, ClipBuffers
from stream.errors import ConfigError
from stream.packet import FramePacket

SLOWONLY = ClipSpec(clip_len=8, frame_interval=8, num_clips=1)  # window 64 frames
TSN = ClipSpec(clip_len=1, num_clips=8, input_format="NCHW")  # window 8 frames


def packet(
    idx: int,
    *,
    source: str = "cam",
    pts: int | None = None,
    time_base: Fraction = Fraction(1, 30),
    size: tuple[int, int] = (4, 6),
    value: int | None = None,
) -> FramePacket:
    """A frame whose pixels all equal ``value`` (default ``idx % 256``), so clips show which frames they hold."""
    image = np.full((*size, 3), idx % 256 if value is None else value, np.uint8)
    image.flags.writeable = False
    return FramePacket(image, source, idx, idx if pts is None else pts, time_base, 1_000_000 + idx)


def frame_ids(frames: tuple[np.ndarray, ...]) -> list[int]:
    return [int(f[0, 0, 0]) for f in frames]


def push_all(buffer: ClipBuffer, packets: list[FramePacket]) -> list[Any]:
    clips = []
    for p in packets:
        buffer.push(p)
        clip = buffer.poll()
        if clip is not None:
            clips.append(clip)
    return clips


def test_window_fills_then_samples_like_mmaction() -> None:
    buffer = ClipBuffer(SLOWONLY, source_id="cam")
    assert buffer.window_frames == 64 and buffer.latest_clip() is None
    for i in range(63):
        assert not buffer.push(packet(i))
    assert not buffer.ready()
    assert buffer.push(packet(63)) and buffer.ready()
    clip = buffer.latest_clip()
    assert clip is not None
    assert clip.slots.tolist() == sample_frames(64, 8, 8).tolist()
    assert frame_ids(clip.frames) == list(range(3, 64, 8))  # MMAction2's offset (64 - 57) // 2 = 3
    assert clip.start_s == 0.0 and clip.end_s == pytest.approx(63 / 30)
    assert (clip.frame_idx, clip.capture_ns, clip.filled_slots, clip.source_id) == (63, 1_000_063, 0, "cam")
    for i in range(64, 200):
        buffer.push(packet(i))
    assert len(buffer) <= 65  # only the window (and one frame before it) is kept
    clip = buffer.latest_clip()
    assert clip is not None and frame_ids(clip.frames) == list(range(199 - 63 + 3, 200, 8))


def test_partial_clip_of_a_video_shorter_than_the_window() -> None:
    buffer = ClipBuffer(SLOWONLY, source_id="cam")
    assert buffer.latest_clip(partial=True) is None  # no frames yet
    push_all(buffer, [packet(i) for i in range(20)])
    assert not buffer.ready() and buffer.latest_clip() is None
    clip = buffer.latest_clip(partial=True)
    assert clip is not None
    # The 64-slot window ends at frame 19; its first 44 slots lie before frame 0 and repeat it.
    assert frame_ids(clip.frames) == [0, 0, 0, 0, 0, 0, 7, 15]  # slots 3, 11, ..., 59 minus 44
    assert clip.filled_slots == 44 and (clip.start_s, clip.frame_idx) == (0.0, 19)


def test_tsn_window_is_consecutive_segment_middles() -> None:
    buffer = ClipBuffer(TSN, window_frames=80)
    clips = push_all(buffer, [packet(i) for i in range(80)])
    assert len(clips) == 1
    assert frame_ids(clips[0].frames) == [5, 15, 25, 35, 45, 55, 65, 75]
    assert clips[0].to_input(TSN).shape == (8, 3, 4, 6)


def test_uniform_sample_window_spreads_clips_over_it() -> None:
    # UniFormerV2's test sampler: 8 segments of UNIFORM_SEGMENT_FRAMES (8) frames, 2 clips.
    spec = ClipSpec.from_pipeline(
        [
            dict(type="UniformSample", clip_len=8, num_clips=2, test_mode=True),
            dict(type="FormatShape", input_format="NCTHW"),
        ]
    )
    buffer = ClipBuffer(spec)
    assert buffer.window_frames == 64
    clips = push_all(buffer, [packet(i) for i in range(64)])
    assert len(clips) == 1
    # seg = 63 / 8 = 7.875: starts round(7.875 i); the clips add int(2.625) = 2 and int(5.25) = 5.
    starts = [0, 8, 16, 24, 32, 39, 47, 55]
    assert frame_ids(clips[0].frames) == [s + 2 for s in starts] + [s + 5 for s in starts]
    assert clips[0].to_input(spec).shape == (2, 3, 8, 4, 6)


@pytest.mark.parametrize(
    ("spec", "options", "expected_idx"),
    [
        (TSN, dict(predict_stepsize=4), list(range(7, 100, 4))),
        (SLOWONLY, dict(stride=0.5), list(range(63, 300, 32))),
        (SLOWONLY, dict(stride=0), list(range(63, 300))),
        (SLOWONLY, {}, [63, 127, 191, 255]),  # default: one clip per window
        (SLOWONLY, dict(predict_stepsize=1, inference_fps=5), list(range(63, 300, 6))),
        (SLOWONLY, dict(stride=0.5, inference_fps=5), list(range(63, 300, 32))),  # cap not binding
    ],
)
def test_clip_due_policy(spec: ClipSpec, options: dict[str, Any], expected_idx: list[int]) -> None:
    n = 100 if spec is TSN else 300
    clips = push_all(ClipBuffer(spec, **options), [packet(i) for i in range(n)])
    assert [c.frame_idx for c in clips] == expected_idx


@pytest.mark.parametrize("cap", [5.0, 7.0, 12.5])
@pytest.mark.parametrize("time_base", [Fraction(1, 30), Fraction(1, 90_000)])
def test_inference_fps_caps_clips_per_second_of_stream_time(cap: float, time_base: Fraction) -> None:
    step = int(Fraction(1, 30) / time_base)
    packets = [packet(i, pts=i * step, time_base=time_base) for i in range(600)]  # 20 s of stream time
    buffer = ClipBuffer(SLOWONLY, predict_stepsize=1, inference_fps=cap)
    started = time.monotonic()
    clips = push_all(buffer, packets)
    assert time.monotonic() - started < 5  # pushed far faster than real time
    times = np.array([c.end_s for c in clips])
    span = times[-1] - times[0]
    assert len(clips) <= span * cap + 1 + 1e-9
    assert len(clips) >= span * cap * 0.85  # the cap is used, not just respected
    # Anchored schedule: the k-th clip after the first comes no sooner than k / cap seconds
    # after it; between any two clips the rate exceeds the cap by less than one frame period.
    assert np.all(times[1:] - times[0] >= np.arange(1, len(times)) / cap - 1e-6)
    for k in range(1, len(times)):
        assert np.all(times[k:] - times[:-k] > k / cap - 1 / 30)


def test_dropped_frames_keep_their_slots() -> None:
    buffer = ClipBuffer(SLOWONLY, stride=0)
    kept = [i for i in range(100) if not 40 <= i < 45]  # 5 frames dropped: pts and frame_idx jump
    push_all(buffer, [packet(i) for i in kept])
    assert (buffer.gaps, buffer.dropped_frames, buffer.resets) == (1, 5, 0)
    clip = buffer.latest_clip()
    assert clip is not None and clip.filled_slots == 5
    # Window slots 36..99; sampled slot offsets 3 + 8k → frames 39, 47, ..., 95; slot 43 falls in the gap → frame 39.
    assert frame_ids(clip.frames) == [39, 47, 55, 63, 71, 79, 87, 95]
    assert clip.start_s == pytest.approx(36 / 30)


def test_long_gap_resets_the_window() -> None:
    buffer = ClipBuffer(TSN, predict_stepsize=1)
    push_all(buffer, [packet(i) for i in range(20)])
    assert buffer.ready()
    clips = push_all(buffer, [packet(i) for i in range(40, 47)])  # 0.67 s gap > window of 8 frames (0.27 s)
    assert buffer.resets == 1 and not buffer.ready() and clips == []
    clips = push_all(buffer, [packet(47)])
    assert [c.frame_idx for c in clips] == [47] and frame_ids(clips[0].frames) == list(range(40, 48))


def test_pts_reset_empties_buffer_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    buffer = ClipBuffer(TSN, source_id="cam", predict_stepsize=1)
    with caplog.at_level(logging.DEBUG, logger="pipelines.clip_buffer"):
        for loop in range(3):  # a looping file: pts restart at 0 twice
            clips = push_all(buffer, [packet(i, value=loop) for i in range(10)])
            assert [c.frame_idx for c in clips] == [7, 8, 9]
            assert all(set(frame_ids(c.frames)) == {loop} for c in clips)
    assert buffer.resets == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "stream time went back" in warnings[0].getMessage()


def test_duplicate_pts_and_frame_size_change() -> None:
    buffer = ClipBuffer(TSN)
    push_all(buffer, [packet(0), packet(1), packet(1, value=99)])
    assert buffer.duplicates == 1 and len(buffer) == 2
    push_all(buffer, [packet(2, size=(8, 8))])
    assert buffer.resets == 1 and len(buffer) == 1


def test_sources_are_isolated() -> None:
    buffers = ClipBuffers(TSN, predict_stepsize=2)
    got: dict[str, list[Any]] = {"a": [], "b": []}
    for i in range(30):
        for source, offset, value in (("a", 0, 10), ("b", -10, 20)):
            if i + offset < 0:
                continue  # b starts 10 frames later
            clip = buffers.feed(packet(i + offset, source=source, value=value))
            if clip is not None:
                got[source].append(clip)
    assert len(buffers) == 2 and set(buffers) == {"a", "b"} and "a" in buffers
    assert [c.frame_idx for c in got["a"]] == list(range(7, 30, 2))
    assert [c.frame_idx for c in got["b"]] == list(range(7, 20, 2))
    assert all(c.source_id == "a" and set(frame_ids(c.frames)) == {10} for c in got["a"])
    assert all(c.source_id == "b" and set(frame_ids(c.frames)) == {20} for c in got["b"])
    buffers.push(packet(0, source="b", value=20))  # b's clock restarts; a is untouched
    assert buffers["b"].resets == 1 and buffers["a"].resets == 0 and buffers["a"].ready()
    buffers.remove("b")
    assert "b" not in buffers and buffers.poll("b") is None
    with pytest.raises(KeyError, match="known: \\['a'\\]"):
        buffers["b"]
    with pytest.raises(ValueError, match="packet of source 'x'"):
        buffers["a"].push(packet(40, source="x"))


def test_resize_on_push_equals_resizing_later() -> None:
    spec = ClipSpec(
        clip_len=4,
        frame_interval=2,
        resize=ResizeSpec((-1, 64)),
        crop="ThreeCrop",
        crop_size=(64, 64),
        mean=(123.675, 116.28, 103.53),
        std=(58.395, 57.12, 57.375),
    )
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (16, 360, 640, 3), dtype=np.uint8)
    packets = [FramePacket(images[i], "cam", i, i, Fraction(1, 25), i) for i in range(16)]
    fast, plain = ClipBuffer(spec, resize_on_push=True), ClipBuffer(spec)
    fast_clips, plain_clips = push_all(fast, packets), push_all(plain, packets)
    assert len(fast_clips) == len(plain_clips) == 2
    for f, p in zip(fast_clips, plain_clips, strict=True):
        assert f.resized and not p.resized
        assert f.frames[0].shape == (64, 114, 3) and p.frames[0].shape == (360, 640, 3)
        np.testing.assert_array_equal(f.to_input(spec), p.to_input(spec))
        np.testing.assert_array_equal(
            f.to_input(spec), preprocess([resize_frame(x, spec.resize) for x in p.frames], spec, resized=True)
        )
    assert all(e.image.shape == (64, 114, 3) for e in fast._frames)


def test_single_frame_window_and_meta_fps() -> None:
    one = ClipBuffer(ClipSpec(clip_len=1, input_format="NCHW"), stride=0)
    assert one.push(packet(0)) and one.poll() is not None
    buffer = ClipBuffer(TSN)
    first = packet(0)
    first.meta["fps"] = 15.0  # frames are 1/30 s apart, but the source says 15 fps
    buffer.push(first)
    assert buffer.period() == pytest.approx(1 / 15)
    push_all(buffer, [packet(i) for i in range(1, 15)])
    clip = buffer.latest_clip()
    assert clip is not None and frame_ids(clip.frames) == list(range(0, 15, 2))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (dict(predict_stepsize=4, stride=0.5), "not both"),
        (dict(predict_stepsize=0), "predict_stepsize"),
        (dict(stride=-1.0), "stride"),
        (dict(inference_fps=0), "inference_fps"),
        (dict(fps=-30), "fps"),
        (dict(window_frames=2.5), "window_frames"),
        (dict(capacity=10), "capacity"),
    ],
)
def test_invalid_options(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ClipBuffer(SLOWONLY, **options)
    with pytest.raises(ConfigError, match=match):
        ClipBuffers(SLOWONLY, **options)


def test_jittery_timestamps_keep_one_frame_per_slot() -> None:
    rng = np.random.default_rng(3)
    jitter = rng.uniform(-0.2, 0.2, 200)  # ±20 % of a period, as webcams deliver
    packets = [packet(i, pts=round((i + jitter[i]) * 3000), time_base=Fraction(1, 90_000)) for i in range(200)]
    clips = push_all(ClipBuffer(TSN, predict_stepsize=8), packets)
    assert len(clips) == 25
    for clip in clips:
        assert frame_ids(clip.frames) == list(range(clip.frame_idx - 7, clip.frame_idx + 1))
        assert clip.filled_slots == 0


def test_buffers_keyed_per_person_free_with_their_track_and_source() -> None:
    buffers = ClipBuffers(TSN, max_keys=3)
    clips = {}
    for i in range(8):  # two people of one camera, one of another, fed their own crops
        for key, value in ((("cam", 1), 10), (("cam", 2), 20), (("door", 7), 30)):
            clip = buffers.feed(packet(i, source=key[0], value=value + i), key)
            if clip is not None:
                clips[key] = clip
    assert set(clips) == {("cam", 1), ("cam", 2), ("door", 7)}
    assert clips[("cam", 2)].track_id == 2 and clips[("cam", 2)].source_id == "cam"
    assert frame_ids(clips[("cam", 2)].frames) == [20 + i for i in range(8)]
    assert buffers.feed(packet(9, source="cam"), "cam") is None  # whole-frame key: no track
    assert buffers.evicted == 1 and ("cam", 1) not in buffers  # least recently fed went first
    buffers.remove(("cam", 2))
    assert buffers.remove_source("door") == 1
    assert list(buffers) == ["cam"]
