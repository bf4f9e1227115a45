"""Grad-CAM: parity with MMAction2's own ``mmaction.utils.GradCAM``, every family, motion, bad layer names."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from core.errors import ConfigError
from engines.config import load_config
from engines.export import build_recognizer
from engines.gradcam import GradCAM, LayerNotFound, blend, find_layer, view_frames
from engines.models import build
from engines.models.c3d import c3d_feature_size
from engines.transforms import preprocess
from tests.engines.mmaction_ref import build_mmaction_model, import_reference
from tests.engines.test_models_2d import tsm_cfg, tsn_cfg
from tests.engines.test_models_resnet3d import _randomize, _small_model

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "configs" / "demo" / "demo_slowonly_r18_synthetic.py"
DEMO_CHECKPOINT = ROOT / "pipelines" / "demo" / "assets" / "demo_recognizer.pth"
PARITY_ATOL = 1e-5
# MMAction2's GradCAM hooks with the deprecated Module.register_backward_hook
pytestmark = pytest.mark.filterwarnings("ignore:Using a non-full backward hook:FutureWarning")


def demo_model() -> tuple[nn.Module, Any]:
    """The shipped demo recognizer (a SlowOnly trained on synthetic motions) and its config."""
    cfg = load_config(DEMO_CONFIG)
    model, _ = build_recognizer(cfg.model, DEMO_CHECKPOINT)
    return model, cfg


def mmaction_cam(model_cfg: dict[str, Any], ours: nn.Module, raw: np.ndarray, layer: str) -> tuple[np.ndarray, ...]:
    """MMAction2's GradCAM on its own model (our weights) for one raw uint8 sample ``(V, C, ...)``."""
    ref = build_mmaction_model(copy.deepcopy(model_cfg))
    ref.load_state_dict(ours.state_dict(), strict=True)
    utils = import_reference("mmaction.utils")
    structures = import_reference("mmaction.structures")
    data = {"inputs": [torch.from_numpy(raw)], "data_samples": [structures.ActionDataSample()]}
    maps, preds = utils.GradCAM(ref, layer)._calculate_localization_map(data, use_labels=False)
    return maps.numpy(), preds.detach().numpy()


def normalised(raw: np.ndarray, mean: list[float], std: list[float]) -> torch.Tensor:
    """What MMAction2's ActionDataPreprocessor makes of a raw sample ``(V, C, ...)``, batched."""
    shape = (1, 3) + (1,) * (raw.ndim - 2)
    m = torch.tensor(mean, dtype=torch.float32).reshape(shape)
    s = torch.tensor(std, dtype=torch.float32).reshape(shape)
    return ((torch.from_numpy(raw).float() - m) / s)[None]


def _tsn() -> dict[str, Any]:
    return tsn_cfg(average_clips="prob")


def _tsm() -> dict[str, Any]:
    cfg = tsm_cfg(num_segments=4, average_clips="prob")
    cfg["data_preprocessor"].update(mean=[120.0, 110.0, 100.0], std=[60.0, 55.0, 50.0])
    return cfg


def _c3d() -> dict[str, Any]:
    return dict(
        type="Recognizer3D",
        backbone=dict(type="C3D", out_dim=c3d_feature_size(16, 32, 32)),
        cls_head=dict(type="I3DHead", num_classes=4, in_channels=4096, spatial_type=None),
        data_preprocessor=dict(type="ActionDataPreprocessor", format_shape="NCTHW"),
    )


def _x3d() -> dict[str, Any]:
    return dict(
        type="Recognizer3D",
        backbone=dict(type="X3D", gamma_w=1, gamma_b=1, gamma_d=1),
        cls_head=dict(type="X3DHead", in_channels=192, num_classes=4),
        data_preprocessor=dict(type="ActionDataPreprocessor", format_shape="NCTHW"),
    )


@pytest.mark.parametrize(
    "make_cfg, shape, layer",
    [
        (_tsn, (3, 3, 32, 32), "backbone/layer4/1/relu"),
        (_tsm, (4, 3, 32, 32), "backbone/layer3/0/relu"),
        (lambda: _small_model("slowfast"), (1, 3, 16, 32, 32), "backbone/slow_path/layer4/0/relu"),
        (lambda: _small_model("slowfast"), (1, 3, 16, 32, 32), "backbone/fast_path/layer3/0/relu"),
        (lambda: _small_model("i3d"), (2, 3, 8, 32, 32), "backbone/layer4/0/relu"),
        (lambda: _small_model("slowonly"), (1, 3, 8, 32, 32), "backbone/layer4/0/relu"),
        (lambda: _small_model("r2plus1d"), (1, 3, 8, 32, 32), "backbone/layer3/0/relu"),
        (_x3d, (1, 3, 4, 32, 32), "backbone/layer4/2/relu"),
        (_c3d, (1, 3, 16, 32, 32), "backbone/conv5b"),
    ],
    ids=["tsn", "tsm", "slowfast-slow", "slowfast-fast", "i3d-2views", "slowonly", "r2plus1d", "x3d", "c3d"],
)
def test_maps_equal_mmaction2_gradcam_on_random_weights(make_cfg: Any, shape: tuple[int, ...], layer: str) -> None:
    """Every 2D / 3D family, one or more views: MMAction2's maps, finite and in [0, 1]."""
    cfg = make_cfg()
    pre = cfg.setdefault("data_preprocessor", {})
    pre.setdefault("mean", [123.675, 116.28, 103.53])
    pre.setdefault("std", [58.395, 57.12, 57.375])
    ours = build(copy.deepcopy(cfg)).eval()
    _randomize(ours)
    raw = np.random.default_rng(1).integers(0, 256, shape).astype(np.uint8)
    expected_maps, expected_scores = mmaction_cam(cfg, ours, raw, layer)
    before = ours.cls_head.average_clips
    result = GradCAM(ours, layer)(normalised(raw, pre["mean"], pre["std"]))
    views, frames = shape[0], shape[2] if len(shape) == 5 else shape[0]
    assert result.maps.shape == expected_maps.shape == ((1, views) if len(shape) == 4 else (views, frames)) + shape[-2:]
    assert np.isfinite(result.maps).all() and result.maps.min() >= 0 and result.maps.max() <= 1
    np.testing.assert_allclose(result.maps, expected_maps, atol=PARITY_ATOL, rtol=0)
    np.testing.assert_allclose(result.scores, expected_scores, atol=PARITY_ATOL, rtol=1e-5)
    assert ours.cls_head.average_clips == before  # restored after the raw-score pass


def test_maps_equal_mmaction2_gradcam_on_the_demo_recognizer() -> None:
    model, cfg = demo_model()
    frames, _ = moving_disk_clip(direction=1)
    spec = cfg.clip
    raw = preprocess([frames[i] for i in spec.sample(len(frames)).ravel()], spec, normalize=False).astype(np.uint8)
    expected_maps, expected_scores = mmaction_cam(cfg.model, model, raw, "backbone/layer4/1/relu")
    result = GradCAM(model)(normalised(raw, list(spec.mean), list(spec.std)))
    assert result.maps.shape == expected_maps.shape == (1, 8, 64, 112)
    np.testing.assert_allclose(result.maps, expected_maps, atol=PARITY_ATOL, rtol=0)
    np.testing.assert_allclose(result.scores, expected_scores, atol=PARITY_ATOL, rtol=1e-5)


def moving_disk_clip(direction: int, frames: int = 32, size: tuple[int, int] = (224, 128)) -> tuple[list, list]:
    """A disk moving sideways over a static noisy background with a static box on the other side.

    Returns:
        The BGR frames and, per frame, the disk's mask.
    """
    width, height = size
    rng = np.random.default_rng(0)
    background = np.clip(rng.normal(90, 6, (height, width, 3)), 0, 255).astype(np.uint8)
    box_x = 20 if direction > 0 else width - 60
    cv2.rectangle(background, (box_x, 40), (box_x + 40, 90), (40, 160, 220), -1)
    start = 100 if direction > 0 else 124
    images, masks = [], []
    for t in range(frames):
        image, mask = background.copy(), np.zeros((height, width), np.uint8)
        center = (start + direction * 3 * t, height // 2)
        cv2.circle(image, center, 16, (230, 230, 60), -1)
        cv2.circle(mask, center, 16, 1, -1)
        images.append(image)
        masks.append(mask)
    return images, masks


@pytest.mark.parametrize("direction, label", [(1, "move_right"), (-1, "move_left")])
def test_heat_follows_the_moving_object(direction: int, label: str) -> None:
    """The demo recognizer knows motion: its map is brightest on the moving disk, not on the static box."""
    model, cfg = demo_model()
    spec = cfg.clip
    frames, masks = moving_disk_clip(direction)
    inds = spec.sample(len(frames)).ravel()
    result = GradCAM(model)(torch.from_numpy(preprocess([frames[i] for i in inds], spec)[None]))
    maps = result.maps[0]
    assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0
    assert maps.max() == pytest.approx(1.0) and maps.min() == pytest.approx(0.0)
    names = cfg.get("dataset_meta")["classes"]
    assert names[int(np.argmax(result.scores[0]))] == label
    h, w = maps.shape[1:]
    moving = np.stack([cv2.resize(masks[i], (w, h), interpolation=cv2.INTER_NEAREST) for i in inds]).astype(bool)
    box = np.zeros((h, w), bool)
    x0 = 10 if direction > 0 else w - 30
    box[20:45, x0 : x0 + 20] = True
    on_disk, on_box, elsewhere = maps[moving].mean(), maps[:, box].mean(), maps[~moving].mean()
    assert on_disk > 2 * on_box and on_disk > elsewhere + 0.15, (on_disk, on_box, elsewhere)


@pytest.mark.parametrize(
    "make_cfg, layer, expect",
    [
        (lambda: _small_model("slowfast"), "backbone/layer4/1/relu", "backbone/slow_path/layer4/0/relu"),
        (_tsn, "backbone/layer4/1/rleu", "backbone/layer4/1/relu"),
        (_tsn, "backbone/layer9", "backbone/layer"),
        (_tsn, "", "valid names"),
    ],
)
def test_unknown_layer_is_one_line_listing_close_names(make_cfg: Any, layer: str, expect: str) -> None:
    model = build(make_cfg()).eval()
    with pytest.raises(LayerNotFound) as info:
        find_layer(model, layer)
    message = str(info.value)
    assert "\n" not in message and f"--target-layer-name {layer}:" in message and expect in message


def test_a_layer_without_a_feature_map_is_refused() -> None:
    model = build(_c3d()).eval()
    with pytest.raises(ConfigError, match="expected a 5-D feature map"):
        GradCAM(model, "backbone/relu")(torch.zeros(1, 1, 3, 16, 32, 32))


def test_blend_is_mmaction2s_alpha_blending() -> None:
    maps = np.array([[[0.0, 0.5, 1.0]]], np.float32)
    frames = np.full((1, 1, 3, 3), 200, np.uint8)
    cm = import_reference("matplotlib.pyplot").get_cmap("viridis")
    expected = (0.3 * cm(maps)[..., :3] + 0.7 * frames / 255.0) * 255.0
    got = blend(maps, frames, alpha=0.3)
    assert np.abs(got.astype(float) - expected).max() <= 1.5  # OpenCV's viridis table is matplotlib's in uint8
    with pytest.raises(ValueError, match="--alpha"):
        blend(maps, frames, alpha=1.5)


def test_view_frames_orders_views_then_time() -> None:
    pixels = np.arange(2 * 3 * 4 * 2 * 2, dtype=np.float32).reshape(2, 3, 4, 2, 2)  # (V, C, T, H, W)
    frames = view_frames(pixels, "NCTHW")
    assert frames.shape == (8, 2, 2, 3)
    np.testing.assert_array_equal(frames[5], pixels[1, :, 1].transpose(1, 2, 0))
    flat = view_frames(pixels[:, :, 0], "NCHW")
    np.testing.assert_array_equal(flat[1], pixels[1, :, 0].transpose(1, 2, 0))


def test_frozen_weights_give_the_same_maps() -> None:
    """A model whose weights do not require gradients (frozen stages) still has a graph to the target layer."""
    model, _ = demo_model()
    x = torch.randn(1, 1, 3, 8, 64, 112, generator=torch.Generator().manual_seed(4))
    expected = GradCAM(model)(x).maps
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    np.testing.assert_array_equal(GradCAM(model)(x).maps, expected)
