"""``python -m stream.inferencer``: MMAction2 1.2's demo_inferencer.py on generated videos with the demo model."""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from engines.checkpoint import load_checkpoint
from engines.config import load_config
from engines.export import build_recognizer
from pipelines.clip_buffer import Clip
from pipelines.demo.train import build_model, decode_video, predict, to_inputs
from pipelines.inferencer import inferencer_options, prediction
from pipelines.recognizer import Recognizer
from stream.inferencer import main
from tests.engines.mmaction_ref import build_mmaction_model, import_reference
from tests.media import make_audio, make_video
from tests.pipelines.conftest import DEMO_CONFIG, ROOT
from tests.pipelines.test_entry_points import run

CHECKPOINT = ROOT / "pipelines" / "demo" / "assets" / "demo_recognizer.pth"
I3D = ROOT / "configs/recognition/i3d/i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb.py"
TSN_TENCROP = ROOT / "configs/recognition/tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x3-100e_kinetics400-rgb.py"


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three videos; the third in a folder of its own, at another size."""
    root = tmp_path_factory.mktemp("videos")
    (root / "more").mkdir()
    return [
        make_video(root / "a.mp4", frames=40, fps=25, size=(160, 120), pattern="shapes").path,
        make_video(root / "b.mp4", frames=50, fps=25, size=(160, 120), pattern="noise").path,
        make_video(root / "more" / "c.mp4", frames=36, fps=25, size=(128, 80), pattern="shapes").path,
    ]


def reference_scores(path: Path) -> np.ndarray:
    """The demo model in torch on the test pipeline's sample of the whole video."""
    model, spec = build_model(DEMO_CONFIG)
    load_checkpoint(model, CHECKPOINT)
    frames = decode_video(path, spec)
    with torch.no_grad():
        return predict(model, to_inputs(frames[spec.sample(len(frames)).ravel()][None], spec))[0]


def test_batched_videos_give_mmaction2s_inferencer_result(
    engine_cache: Path, videos: list[Path], tmp_path: Path
) -> None:
    out_dir, pred = tmp_path / "vis", tmp_path / "pred.json"
    args = [str(videos[0]), str(videos[1]), str(videos[2].parent), "--rec", str(DEMO_CONFIG), "--rec-weights",
            str(CHECKPOINT), "--batch-size", "2", "--vid-out-dir", str(out_dir), "--pred-out-file", str(pred),
            "--print-result", "--backend", "onnxruntime", "--precision", "fp32"]  # fmt: skip
    result = run("stream.inferencer", *args, cache=engine_cache)
    assert result.returncode == 0, result.stderr
    written = json.loads(pred.read_text())
    assert ast.literal_eval(result.stdout.strip()) == written  # printed as MMAction2 prints the dict
    assert list(written) == ["predictions"] and len(written["predictions"]) == 3
    for video, entry in zip(videos, written["predictions"], strict=True):
        assert sorted(entry) == ["rec_labels", "rec_scores"]
        expected = reference_scores(video)
        assert entry["rec_labels"] == [[int(np.argmax(expected))]]
        assert len(entry["rec_scores"]) == 1 and len(entry["rec_scores"][0]) == 8
        np.testing.assert_allclose(entry["rec_scores"][0], expected, atol=1e-4)
    for video in videos:
        with av.open(str(out_dir / f"{video.stem}.mp4")) as container:
            frames = list(container.decode(video=0))
            assert float(container.streams.video[0].average_rate) == pytest.approx(30)
        with av.open(str(video)) as container:
            assert len(frames) == sum(1 for _ in container.decode(video=0))
    assert not [p for p in [*tmp_path.iterdir(), *out_dir.iterdir()] if p.name.startswith(".")]


def test_videos_go_batch_size_at_a_time_and_nothing_is_printed_unasked(
    engine_cache: Path, videos: list[Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    scores = Recognizer.scores

    def counting(self: Recognizer, clips: Sequence[Clip]) -> np.ndarray:
        calls.append(len(clips))
        return scores(self, clips)

    monkeypatch.setattr(Recognizer, "scores", counting)
    args = [*map(str, videos), "--rec", str(DEMO_CONFIG), "--rec-weights", str(CHECKPOINT), "--batch-size", "2"]
    assert main([*args, "--device", "cpu", "--backend", "onnxruntime", "--precision", "fp32"]) == 0
    assert calls == [2, 1]
    assert capsys.readouterr().out == ""


def test_videos_whose_input_sizes_differ_are_batched_apart(
    engine_cache: Path, videos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an aspect-keeping resize the input shape follows the frame size: one engine per shape."""
    shapes: list[tuple[int, ...]] = []
    scores = Recognizer.scores

    def recording(self: Recognizer, clips: Sequence[Clip]) -> np.ndarray:
        shapes.append(self.inputs(clips).shape)
        return scores(self, clips)

    monkeypatch.setattr(Recognizer, "scores", recording)
    resize = ["test_pipeline.1.keep_ratio=True", "test_pipeline.1.scale=(-1,64)"]
    args = [*map(str, videos), "--rec", str(DEMO_CONFIG), "--rec-weights", str(CHECKPOINT), "--batch-size", "3"]
    assert main([*args, "--backend", "onnxruntime", "--precision", "fp32", "--cfg-options", *resize]) == 0
    assert shapes == [(2, 1, 3, 8, 64, 85), (1, 1, 3, 8, 64, 102)]  # 160x120 and 128x80 frames, short side 64


@pytest.mark.parametrize(
    "config, crop, num_clips",
    [(I3D, "CenterCrop", 1), (TSN_TENCROP, "CenterCrop", 25), (DEMO_CONFIG, "none", 1)],
    ids=["i3d-threecrop-10clips", "tsn-tencrop-25segments", "demo"],
)
def test_the_test_pipeline_changes_as_mmaction2s_inferencer(config: Path, crop: str, num_clips: int) -> None:
    """ThreeCrop/TenCrop -> CenterCrop (same size); a Recognizer3D's SampleFrames takes one clip; TSN keeps its."""
    before = load_config(config).clip
    after = load_config(config, inferencer_options(config, {})).clip
    assert before is not None and after is not None
    assert (after.crop, after.num_clips, after.crop_size) == (crop, num_clips, before.crop_size)
    assert after.clip_len == before.clip_len and after.resize == before.resize


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--pred-out-file", "{video}"], "--pred-out-file"),
        (["--pred-out-file", "{tmp}/pred.yaml"], "--pred-out-file"),
        (["--vid-out-dir", "{parent}"], "--vid-out-dir"),  # would write a.mp4 over the input
        (["--batch-size", "0"], "--batch-size"),
        (["--device", "cuda:5"], "--device cuda:5"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    videos: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    extra = [e.format(tmp=tmp_path, video=videos[0], parent=videos[0].parent) for e in extra]
    before = videos[0].read_bytes()
    try:
        code = main([str(videos[0]), "--rec", str(DEMO_CONFIG), "--rec-weights", str(CHECKPOINT), *extra])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert videos[0].read_bytes() == before and not (tmp_path / "pred.yaml").exists()


@pytest.mark.parametrize("make", ["missing", "empty-folder", "audio-only"])
def test_missing_inputs_are_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], make: str) -> None:
    target = tmp_path / "nope"
    if make == "empty-folder":
        target.mkdir()
    elif make == "audio-only":
        target = make_audio(tmp_path / "nope.mp4")
    code = main([str(target), "--rec", str(DEMO_CONFIG), "--rec-weights", str(CHECKPOINT)])
    err = capsys.readouterr().err
    assert code == 2 and str(target) in err and len(err.strip().splitlines()) == 1


def test_prediction_entries_are_mmaction2_inferencers_own() -> None:
    """The same model and input through MMAction2's predict and MMAction2Inferencer.postprocess."""
    apis = import_reference("mmaction.apis.inferencers")
    structures = import_reference("mmaction.structures")
    cfg = load_config(DEMO_CONFIG)
    ours, _ = build_recognizer(cfg.model, CHECKPOINT)
    ref = build_mmaction_model(cfg.model)
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 1, 3, 8, 64, 112, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        samples = ref.predict(x, [structures.ActionDataSample() for _ in range(2)])
        expected_rows = ours(x).numpy()
    inferencer = object.__new__(apis.MMAction2Inferencer)  # its postprocess needs only these two attributes
    inferencer.mode = "rec"
    inferencer.actionrecog_inferencer = object.__new__(apis.ActionRecogInferencer)
    expected = inferencer.postprocess({"rec": [[s] for s in samples]})
    got = {"predictions": [prediction(row) for row in expected_rows]}
    assert list(got["predictions"][0]) == list(expected["predictions"][0])
    assert [p["rec_labels"] for p in got["predictions"]] == [p["rec_labels"] for p in expected["predictions"]]
    for mine, theirs in zip(got["predictions"], expected["predictions"], strict=True):
        np.testing.assert_allclose(mine["rec_scores"], theirs["rec_scores"], atol=1e-6)
