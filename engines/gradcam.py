"""Grad-CAM heat maps of a recognizer, computed as MMAction2's ``mmaction.utils.GradCAM`` does.

For the top class score of each sample (the head's raw scores: ``average_clips`` is set to
``'score'`` while the map is computed, as MMAction2 does), the gradients with respect to the
target layer's activations are averaged over the layer's spatial positions; these weights
sum the activation channels, a ReLU keeps the positive evidence, and the map is upsampled
(trilinear) to the input's ``(T, H, W)`` and normalised to ``[0, 1]`` per clip.

The target layer is named as MMAction2's ``--target-layer-name`` names it: the module path
with ``/`` between the parts, e.g. ``backbone/layer4/1/relu``. SlowFast has one such path
per pathway (``backbone/slow_path/layer4/1/relu`` or ``backbone/fast_path/...``): as in
MMAction2 the name picks the pathway, whose map is upsampled to the whole clip.

Shapes (MMAction2's): a 2D recognizer's map is ``(N, V, H, W)`` (one map per sample over its
``V`` frames); a 3D recognizer's is ``(N * V, T, H, W)`` (one map per clip view).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.errors import ConfigError

#: MMAction2's default ``--target-layer-name`` (vis_cam.py and demo_gradcam.py).
DEFAULT_TARGET_LAYER = "backbone/layer4/1/relu"
#: Added to the denominator of the per-clip normalisation (MMAction2's ``delta``).
NORM_DELTA = 1e-20


class LayerNotFound(ConfigError):
    """``--target-layer-name`` names no module of the model."""


def layer_names(model: nn.Module) -> list[str]:
    """Every module path of ``model`` in MMAction2's ``a/b/c`` spelling (the model itself excluded)."""
    return [name.replace(".", "/") for name, _ in model.named_modules() if name]


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """The module that ``name`` (``backbone/layer4/1/relu``) names.

    Raises:
        LayerNotFound: One line naming the layer and listing close valid names.
    """
    module: nn.Module | None = model
    for part in name.split("/"):
        module = module._modules.get(part) if module is not None and part else None
    if module is None or module is model:
        names = layer_names(model)
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
        if not close:  # e.g. backbone/layer4/1/relu for SlowFast: suggest the names that end alike
            tail = name.rsplit("/", 2)[-2:]
            close = [n for n in names if n.split("/")[-2:] == tail][:5]
        hint = f"; close valid names: {', '.join(close)}" if close else f"; valid names start with: {names[0]}"
        raise LayerNotFound(f"--target-layer-name {name}: {type(model).__name__} has no such layer{hint}")
    return module


@dataclass(frozen=True)
class CamResult:
    """What :meth:`GradCAM.__call__` found.

    Attributes:
        maps: float32 ``(B, T, H, W)`` heat maps in ``[0, 1]`` (B, T as in the module docstring).
        scores: ``(N, num_classes)`` raw head scores (views folded by ``'score'`` averaging).
    """

    maps: np.ndarray
    scores: np.ndarray


class GradCAM:
    """Grad-CAM on a recognizer of :mod:`engines.models` (``model(inputs) -> scores``).

    Args:
        model: A ``Recognizer2D`` / ``Recognizer3D`` (its ``input_format`` tells which).
        target_layer_name: MMAction2's ``a/b/c`` module path.

    Raises:
        LayerNotFound: If the layer does not exist.
        ConfigError: If the model has no ``input_format`` of ``NCHW`` / ``NCTHW``.
    """

    def __init__(self, model: nn.Module, target_layer_name: str = DEFAULT_TARGET_LAYER) -> None:
        fmt = getattr(model, "input_format", None)
        if fmt not in ("NCHW", "NCTHW"):
            raise ConfigError(f"GradCAM: expected a Recognizer2D or Recognizer3D, got {type(model).__name__}")
        self.model = model.eval()
        self.is_2d = fmt == "NCHW"
        self.layer_name = target_layer_name
        self.layer = find_layer(model, target_layer_name)

    @contextmanager
    def _raw_scores(self) -> Iterator[None]:
        head = getattr(self.model, "cls_head", None)
        before = getattr(head, "average_clips", None)
        if head is not None and hasattr(head, "average_clips"):
            head.average_clips = "score"
        try:
            yield
        finally:
            if head is not None and hasattr(head, "average_clips"):
                head.average_clips = before

    def __call__(self, inputs: Tensor) -> CamResult:
        """Heat maps for a normalised batch ``(N, V, C, H, W)`` or ``(N, V, C, T, H, W)``.

        Raises:
            ConfigError: If the target layer did not run, or its output is not the 4-D
                (2D model) / 5-D (3D model) feature map Grad-CAM needs.
        """
        captured: list[Tensor] = []

        def keep(_module: nn.Module, _args: object, output: object) -> None:
            if isinstance(output, Tensor):
                captured.append(output)

        handle = self.layer.register_forward_hook(keep)
        try:
            with torch.enable_grad(), self._raw_scores():
                # a graph even where the weights are frozen (requires_grad=False); the values are the same
                scores = self.model(inputs.detach().requires_grad_(True))
                if not captured:
                    raise ConfigError(f"--target-layer-name {self.layer_name}: the layer did not run on this input")
                activations = captured[-1]  # a module run several times: its last output, as MMAction2 keeps
                want = 4 if self.is_2d else 5
                if activations.dim() != want:
                    raise ConfigError(
                        f"--target-layer-name {self.layer_name}: expected a {want}-D feature map, got shape "
                        f"{tuple(activations.shape)}; pick a convolution or activation layer"
                    )
                (gradients,) = torch.autograd.grad(scores.max(dim=-1)[0].sum(), activations)
        finally:
            handle.remove()
        maps = self._localization_map(inputs, activations.detach(), gradients.detach())
        return CamResult(maps.float().cpu().numpy(), scores.detach().float().cpu().numpy())

    def _localization_map(self, inputs: Tensor, activations: Tensor, gradients: Tensor) -> Tensor:
        if self.is_2d:
            b, t, _, h, w = inputs.shape
            b_tg, c = gradients.shape[:2]
            tg = b_tg // b
        else:
            b1, b2, _, t, h, w = inputs.shape
            b = b1 * b2
            c, tg = gradients.shape[1], gradients.shape[2]
            gradients = gradients.permute(0, 2, 1, 3, 4)
            activations = activations.permute(0, 2, 1, 3, 4)
        weights = gradients.reshape(b, tg, c, -1).mean(dim=3).reshape(b, tg, c, 1, 1)
        activations = activations.reshape(b, tg, c, *activations.shape[-2:])
        cam = F.relu((weights * activations).sum(dim=2, keepdim=True)).permute(0, 2, 1, 3, 4)
        cam = F.interpolate(cam, size=(int(t), int(h), int(w)), mode="trilinear", align_corners=False)
        flat = cam.reshape(b, -1)
        low = flat.min(dim=-1, keepdim=True)[0].reshape(b, 1, 1, 1, 1)
        high = flat.max(dim=-1, keepdim=True)[0].reshape(b, 1, 1, 1, 1)
        return ((cam - low) / (high - low + NORM_DELTA)).squeeze(1)


def view_frames(pixels: np.ndarray, input_format: str) -> np.ndarray:
    """The frames of one raw (0-255, RGB) sample in the order of the heat maps: ``(B*T, H, W, 3)``.

    Args:
        pixels: ``(V, 3, H, W)`` or ``(V, 3, T, H, W)``, as :func:`engines.transforms.preprocess`
            returns it without normalising.
        input_format: ``'NCHW'`` or ``'NCTHW'``.
    """
    if input_format == "NCHW":
        return np.ascontiguousarray(pixels.transpose(0, 2, 3, 1))
    return np.ascontiguousarray(pixels.transpose(0, 2, 3, 4, 1).reshape(-1, *pixels.shape[-2:], 3))


def blend(maps: np.ndarray, frames_rgb: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """MMAction2's ``_alpha_blending``: ``alpha * viridis(map) + (1 - alpha) * frame``, as uint8 RGB.

    The viridis colours are OpenCV's table, looked up as matplotlib does (``floor(v * 256)``,
    clipped to 255). The result is truncated to uint8 as MMAction2's vis_cam.py does.

    Args:
        maps: ``(M, H, W)`` float heat maps in ``[0, 1]``.
        frames_rgb: ``(M, H, W, 3)`` RGB pixels, 0-255.
        alpha: Weight of the heat map, 0-1.

    Raises:
        ConfigError: If ``alpha`` is outside ``[0, 1]`` or the shapes differ.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"--alpha: expected a value in [0, 1], got {alpha}")
    if maps.shape != frames_rgb.shape[:-1]:
        raise ConfigError(f"blend: heat maps {maps.shape} do not match frames {frames_rgb.shape}")
    index = np.clip((np.nan_to_num(maps) * 256).astype(np.int64), 0, 255).astype(np.uint8)
    table = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(256, 1), cv2.COLORMAP_VIRIDIS)
    heat = table[index.ravel(), 0, ::-1].reshape(*maps.shape, 3).astype(np.float64) / 255.0
    mixed = alpha * heat + (1.0 - alpha) * (frames_rgb.astype(np.float64) / 255.0)
    return (mixed * 255.0).astype(np.uint8)
