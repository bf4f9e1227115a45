"""``python -m stream.stdet`` end to end on real pedestrians, with an AVA checkpoint in model-zoo layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core.errors import ConfigError
from engines.checkpoint import save_checkpoint
from engines.stdet import build_stdet_model, load_stdet_config
from pipelines.stdet_model import read_label_map
from tests.footage import vtest  # noqa: F401  (fixture)
from tests.pipelines.test_entry_points import frames_in, run
from tests.pipelines.test_skeleton_entry import DEMO_CLASSES

ROOT = Path(__file__).resolve().parents[2]
SLOWONLY = ROOT / "configs/detection/slowonly/slowonly_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb.py"
ACTIONS = ["bend/bow", "crouch", "dance", "fall down", "get up", "jump"]


@pytest.fixture(scope="module")
def ava_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A small SlowOnly AVA config (a user's ``_base_`` override), its random-weight checkpoint and label map."""
    tmp = tmp_path_factory.mktemp("stdet-entry")
    config = tmp / "tiny_slowonly_ava.py"
    config.write_text(
        f"_base_ = [{str(SLOWONLY)!r}]\n"
        "model = dict(backbone=dict(base_channels=8, stage_blocks=(1, 1, 1, 1)),\n"
        "             roi_head=dict(bbox_head=dict(in_channels=256, num_classes=7)))\n"
    )
    model = build_stdet_model(load_stdet_config(config)[0])
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
    checkpoint = save_checkpoint(model, tmp / "tiny_ava.pth")
    labels = tmp / "label_map.txt"
    labels.write_text("".join(f"{i + 1}: {name}\n" for i, name in enumerate(ACTIONS)))
    return config, checkpoint, labels


def test_every_tracked_person_gets_their_actions(
    ava_model: tuple[Path, Path, Path],
    vtest: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    config, checkpoint, labels = ava_model
    out, events = tmp_path / "stdet.mp4", tmp_path / "stdet.jsonl"
    args = [str(vtest), str(out), "--config", str(config), "--checkpoint", str(checkpoint), "--label-map", str(labels)]
    flags = ["--action-score-thr", "0.0", "--predict-stepsize", "8", "--events", str(events), "--max-frames", "80"]
    result = run("stream.stdet", *args, *flags, "--backend", "onnxruntime", cache=tmp_path / "cache", timeout=300)
    assert result.returncode == 0, result.stderr
    assert frames_in(out) == 80
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    frames = [line for line in lines if line.get("type") == "frame"]
    predictions = [(f["frame_idx"], p) for f in frames for p in f.get("predictions", [])]
    # keyframes 32, 40, 48, 56 (4x16 clips: 32 frames before, 16 after); labels when their clip is complete
    assert sorted({i for i, _ in predictions}) == [48, 56, 64, 72], result.stderr
    for _, p in predictions:
        assert p["track_id"] is not None and len(p["box"]) == 4
        assert set(p["labels"]) <= set(ACTIONS), p  # column 0 (background) is never reported
    assert "keyframes" in result.stderr


def test_missing_checkpoint_is_one_line(ava_model: tuple[Path, Path, Path], tmp_path: Path) -> None:
    config, _, _ = ava_model
    result = run(
        "stream.stdet", "clip.mp4", "--config", str(config), "--checkpoint", str(tmp_path / "nope.pth"),
        cache=tmp_path / "cache",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope.pth: no such file" in lines[0], result.stderr


def test_a_url_checkpoint_is_refused_without_a_download(tmp_path: Path) -> None:
    result = run("stream.stdet", "clip.mp4", "--config", str(SLOWONLY), cache=tmp_path / "cache")
    assert result.returncode == 2
    assert "downloads nothing" in result.stderr and "--checkpoint FILE" in result.stderr


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("1: bend/bow\n3: dance\n", ["background", "bend/bow", "action_2", "dance"]),
        ("bend/bow\ncrouch\n", ["background", "bend/bow", "crouch", "action_3"]),
    ],
)
def test_label_maps(tmp_path: Path, text: str, want: list[str]) -> None:
    path = tmp_path / "labels.txt"
    path.write_text(text)
    names, named = read_label_map(path, 4, background_class=True)
    assert names == want
    assert named.tolist() == [not n.startswith(("action_", "background")) for n in want]


@pytest.mark.parametrize(
    ("text", "match"),
    [("9: far\n", "id 9 is beyond"), ("1: a\nb\n", "mixes"), ("", "empty"), ("a\nb\nc\nd\n", "4 names")],
)
def test_bad_label_maps(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "labels.txt"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        read_label_map(path, 4, background_class=True)


def test_without_a_config_people_are_labelled_from_their_skeletons(vtest: Path, tmp_path: Path) -> None:  # noqa: F811
    events = tmp_path / "stdet.jsonl"
    result = run(
        "stream.stdet", str(vtest), "--events", str(events), "--max-frames", "60", cache=tmp_path / "cache", timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "no --config: skeleton-based detection with the built-in demo model" in result.stderr
    frames = [json.loads(line) for line in events.read_text().splitlines()]
    predictions = [p for f in frames if f.get("type") == "frame" for p in f.get("predictions", [])]
    assert predictions and all(p["track_id"] is not None for p in predictions)
    assert {p["labels"][0] for p in predictions} <= DEMO_CLASSES


def test_a_checkpoint_without_its_config_is_refused(tmp_path: Path) -> None:
    result = run("stream.stdet", "x.mp4", "--checkpoint", "ava.pth", cache=tmp_path)
    assert result.returncode == 2 and "add its --config" in result.stderr
