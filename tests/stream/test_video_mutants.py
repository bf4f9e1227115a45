"""VideoWriterSink behaviour that mutation testing found unchecked (docs/mutation.md).

Each test writes a real file with PyAV and reads back what a user would see: the decoded
frames and their times, the encoder settings libx264 records in the stream itself (its SEI
"options" string), the files that appear (and the hidden ones that must not stay), the
one-line errors, and the log lines an operator reads.
"""

from __future__ import annotations

import logging
import re
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from stream.errors import ConfigError, SinkError
from stream.packet import FramePacket
from stream.sinks import VideoWriterSink
from stream.sinks.video import as_rate
from tests.stream.test_sinks import frame, probe, run_sink

pytestmark = pytest.mark.timeout(60)

LOGGER = "stream.sinks.video"


def x264_options(path: Path) -> str:
    """The settings libx264 wrote into the stream (``cabac=1 ref=1 ... crf=23.0 ...``)."""
    found = re.search(rb"x264 - core .*? - options: ([^\x00]*)", path.read_bytes())
    assert found is not None, f"{path}: no x264 settings in the stream"
    return found.group(1).decode()


def hidden_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# -- encoder settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "present", "absent"),
    [
        ({}, ["rc=crf", "crf=23.0", "subme=2", "ref=1", "rc_lookahead=10", "keyint=250"], ["bitrate="]),
        ({"crf": 30, "preset": "medium"}, ["crf=30.0", "subme=7", "ref=3", "rc_lookahead=40"], []),
        ({"bitrate": 200_000}, ["rc=abr", "bitrate=200"], ["crf="]),
        ({"fragmented": True}, ["keyint=25", "keyint_min=2"], []),  # a keyframe every second at 25 fps
        ({"fragmented": True, "fps": 10}, ["keyint=10 keyint_min=1"], []),
        ({"fragmented": True, "options": {"g": "7"}}, ["keyint=7"], []),  # the user's options win
        ({"fragmented": True, "fps": 0.5}, ["keyint=1"], []),  # a time-lapse: every frame a keyframe
    ],
)
def test_encoder_settings_reach_the_file(
    tmp_path: Path, kwargs: dict[str, object], present: list[str], absent: list[str]
) -> None:
    path = tmp_path / "out.mp4"
    run_sink(VideoWriterSink(path, **kwargs), [frame(i) for i in range(6)])  # type: ignore[arg-type]
    options = x264_options(path).split()
    for setting in present:
        assert all(s in options for s in setting.split()), f"{setting} not in {options}"
    for prefix in absent:
        assert not [s for s in options if s.startswith(prefix)], options


@pytest.mark.parametrize(
    ("fps", "rate"),
    [
        (29.97, Fraction(2997, 100)),
        (30000 / 1001, Fraction(30000, 1001)),
        (Fraction(24000, 1001), None),
        (Fraction(12345, 1024), None),  # a fraction is kept as given
        (12, 12),
        (0.5, Fraction(1, 2)),  # a time-lapse
    ],
)
def test_output_fps_is_kept_as_an_exact_rate(tmp_path: Path, fps: float, rate: Fraction | None) -> None:
    expected = Fraction(fps) if rate is None else Fraction(rate)
    sink = VideoWriterSink(tmp_path / "out.mp4", fps=fps)
    assert sink.fps == expected and isinstance(sink.fps, Fraction)
    run_sink(sink, [frame(i) for i in range(4)])
    with av.open(str(tmp_path / "out.mp4")) as container:
        stream = container.streams.video[0]
        times = [float(f.time) for f in container.decode(stream)]
    assert times == pytest.approx([i / float(expected) for i in range(4)], abs=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fps": "fast"}, "fps: expected a positive number, got 'fast'"),
        ({"fps": 0}, "fps: expected a positive number, got 0"),
        ({"fps": -25}, "fps: expected a positive number, got -25"),
        ({"fps": float("inf")}, "fps: expected a positive number, got inf"),
        ({"crf": -1}, r"crf: expected 0\.\.63, got -1"),
        ({"crf": 64}, r"crf: expected 0\.\.63, got 64"),
        ({"bitrate": 0}, r"bitrate: expected at least 1000 bits/s \(1 kbit/s\), got 0"),
        ({"bitrate": 999}, r"bitrate: expected at least 1000 bits/s \(1 kbit/s\), got 999"),
    ],
)
def test_bad_settings_are_one_clear_line(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}$"):
        VideoWriterSink(tmp_path / "out.mp4", **kwargs)  # type: ignore[arg-type]


def test_as_rate_names_fps_by_default() -> None:
    with pytest.raises(ConfigError, match=r"^fps: expected a positive number, got 'x'$"):
        as_rate("x")  # type: ignore[arg-type]


def test_settings_at_their_limits_are_accepted(tmp_path: Path) -> None:
    for crf, setting in ((0, "qp=0"), (63, "crf=51.0")):  # 0 is lossless; libx264 (8 bit) caps at 51
        path = tmp_path / f"crf{crf}.mp4"
        run_sink(VideoWriterSink(path, crf=crf), [frame(i) for i in range(3)])
        assert setting in x264_options(path).split()
    assert VideoWriterSink(tmp_path / "x.mp4", bitrate=1000).bitrate == 1000
    path = tmp_path / "bitrate.mp4"
    run_sink(VideoWriterSink(path, bitrate=1000), [frame(i) for i in range(3)])  # libx264 counts in kbit/s
    assert "bitrate=1" in x264_options(path).split() and probe(path)[0] == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"codec": "nosuchcodec"}, "video codec 'nosuchcodec' is not available in this PyAV/FFmpeg build"),
        ({"codec": "aac"}, "codec 'aac' is not a video encoder"),
        ({"pix_fmt": "nope"}, "pix_fmt 'nope' is not a pixel format"),
    ],
)
def test_setup_errors_are_one_clear_line(tmp_path: Path, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(SinkError, match=f"^{re.escape(message)}$"):
        VideoWriterSink(tmp_path / "out.mp4", **kwargs).setup()  # type: ignore[arg-type]


def test_unknown_extension_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "out.nosuchformat"
    message = f"cannot tell the container format of {path} from its extension (use .mp4, .mkv, .avi...)"
    with pytest.raises(SinkError, match=f"^{re.escape(message)}$"):
        VideoWriterSink(path).setup()


# -- frame rate and timing ----------------------------------------------------------------------


def test_a_bad_meta_fps_falls_back_to_the_timestamps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "out.mp4"
    packets = [frame(i, pts=300 + i * 100, time_base=Fraction(1, 1000), fps=None) for i in range(5)]
    for p in packets:
        p.meta["fps"] = "fast"
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        run_sink(VideoWriterSink(path), packets)
    n, _, times, rate = probe(path)
    assert n == 5 and rate == pytest.approx(10, rel=0.02)
    assert times == pytest.approx([i / 10 for i in range(5)], abs=1e-3)
    assert f"{path}: packet meta 'fps': expected a positive number, got 'fast'; deriving the rate from timestamps" in [
        r.getMessage() for r in caplog.records
    ]


@pytest.mark.parametrize("count", [7, 8, 12])
def test_frames_without_any_rate_are_written_at_25_fps(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, count: int
) -> None:
    path = tmp_path / "out.mp4"
    packets = [frame(i, pts=0, fps=None) for i in range(count)]  # every timestamp the same
    sink = VideoWriterSink(path)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        sink.setup()
        try:
            for i, packet in enumerate(packets, 1):
                sink.process(packet)
                # frames wait for a rate, but at most 8: then the recording starts at 25 fps
                assert bool(hidden_files(tmp_path)) == (i >= 8), f"after {i} frames: {hidden_files(tmp_path)}"
            sink.finish()
        finally:
            sink.close()
    n, _, times, rate = probe(path)
    assert n == count and rate == pytest.approx(25, rel=0.02)
    assert times == pytest.approx([i / 25 for i in range(count)], abs=1e-3)  # one frame on each time
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [f"{path}: source frame rate unknown, assuming 25 fps"]


def test_timestamps_are_written_on_a_90khz_clock_from_zero(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    # 1/30000 time base: 1001 ticks per frame (29.97 fps), starting far from zero
    packets = [frame(i, pts=50_000 + i * 1001, time_base=Fraction(1, 30000), fps=30000 / 1001) for i in range(6)]
    run_sink(VideoWriterSink(path), packets)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = [f.pts * f.time_base for f in container.decode(stream) if f.pts is not None and f.time_base]
    assert pts == [Fraction(i * 3003, 90_000) for i in range(6)]  # 1001/30000 s is 3003 ticks of 90 kHz


# -- sizes ------------------------------------------------------------------------------------


def test_odd_sizes_are_padded_by_repeating_the_edge(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    image = np.zeros((31, 33, 3), np.uint8)
    image[:, -1] = (255, 255, 255)  # a white last column and a white last row
    image[-1, :] = (255, 255, 255)
    packet = FramePacket(image, "cam", 0, 0, Fraction(1, 25), time.monotonic_ns(), meta={"fps": 25.0})
    run_sink(VideoWriterSink(path, crf=0, pix_fmt="yuv444p"), [packet])
    with av.open(str(path)) as container:
        decoded = next(container.decode(video=0)).to_ndarray(format="bgr24")
    assert decoded.shape == (32, 34, 3)
    assert decoded[:, -1].min() > 200 and decoded[-1, :].min() > 200  # the padding repeats the white edge
    assert decoded[:28, :28].max() < 40


def test_a_size_change_is_resized_to_the_first_and_warned_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "resized.mp4"
    packets = [frame(0)] + [frame(i, size=(96, 128)) for i in range(1, 4)]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        run_sink(VideoWriterSink(path), packets)
    assert probe(path)[:2] == (4, (64, 48))
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: frame size changed from 64x48 to 128x96; resizing to the first"
    ]


# -- files -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source_id", "name"),
    [
        ("rtsp://10.0.0.5/cam 1", "out-rtsp_10.0.0.5_cam_1.mp4"),
        ("Front/Door", "out-Front_Door.mp4"),
        ("..//..", "out-source.mp4"),
        ("._a_.", "out-a.mp4"),
        ("X-ray.", "out-X-ray.mp4"),
    ],
)
def test_per_source_file_names_are_safe(tmp_path: Path, source_id: str, name: str) -> None:
    sink = VideoWriterSink(tmp_path / "out.mp4", per_source=True)
    assert sink.path_for(source_id) == tmp_path / name
    templated = VideoWriterSink(tmp_path / "{source_id}" / "video.mp4", per_source=True)
    assert templated.path_for(source_id) == tmp_path / name.removeprefix("out-").removesuffix(".mp4") / "video.mp4"
    assert VideoWriterSink(tmp_path / "{source_id}.mp4").path_for(source_id) == tmp_path / "{source_id}.mp4"


def test_the_file_appears_whole_at_the_end_and_nothing_hidden_stays(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    sink = VideoWriterSink(path, fps=25)
    sink.setup()
    for i in range(5):
        sink.process(frame(i))
    assert not path.exists() and len(hidden_files(tmp_path)) == 1  # frames go to the hidden file
    assert sink.written == [] and sink.frames == 5 and sink.paths == {"cam": path}
    sink.finish()
    assert sink.written == [path] and probe(path)[0] == 5
    assert hidden_files(tmp_path) == []
    sink.close()


def test_an_existing_file_stays_when_no_frame_arrives(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "out.mp4"
    path.write_bytes(b"yesterday's recording")
    sink = VideoWriterSink(path)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        run_sink(sink, [])
        sink.close()
    assert path.read_bytes() == b"yesterday's recording" and hidden_files(tmp_path) == []
    assert [r.getMessage() for r in caplog.records] == [f"{path}: no frames arrived, no video written"]


def test_no_warning_about_missing_frames_when_setup_failed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sink = VideoWriterSink(tmp_path / "out.mp4", codec="nosuchcodec")
    with pytest.raises(SinkError):
        sink.setup()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        sink.close()
    assert caplog.records == []


def test_other_sources_are_skipped_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "out.mp4"
    sink = VideoWriterSink(path)
    packets = [frame(i, source_id=sid) for i in range(4) for sid in ("a", "b")]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        sink.setup()
        try:
            for p in packets:
                assert sink.process(p) is p  # passed on either way
            sink.finish()
        finally:
            sink.close()
    assert probe(path)[0] == 4 and sink.paths == {"a": path}
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: writing only source 'a'; frames of 'b' are skipped (use per_source=True)"
    ]


def test_a_file_that_cannot_be_put_in_place_fails_and_the_others_are_still_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = VideoWriterSink(tmp_path / "out.mp4", per_source=True)
    sink.setup()
    for i in range(3):
        for sid in ("a", "b"):
            sink.process(frame(i, source_id=sid))
    (tmp_path / "out-a.mp4").mkdir()  # a folder took the first file's name
    (tmp_path / "out-a.mp4" / "x").write_text("")
    with caplog.at_level(logging.ERROR, logger=LOGGER), pytest.raises(SinkError) as info:
        sink.finish()
    assert str(info.value).startswith(f"cannot write {tmp_path / 'out-a.mp4'}: ")
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [str(info.value)]
    assert sink.written == [tmp_path / "out-b.mp4"] and probe(tmp_path / "out-b.mp4")[0] == 3
    assert hidden_files(tmp_path) == []
    sink.close()  # closing again raises nothing


def test_the_log_says_what_is_written(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "out.mp4"
    with caplog.at_level(logging.INFO, logger=LOGGER):
        run_sink(VideoWriterSink(path), [frame(i) for i in range(3)])
        run_sink(VideoWriterSink(tmp_path / "cfr.mp4", fps=29.97), [frame(i) for i in range(2)])
    assert [r.getMessage() for r in caplog.records] == [
        f"writing {path}: 64x48 libx264 at 25 fps (source timestamps)",
        f"wrote 3 frames to {path}",
        f"writing {tmp_path / 'cfr.mp4'}: 64x48 libx264 at 29.97 fps (constant rate)",
        f"wrote 2 frames to {tmp_path / 'cfr.mp4'}",
    ]


def test_a_fragmented_recording_says_where_it_records(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "frag.mp4"
    sink = VideoWriterSink(path, fragmented=True)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        sink.setup()
        sink.process(frame(0))
        sink.process(frame(1))
        hidden = hidden_files(tmp_path)
        sink.finish()
        sink.close()
    assert len(hidden) == 1
    assert (
        f"recording into {tmp_path / hidden[0]} (fragmented: playable even if the process is killed); "
        f"renamed to frag.mp4 when the run ends" in [r.getMessage() for r in caplog.records]
    )


def test_timestamps_that_restart_twice_keep_their_spacing(tmp_path: Path) -> None:
    path = tmp_path / "restarts.mp4"
    # a source that restarted twice, with frames dropped after each restart
    pts = [0, 1, 2, 3, 4, 0, 2, 4, 0, 3]
    run_sink(VideoWriterSink(path), [frame(i, pts=p) for i, p in enumerate(pts)])
    n, _, times, _ = probe(path)
    assert n == len(pts)
    assert times == pytest.approx([k / 25 for k in (0, 1, 2, 3, 4, 5, 7, 9, 10, 13)], abs=1e-3)


def test_two_frames_without_a_rate_tell_it_by_their_spacing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "two.mp4"
    packets = [frame(i, pts=500 + 100 * i, time_base=Fraction(1, 1000), fps=None) for i in range(2)]
    sink = VideoWriterSink(path, fragmented=True)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        sink.setup()
        sink.process(packets[0])
        assert hidden_files(tmp_path) == []  # one timestamp tells no rate yet
        sink.process(packets[1])
        assert len(hidden_files(tmp_path)) == 1  # two do: the recording starts
        sink.finish()
        sink.close()
    assert probe(path)[2] == pytest.approx([0.0, 0.1], abs=1e-3)
    assert "keyint=10" in x264_options(path).split()  # a keyframe a second at the derived 10 fps
    assert caplog.records == []


def test_a_larger_frame_is_shrunk_by_averaging(tmp_path: Path) -> None:
    path = tmp_path / "shrunk.mp4"
    large = np.zeros((144, 192, 3), np.uint8)
    large[:, ::3] = 255  # one white column in three: 85 grey once averaged, stripes if sampled
    packets = [frame(0), FramePacket(large, "cam", 1, 1, Fraction(1, 25), time.monotonic_ns(), meta={"fps": 25.0})]
    run_sink(VideoWriterSink(path, crf=0, pix_fmt="yuv444p"), packets)
    with av.open(str(path)) as container:
        second = list(container.decode(video=0))[1].to_ndarray(format="bgr24")
    assert second.shape == (48, 64, 3)
    assert np.abs(second.astype(int) - 85).max() <= 6


def test_a_fragmented_recording_is_playable_before_it_ends(tmp_path: Path) -> None:
    path = tmp_path / "live.mp4"
    sink = VideoWriterSink(path, fragmented=True)
    sink.setup()
    try:
        for i in range(60):  # 2.4 s at 25 fps: two whole fragments of a second
            sink.process(frame(i))
        (partial,) = [tmp_path / name for name in hidden_files(tmp_path)]
        with av.open(str(partial)) as container:  # what a killed process would leave
            assert len(list(container.decode(video=0))) >= 25  # the encoder still holds the newest few
        sink.finish()
    finally:
        sink.close()
    assert probe(path)[0] == 60 and b"moof" in path.read_bytes()
    plain = tmp_path / "plain.mp4"
    run_sink(VideoWriterSink(plain), [frame(i) for i in range(5)])
    assert b"moof" not in plain.read_bytes()


def test_missing_folders_are_created_with_the_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "new" / "deeper" / "out.mp4"
    sink = VideoWriterSink(path)
    sink.setup()
    assert not (tmp_path / "new").exists()
    run_sink(sink, [frame(i) for i in range(3)])
    assert probe(path)[0] == 3


def test_a_folder_in_place_of_the_file_fails_at_setup(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    path.mkdir()
    with pytest.raises(SinkError, match=f"^video {re.escape(str(path))} is a folder; expected a file path$"):
        VideoWriterSink(path).setup()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SinkError, match=f"^cannot write video {re.escape(str(blocker / 'x.mp4'))}: "):
        VideoWriterSink(blocker / "x.mp4").setup()
