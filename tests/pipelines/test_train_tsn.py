"""The TSN scene trainer: scene clips, the runtime's crop, a tiny run that the recognizer opens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engines.clip_spec import ClipSpec
from engines.transforms import preprocess
from pipelines.demo.train_tsn import (
    SCENE_CLASSES,
    TSN_CONFIG,
    main,
    render_scene_clip,
    render_scene_clips,
)
from pipelines.recognizer import open_recognizer


def test_scene_classes_are_the_configs_and_the_renderers() -> None:
    from engines.config import load_config
    from pipelines.demo.synthetic import BACKGROUNDS

    assert set(SCENE_CLASSES) <= set(BACKGROUNDS)
    cfg = load_config(TSN_CONFIG)
    assert tuple(cfg.get("dataset_meta")["classes"]) == SCENE_CLASSES
    assert cfg.model["cls_head"]["num_classes"] == len(SCENE_CLASSES)


def test_each_class_is_its_background(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.demo import synthetic

    def clip(background: str, seed: int = 5) -> np.ndarray:
        return render_scene_clip(background, 8, 25.0, (160, 120), np.random.default_rng(seed), [0, 7])

    flat = clip("flat")
    assert np.array_equal(flat, clip("flat"))  # one seed, one clip
    assert not np.array_equal(flat, clip("flat", seed=6))
    assert not np.array_equal(flat, clip("stripes"))
    drawn: list[str | None] = []
    real = synthetic.make_background

    def spy(size: tuple[int, int], rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
        drawn.append(kind)
        return real(size, rng, kind)

    monkeypatch.setattr(synthetic, "make_background", spy)
    for background in SCENE_CLASSES:
        clip(background)
    assert drawn == list(SCENE_CLASSES)
    with pytest.raises(ValueError, match="background: expected one of flat"):
        clip("gradient")  # a texture, but not a class (a shallow gradient is flat)


def test_background_kinds() -> None:
    from pipelines.demo.synthetic import BACKGROUNDS, make_background

    for kind in BACKGROUNDS:
        image = make_background((64, 48), np.random.default_rng(1), kind)
        colours = len(np.unique(image.reshape(-1, 3), axis=0))
        assert (colours == 1) is (kind == "flat"), kind
    with pytest.raises(ValueError, match="background kind: expected one of flat, gradient"):
        make_background((64, 48), np.random.default_rng(1), "marble")


def test_held_out_clips_are_cut_as_the_runtime_cuts_them() -> None:
    spec = ClipSpec.from_config(TSN_CONFIG)
    clips, labels = render_scene_clips(7, spec, seed=3)
    assert clips.shape == (7, 8, 224, 224, 3)
    assert labels.tolist() == [0, 1, 2, 3, 0, 1, 2]
    # Clip 0 again, as full frames through the runtime's preprocessing (resize + centre crop).
    rng = np.random.default_rng([3, 0])
    from pipelines.demo.train import FPS_RANGE
    from pipelines.demo.train_tsn import TSN_RENDER_SIZES

    fps = float(rng.uniform(*FPS_RANGE))
    size = TSN_RENDER_SIZES[int(rng.integers(len(TSN_RENDER_SIZES)))]
    frames = render_scene_clip("flat", spec.window_frames, fps, size, rng, spec.sample(spec.window_frames).ravel())
    runtime = preprocess(list(frames), spec)
    ours = to_model_input(clips[:1], spec)
    np.testing.assert_allclose(ours, runtime.reshape(ours.shape), atol=1e-6)


def to_model_input(clips: np.ndarray, spec: ClipSpec) -> np.ndarray:
    from pipelines.demo.train import to_inputs

    return to_inputs(clips, spec).permute(0, 2, 1, 3, 4).numpy()  # (N, T, 3, H, W)


def test_training_clips_are_random_crops_of_two_frames() -> None:
    spec = ClipSpec.from_config(TSN_CONFIG)
    clips, _ = render_scene_clips(4, spec, seed=9, train=True)
    assert clips.shape == (4, 2, 224, 224, 3)
    again, _ = render_scene_clips(4, spec, seed=9, train=True)
    assert np.array_equal(clips, again)


def test_quick_cli_writes_a_checkpoint_the_recognizer_opens(tmp_path: Path) -> None:
    # ResNet-18 instead of 50: the same code path in a few seconds.
    config = tmp_path / "tsn_r18_scenes.py"
    config.write_text(
        f"_base_ = [{str(TSN_CONFIG)!r}]\nmodel = dict(backbone=dict(depth=18), cls_head=dict(in_channels=512))\n"
    )
    out = tmp_path / "t.pth"
    assert main(["--quick", "--config", str(config), "--out", str(out)]) == 0
    saved = torch.load(out, weights_only=True)
    assert saved["meta"]["dataset_meta"]["classes"] == list(SCENE_CLASSES)
    assert saved["meta"]["steps"] == 2
    assert [path.name for path in tmp_path.iterdir() if path.suffix == ".pth"] == ["t.pth"]
    recognizer = open_recognizer(config, out, backend="torch")
    assert recognizer.class_names == list(SCENE_CLASSES)
    assert main(["--quick", "--config", str(config), "--out", str(out)]) == 0  # cached: not trained again
    assert torch.load(out, weights_only=True)["meta"]["seconds"] == saved["meta"]["seconds"]


def test_bad_arguments_are_one_line(caplog: pytest.LogCaptureFixture) -> None:
    assert main(["--steps", "0", "--out", "/nonexistent/x.pth"]) == 2
    assert caplog.messages == ["--steps: expected a positive int, got 0"]


def test_batch_norm_recalibration_replaces_running_statistics(tmp_path: Path) -> None:
    from torch import nn

    from engines.config import load_config
    from engines.models import build
    from pipelines.demo.train_tsn import recalibrate_batch_norm

    config = tmp_path / "tsn_r18_scenes.py"
    config.write_text(
        f"_base_ = [{str(TSN_CONFIG)!r}]\nmodel = dict(backbone=dict(depth=18), cls_head=dict(in_channels=512))\n"
    )
    model = build(load_config(config).model)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.running_mean.fill_(100.0)  # stale statistics, as training may leave them
        norm.running_var.fill_(1e-3)
    seen: list[torch.Tensor] = []
    norms[0].register_forward_hook(lambda _m, args, _out: seen.append(args[0].detach()))
    recalibrate_batch_norm(model, ClipSpec.from_config(config), clips=4, batch_size=2)
    assert len(seen) == 2  # two batches of 2 clips
    # A cumulative average of equal batches: the mean over every frame the layer saw.
    expected = torch.cat(seen).mean(dim=(0, 2, 3))
    torch.testing.assert_close(norms[0].running_mean, expected, rtol=1e-4, atol=1e-4)
    assert all(norm.running_var.min() > 1e-3 for norm in norms)
    assert all(norm.momentum == 0.1 for norm in norms)
    assert not model.training


def test_frozen_batch_norm_keeps_its_statistics_while_the_rest_trains() -> None:
    from torch import nn

    from pipelines.demo.train_tsn import freeze_batch_norm

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5))
    before = model[1].running_mean.clone()
    freeze_batch_norm(model)
    assert model.training and model[2].training and not model[1].training
    model(torch.randn(2, 3, 8, 8) + 5.0)
    assert torch.equal(model[1].running_mean, before)
