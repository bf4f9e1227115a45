"""mmcv's ``RoIAlign`` (``aligned=True``, adaptive sampling, average pooling) in plain, exportable torch.

mmcv's kernel (``mmcv/ops/csrc/.../roi_align``, from Detectron2 / Caffe2) averages, for each
output bin, a ``grid_h × grid_w`` set of bilinear samples. With ``sampling_ratio=0`` the grid
is adaptive, ``ceil(roi_size / output_size)`` per box, so the number of samples depends on
the data. Bilinear sampling is separable, and so is the kernel's rule that a sample outside
``[-1, size]`` counts as zero: the result of one box is

    out[c] = Ay @ feature[c] @ Ax.T / (grid_h * grid_w)

with ``Ay`` (``output_h × H``) the summed row weights of the bin's samples and ``Ax``
(``output_w × W``) the column weights. :func:`roi_align` builds ``Ay`` / ``Ax`` for every box
at once over a sample axis as long as the largest grid (a dynamic ``Range``), masking the
samples each box does not take, so it is exact for any box and exports to ONNX as ordinary
ops (no custom ``RoiAlign`` node, hence the same numbers in ONNX Runtime and OpenVINO, and
no backend-specific RoiAlign behaviour to trust). Zero boxes give ``(0, C, oh, ow)``.

:func:`adaptive_avg_pool2d` is ``nn.AdaptiveAvgPool2d`` written the same way, because the
ONNX exporter refuses adaptive pooling whose input size is dynamic.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from engines.errors import ModelConfigError


def pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """``value`` as ``(h, w)`` positive ints.

    Raises:
        ModelConfigError: For anything else.
    """
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair):
        raise ModelConfigError(f"{name}: expected a positive int or (h, w), got {value!r}")
    return int(pair[0]), int(pair[1])


def _size(x: Tensor, dim: int) -> Tensor:
    """``x.shape[dim]`` as a 0-d int64 tensor that stays dynamic when traced for ONNX."""
    if torch.jit.is_tracing():
        return torch._shape_as_tensor(x)[dim]
    return torch.tensor(x.shape[dim], dtype=torch.int64, device=x.device)


def _arange(end: Tensor, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``arange(end)`` for a 0-d tensor ``end``: traced, it stays a dynamic ONNX ``Range``."""
    return torch.arange(end, dtype=dtype, device=device)  # type: ignore[call-overload]


def _axis_weights(start: Tensor, bin_size: Tensor, grid: Tensor, out: int, size: Tensor) -> Tensor:
    """Summed bilinear weights ``(K, out, size)`` of each box's samples along one axis.

    Args:
        start: ``(K,)`` start of each box on this axis, in feature pixels (offset applied).
        bin_size: ``(K,)`` size of one output bin.
        grid: ``(K,)`` int64 samples per bin (0 gives no samples).
        out: Output bins on this axis.
        size: The feature map's size on this axis (a 0-d int64 tensor, dynamic in a graph).
    """
    most = torch.cat([grid, grid.new_ones(1)]).max()
    steps = _arange(most, torch.float32, start.device)  # (G,)
    bins = torch.arange(out, dtype=torch.float32, device=start.device)  # (out,)
    taken = grid.clamp(min=1).to(torch.float32)
    # The kernel's float32 arithmetic, in its order: start + p * bin + (i + .5) * bin / grid.
    pos = (
        start[:, None, None]
        + bins[None, :, None] * bin_size[:, None, None]
        + (steps[None, None, :] + 0.5) * bin_size[:, None, None] / taken[:, None, None]
    )  # (K, out, G)
    length = size.to(torch.float32)
    inside = (steps[None, None, :] < grid[:, None, None].to(torch.float32)) & (pos >= -1.0) & (pos <= length)
    pos = pos.clamp(min=0.0)
    low = pos.floor()
    last = length - 1.0
    at_end = low >= last
    low = torch.where(at_end, last.expand_as(low), low)
    pos = torch.where(at_end, low, pos)
    high = torch.where(at_end, low, low + 1.0)
    frac = pos - low
    keep = inside.to(torch.float32)
    cells = _arange(size, torch.float32, start.device)  # (size,)
    weights = ((1.0 - frac) * keep)[..., None] * (low[..., None] == cells).to(torch.float32)
    weights = weights + (frac * keep)[..., None] * (high[..., None] == cells).to(torch.float32)
    return weights.sum(dim=2)


def roi_align(
    features: Tensor,
    rois: Tensor,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int = 0,
    aligned: bool = True,
) -> Tensor:
    """mmcv's ``roi_align`` with ``pool_mode='avg'``.

    Args:
        features: ``(N, C, H, W)`` float32.
        rois: ``(K, 5)``: batch index, x1, y1, x2, y2 in input pixels.
        output_size: ``(output_h, output_w)``.
        spatial_scale: Feature pixels per input pixel (``1 / featmap_stride``).
        sampling_ratio: Samples per bin and axis; ``0`` is mmcv's adaptive ``ceil(roi / output)``.
        aligned: Shift boxes by half a feature pixel (mmcv's ``aligned=True``, ONNX's
            ``half_pixel``); ``False`` is the legacy mode that makes boxes at least one pixel.

    Returns:
        ``(K, C, output_h, output_w)``. A box with ``x2 < x1`` or ``y2 < y1`` (which mmcv's
        CPU kernel refuses) gives zeros.
    """
    out_h, out_w = output_size
    offset = 0.5 if aligned else 0.0
    boxes = rois[:, 1:5].to(torch.float32) * spatial_scale - offset
    x1, y1 = boxes[:, 0], boxes[:, 1]
    width, height = boxes[:, 2] - x1, boxes[:, 3] - y1
    if not aligned:
        width, height = width.clamp(min=1.0), height.clamp(min=1.0)
    bin_h, bin_w = height / out_h, width / out_w
    if sampling_ratio > 0:
        grid_h = torch.full_like(height, sampling_ratio, dtype=torch.int64)
        grid_w = torch.full_like(width, sampling_ratio, dtype=torch.int64)
    else:
        grid_h, grid_w = torch.ceil(height / out_h).to(torch.int64), torch.ceil(width / out_w).to(torch.int64)
    rows = _axis_weights(y1, bin_h, grid_h, out_h, _size(features, 2))  # (K, out_h, H)
    cols = _axis_weights(x1, bin_w, grid_w, out_w, _size(features, 3))  # (K, out_w, W)
    count = (grid_h * grid_w).clamp(min=1).to(features.dtype)
    # Rows of every image first, then each box keeps its own image's: (K, N, C, oh, W) -> (K, C, oh, W).
    # Multiplying by an exact one-hot adds only zeros, and no (K, C, H, W) copy of the map is made.
    images = torch.arange(features.shape[0], device=features.device)
    own = (rois[:, 0].to(torch.int64)[:, None] == images[None, :]).to(features.dtype)  # (K, N)
    pooled_rows = torch.matmul(rows[:, None, None].to(features.dtype), features[None])
    pooled_rows = (pooled_rows * own[:, :, None, None, None]).sum(dim=1)
    pooled = torch.matmul(pooled_rows, cols.transpose(1, 2)[:, None].to(features.dtype))
    return pooled / count[:, None, None, None]


class RoIAlign(nn.Module):
    """mmcv's ``RoIAlign`` module (average pooling), see :func:`roi_align`.

    Args:
        output_size: Output ``(h, w)`` or one int for both.
        spatial_scale: Feature pixels per input pixel.
        sampling_ratio: Samples per bin and axis; ``0`` is adaptive.
        pool_mode: Only ``'avg'`` (what every MMAction2 AVA config uses).
        aligned: mmcv's ``aligned``.
        use_torchvision: Must be false (mmcv's own kernel is what this reproduces).

    Raises:
        ModelConfigError: For ``pool_mode='max'``, ``use_torchvision`` or bad sizes.
    """

    def __init__(
        self,
        output_size: int | Sequence[int],
        spatial_scale: float = 1.0,
        sampling_ratio: int = 0,
        pool_mode: str = "avg",
        aligned: bool = True,
        use_torchvision: bool = False,
    ) -> None:
        super().__init__()
        self.output_size = pair(output_size, "RoIAlign.output_size")
        if pool_mode != "avg":
            raise ModelConfigError(f"RoIAlign.pool_mode: only 'avg' is supported, got {pool_mode!r}")
        if use_torchvision:
            raise ModelConfigError("RoIAlign.use_torchvision: torchvision's RoIAlign is not supported; set it False")
        if not isinstance(sampling_ratio, int) or sampling_ratio < 0:
            raise ModelConfigError(f"RoIAlign.sampling_ratio: expected an int >= 0, got {sampling_ratio!r}")
        if not float(spatial_scale) > 0:
            raise ModelConfigError(f"RoIAlign.spatial_scale: expected a positive number, got {spatial_scale!r}")
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = sampling_ratio
        self.pool_mode = pool_mode
        self.aligned = bool(aligned)

    def forward(self, features: Tensor, rois: Tensor) -> Tensor:
        """``(K, C, oh, ow)`` from features ``(N, C, H, W)`` and rois ``(K, 5)``."""
        return roi_align(features, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        )


def _pool_matrix(out: int, size: Tensor, device: torch.device) -> Tensor:
    """``(out, size)``: row ``i`` averages cells ``floor(i * size / out)`` to ``ceil((i + 1) * size / out)``."""
    cells = _arange(size, torch.int64, device)
    bins = torch.arange(out, device=device)
    start = torch.div(bins * size, out, rounding_mode="floor")
    end = torch.div((bins + 1) * size + out - 1, out, rounding_mode="floor")
    member = ((cells[None, :] >= start[:, None]) & (cells[None, :] < end[:, None])).to(torch.float32)
    return member / (end - start).to(torch.float32)[:, None]


def adaptive_avg_pool2d(x: Tensor, output_size: tuple[int, int]) -> Tensor:
    """``nn.functional.adaptive_avg_pool2d`` on ``(N, C, H, W)`` that exports with dynamic ``H, W``."""
    rows = _pool_matrix(output_size[0], _size(x, 2), x.device).to(x.dtype)
    cols = _pool_matrix(output_size[1], _size(x, 3), x.device).to(x.dtype)
    return torch.matmul(torch.matmul(rows, x), cols.t())
