"""``python -m stream.demo``: MMAction2's ``demo/demo.py`` on a generated video with the shipped demo model.

demo.py (1.x) prints ``The top-5 labels with corresponding scores are:`` and then one
``print(f'{label}: ', score)`` per label (so two spaces, the score as Python prints a float).
"""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from engines.checkpoint import load_checkpoint
from pipelines.demo.train import build_model, decode_video, predict, to_inputs
from tests.media import make_image_folder, make_video
from tests.pipelines.conftest import DEMO_CONFIG, ROOT
from tests.pipelines.test_entry_points import run

CHECKPOINT = ROOT / "pipelines" / "demo" / "assets" / "demo_recognizer.pth"
LABELS = ROOT / "pipelines" / "demo" / "assets" / "label_map.txt"
HEADER = "The top-5 labels with corresponding scores are:"
LINE = re.compile(r"^(\w+):  (\S+)$")


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("v") / "clip.mp4", frames=60, fps=25, size=(160, 120)).path


def demo(*args: str, cache: Path) -> tuple[int, str, str]:
    result = run("stream.demo", *args, "--backend", "onnxruntime", "--precision", "fp32", cache=cache)
    return result.returncode, result.stdout, result.stderr


def printed_top5(stdout: str) -> list[tuple[str, float]]:
    lines = stdout.strip().splitlines()
    assert lines[0] == HEADER
    matches = [LINE.match(line) for line in lines[1:]]
    assert len(matches) == 5 and all(matches), stdout
    return [(m.group(1), float(m.group(2))) for m in matches if m]


def reference_top5(path: Path) -> list[tuple[str, float]]:
    """The demo model in torch on the test pipeline's sample of the whole video (the training code's path)."""
    model, spec = build_model(DEMO_CONFIG)
    load_checkpoint(model, CHECKPOINT)
    frames = decode_video(path, spec)
    inds = spec.sample(len(frames)).ravel()
    with torch.no_grad():
        scores = predict(model, to_inputs(frames[inds][None], spec))[0]
    names = LABELS.read_text().split()
    order = np.argsort(-scores, kind="stable")[:5]
    return [(names[i], float(scores[i])) for i in order]


def test_prints_the_top5_of_the_whole_video(engine_cache: Path, video: Path) -> None:
    code, out, err = demo(str(DEMO_CONFIG), str(CHECKPOINT), str(video), str(LABELS), cache=engine_cache)
    assert code == 0, err
    top5 = printed_top5(out)
    expected = reference_top5(video)
    assert [n for n, _ in top5] == [n for n, _ in expected]
    np.testing.assert_allclose([s for _, s in top5], [s for _, s in expected], atol=1e-4)
    assert [s for _, s in top5] == sorted((s for _, s in top5), reverse=True)


@pytest.mark.parametrize(
    "name, extra, size",
    [
        ("out.mp4", [], (160, 120)),
        ("out.gif", ["--target-resolution", "80", "-1", "--resize-algorithm", "bilinear"], (80, 60)),
        ("out.mp4", ["--target-resolution", "-1", "60", "--font-color", "255", "255", "0", "--fps", "10"], (80, 60)),
    ],
)
def test_writes_an_annotated_video_or_gif(
    engine_cache: Path, video: Path, tmp_path: Path, name: str, extra: list[str], size: tuple[int, int]
) -> None:
    out = tmp_path / name
    args = [str(DEMO_CONFIG), str(CHECKPOINT), str(video), str(LABELS), "--out-filename", str(out), *extra]
    code, stdout, err = demo(*args, cache=engine_cache)
    assert code == 0, err
    assert stdout.startswith(HEADER)
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) == 60
    assert (frames[0].shape[1], frames[0].shape[0]) == size
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_use_frames_reads_a_frame_folder(engine_cache: Path, tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    make_image_folder(folder, frames=40, size=(160, 120), template="img_{:05d}.jpg")
    out = tmp_path / "out.gif"
    args = [str(DEMO_CONFIG), str(CHECKPOINT), str(folder), str(LABELS), "--use-frames", "--out-filename", str(out)]
    code, stdout, err = demo(*args, cache=engine_cache)
    assert code == 0, err
    assert len(printed_top5(stdout)) == 5
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 40


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--target-resolution", "-1", "-1"], "--target-resolution -1 -1"),
        (["--target-resolution", "0", "10"], "--target-resolution 0 10"),
        (["--out-filename", "{tmp}/out.txt"], "--out-filename"),
        (["--out-filename", "{video}"], "--out-filename"),
        (["--resize-algorithm", "cubic"], "--resize-algorithm"),
        (["--font-color", "1", "2"], "--font-color"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    engine_cache: Path, video: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    extra = [e.format(tmp=tmp_path, video=video) for e in extra]
    before = video.read_bytes()
    code, _, err = demo(str(DEMO_CONFIG), str(CHECKPOINT), str(video), str(LABELS), *extra, cache=engine_cache)
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert video.read_bytes() == before and not (tmp_path / "out.txt").exists()


@pytest.mark.parametrize("use_frames", [False, True])
def test_missing_video_is_exit_code_2(engine_cache: Path, tmp_path: Path, use_frames: bool) -> None:
    flags = ["--use-frames"] if use_frames else []
    code, _, err = demo(str(DEMO_CONFIG), str(CHECKPOINT), str(tmp_path / "nope.mp4"), str(LABELS), *flags,
                        cache=engine_cache)  # fmt: skip
    assert code == 2
    assert "nope.mp4" in err and len(err.strip().splitlines()) == 1
