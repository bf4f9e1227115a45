"""``python -m stream.gradcam``: MMAction2's vis_cam.py on a generated video with the shipped demo model."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from engines.config import load_config
from engines.gradcam import blend
from pipelines.gradcam import GradCamParams, output_size, run_gradcam
from stream.gradcam import main
from tests.engines.test_gradcam import moving_disk_clip
from tests.media import make_image_folder, make_video
from tests.pipelines.conftest import DEMO_CONFIG, ROOT
from tests.pipelines.test_entry_points import run

CHECKPOINT = ROOT / "pipelines" / "demo" / "assets" / "demo_recognizer.pth"


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("v") / "clip.mp4", frames=40, fps=25, size=(160, 120)).path


@pytest.fixture(scope="module")
def disk_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The moving disk of the engine tests, encoded (H.264, 25 fps)."""
    path = tmp_path_factory.mktemp("disk") / "disk.mp4"
    frames, _ = moving_disk_clip(direction=1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = {"crf": "12"}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode(None))
    return path


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def gradcam(*args: str, cache: Path) -> tuple[int, str, str]:
    result = run("stream.gradcam", str(DEMO_CONFIG), str(CHECKPOINT), *args, cache=cache)
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize(
    "name, extra, size, command",
    [
        ("cam.mp4", [], (112, 64), True),  # the command itself, in its own process
        (
            "cam.gif",
            ["--target-resolution", "224", "224", "--resize-algorithm", "nearest", "--alpha", "0.7"],
            (224, 128),  # fit in 224x224, aspect ratio kept (vis_cam.py's mmcv.rescale_size)
            False,  # its main(), in this process (a second process only costs start-up time)
        ),
    ],
)
def test_writes_a_decodable_mp4_and_gif(
    engine_cache: Path,
    video: Path,
    tmp_path: Path,
    name: str,
    extra: list[str],
    size: tuple[int, int],
    command: bool,
) -> None:
    out = tmp_path / name
    args = [str(video), "--out-filename", str(out), "--fps", "4", *extra]
    if command:
        code, _, err = gradcam(*args, cache=engine_cache)
        assert code == 0, err
    else:
        assert main([str(DEMO_CONFIG), str(CHECKPOINT), *args]) == 0
    frames = decoded(out)
    assert len(frames) == 8  # one clip of 8 frames: the demo config's test pipeline
    assert (frames[0].shape[1], frames[0].shape[0]) == size
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    with av.open(str(out)) as container:
        assert float(container.streams.video[0].average_rate) == pytest.approx(4)


def test_use_frames_reads_a_frame_folder(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    make_image_folder(folder, frames=40, size=(160, 120), template="img_{:05d}.jpg")
    out = tmp_path / "cam.gif"
    result = run_gradcam(GradCamParams(DEMO_CONFIG, CHECKPOINT, folder, use_frames=True, out_filename=out))
    assert result.maps.shape == (1, 8, 64, 112)
    assert len(decoded(out)) == 8


def test_the_written_video_is_the_heat_map_on_the_moving_disk(disk_video: Path, tmp_path: Path) -> None:
    """The maps are brightest on the disk; at alpha 1 the file shows them alone (viridis), as computed."""
    out = tmp_path / "cam.mp4"
    result = run_gradcam(GradCamParams(DEMO_CONFIG, CHECKPOINT, disk_video, out_filename=out, alpha=1.0))
    assert result.top_class == 1  # move_right
    maps = result.maps[0]
    assert np.isfinite(maps).all() and 0 <= maps.min() and maps.max() <= 1
    frames, masks = moving_disk_clip(direction=1)
    inds = load_config(DEMO_CONFIG).clip.sample(len(frames)).ravel()  # type: ignore[union-attr]
    disk = np.stack([cv2.resize(masks[i], (112, 64), interpolation=cv2.INTER_NEAREST) for i in inds]).astype(bool)
    assert maps[disk].mean() > maps[:, 20:45, 10:30].mean() + 0.3  # the disk vs the static box
    written = np.stack(decoded(out)).astype(np.float32)
    assert written.shape == result.frames.shape
    assert np.abs(written - result.frames).mean() < 6  # H.264 keeps the blend, up to compression
    np.testing.assert_array_equal(result.frames, blend(maps, np.zeros((*maps.shape, 3), np.uint8), 1.0))


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--target-layer-name", "backbone/layer4/1/rleu"], "close valid names: backbone/layer4/1/relu"),
        (["--target-layer-name", "backbone/slow_path/layer4"], "--target-layer-name backbone/slow_path/layer4"),
        (["--out-filename", "{video}"], "--out-filename"),
        (["--out-filename", "{tmp}/cam.txt"], "--out-filename"),
        (["--alpha", "1.5"], "--alpha"),
        (["--resize-algorithm", "cubic"], "--resize-algorithm"),
        (["--target-resolution", "0", "10"], "--target-resolution 0 10"),
        (["--device", "cuda:7"], "--device cuda:7"),
        (["--cfg-options", "model.nope.depth=3"], "--cfg-options model.nope.depth"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    extra = [e.format(tmp=tmp_path, video=video) for e in extra]
    before = video.read_bytes()
    try:  # in-process: argparse's usage errors exit, the others return the code
        code = main([str(DEMO_CONFIG), str(CHECKPOINT), str(video), *extra])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 or err.startswith("usage:"), err
    assert video.read_bytes() == before and not (tmp_path / "cam.txt").exists()


@pytest.mark.parametrize(
    "resolution, size",
    [((224, 224), (224, 128)), ((224, -1), (392, 224)), ((-1, 32), (56, 32)), ((-1, -1), None), ((300, 50), (88, 50))],
)
def test_target_resolution_fits_the_frame_as_vis_cam(resolution: tuple[int, int], size: tuple[int, int] | None) -> None:
    assert output_size(resolution, 112, 64) == size


@pytest.mark.parametrize("use_frames", [False, True])
def test_missing_video_is_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], use_frames: bool) -> None:
    flags = ["--use-frames"] if use_frames else []
    code = main([str(DEMO_CONFIG), str(CHECKPOINT), str(tmp_path / "nope.mp4"), *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert "nope.mp4" in err and len(err.strip().splitlines()) == 1
