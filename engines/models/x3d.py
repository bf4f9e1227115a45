"""X3D backbone (Feichtenhofer, CVPR 2020) with MMAction2 1.x parameter names.

The layout follows ``mmaction.models.backbones.X3D`` so that the ``backbone.*``
keys of MMAction2 model-zoo checkpoints load with ``strict=True``:

* stem ``conv1_s`` (1×3×3 spatial conv) and ``conv1_t`` (5×1×1 depthwise
  temporal conv + BN + ReLU);
* ``layer1`` … ``layer4``: :class:`BlockX3D` bottlenecks with a depthwise 3×3×3
  middle conv, an optional squeeze-excitation unit (``se_module.fc1`` /
  ``se_module.fc2``) and Swish;
* ``conv5``: 1×1×1 conv + BN + ReLU that widens the features by ``gamma_b``.

Convs are :class:`~engines.models.layers.ConvModule` (children ``conv``, ``bn``, ``activate``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from engines.errors import ModelConfigError
from engines.models.layers import CONV3D_CFG, ConvModule, Swish, build_activation, check_conv_cfg
from engines.models.registry import register


def _round_width(width: float, multiplier: float, min_width: int = 8, divisor: int = 8) -> int:
    """Scale ``width`` by ``multiplier`` and round to a multiple of ``divisor`` (X3D's rule)."""
    if not multiplier:
        return int(width)
    width *= multiplier
    rounded = max(min_width, int(width + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * width:
        rounded += divisor
    return int(rounded)


def _round_repeats(repeats: int, multiplier: float) -> int:
    """Scale a block count by the depth multiplier, rounding up."""
    if not multiplier:
        return repeats
    return math.ceil(multiplier * repeats)


class SEModule(nn.Module):
    """Squeeze-excitation: global average pool → 1×1×1 conv → ReLU → 1×1×1 conv → sigmoid gate.

    Args:
        channels: Channels of the gated features.
        reduction: Bottleneck width as a fraction of ``channels`` (rounded to 8).
    """

    def __init__(self, channels: int, reduction: float) -> None:
        super().__init__()
        self.bottleneck = _round_width(channels, reduction)
        self.avg_pool = nn.AdaptiveAvgPool3d(1)
        self.fc1 = nn.Conv3d(channels, self.bottleneck, kernel_size=1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv3d(self.bottleneck, channels, kernel_size=1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * gate


class BlockX3D(nn.Module):
    """X3D bottleneck: 1×1×1 conv → depthwise 3×3×3 conv → [SE] → Swish → 1×1×1 conv, plus identity.

    Args:
        inplanes: Input channels.
        planes: Bottleneck (depthwise) channels.
        outplanes: Output channels.
        spatial_stride: Spatial stride of the depthwise conv.
        downsample: Module applied to the identity path, or ``None``.
        se_ratio: SE bottleneck ratio, or ``None`` for no SE unit.
        use_swish: Accepted for MMAction2 compatibility. MMAction2 1.x applies Swish
            whatever its value, and so does this class, to give identical outputs.
        conv_cfg: ``None`` or ``dict(type='Conv3d')``.
        norm_cfg: Norm config of the three convs.
        act_cfg: Activation after ``conv1`` and after the residual sum.
        with_cp: Training-only (gradient checkpointing); ignored.
    """

    def __init__(
        self,
        inplanes: int,
        planes: int,
        outplanes: int,
        spatial_stride: int = 1,
        downsample: nn.Module | None = None,
        se_ratio: float | None = None,
        use_swish: bool = True,
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = None,
        act_cfg: Mapping[str, Any] | None = None,
        with_cp: bool = False,
    ) -> None:
        super().__init__()
        conv_cfg = CONV3D_CFG if conv_cfg is None else conv_cfg
        norm_cfg = {"type": "BN3d"} if norm_cfg is None else norm_cfg
        act_cfg = {"type": "ReLU"} if act_cfg is None else act_cfg
        common: dict[str, Any] = {"bias": False, "conv_cfg": conv_cfg, "norm_cfg": norm_cfg}
        self.inplanes = inplanes
        self.planes = planes
        self.outplanes = outplanes
        self.spatial_stride = spatial_stride
        self.se_ratio = se_ratio
        self.use_swish = use_swish
        self.conv1 = ConvModule(inplanes, planes, 1, act_cfg=act_cfg, **common)
        self.conv2 = ConvModule(
            planes,
            planes,
            3,
            stride=(1, spatial_stride, spatial_stride),
            padding=1,
            groups=planes,
            act_cfg=None,
            **common,
        )
        self.swish = Swish()
        self.conv3 = ConvModule(planes, outplanes, 1, act_cfg=None, **common)
        self.downsample = downsample
        self.se_module = SEModule(planes, se_ratio) if se_ratio is not None else None
        self.relu = build_activation(act_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        if self.se_module is not None:
            out = self.se_module(out)
        out = self.conv3(self.swish(out))
        identity = x if self.downsample is None else self.downsample(x)
        out = out + identity
        return self.relu(out)


@register()
class X3D(nn.Module):
    """X3D backbone: ``(N, C, T, H, W)`` clips → ``(N, feat_dim, T, H/32, W/32)`` features.

    With the default strides the output is 32× smaller in H and W; T is kept.
    X3D-S and X3D-M share the model (``gamma_w=1, gamma_b=2.25, gamma_d=2.2``,
    ``feat_dim=432``) and differ only in the test clip (13×182² vs 16×256²).

    Args:
        gamma_w: Channel width multiplier (base width 24).
        gamma_b: Bottleneck width multiplier.
        gamma_d: Depth multiplier of the ``(1, 2, 5, 3)`` stage blocks.
        pretrained: Training-only (MMAction2 loads it in ``init_weights``); ignored.
        in_channels: Input channels.
        num_stages: Number of residual stages, 1 to 4.
        spatial_strides: Spatial stride of the first block of each stage.
        frozen_stages: Training-only; ignored.
        se_style: ``'half'`` (SE in every other block, starting with the first) or ``'all'``.
        se_ratio: SE bottleneck ratio, or ``None`` for no SE units.
        use_swish: Accepted for compatibility; Swish is always used (as in MMAction2 1.x).
        conv_cfg: ``dict(type='Conv3d')``; no other conv is supported.
        norm_cfg: Norm config (``BN3d`` or ``SyncBN``).
        act_cfg: Activation config (ReLU in every model-zoo checkpoint).
        norm_eval: Training-only; ignored.
        with_cp: Training-only; ignored.
        zero_init_residual: Training-only; ignored.

    Raises:
        ModelConfigError: If a value is out of range or a cfg names an unsupported type.
    """

    def __init__(
        self,
        gamma_w: float = 1.0,
        gamma_b: float = 1.0,
        gamma_d: float = 1.0,
        pretrained: str | None = None,
        in_channels: int = 3,
        num_stages: int = 4,
        spatial_strides: Sequence[int] = (2, 2, 2, 2),
        frozen_stages: int = -1,
        se_style: str = "half",
        se_ratio: float | None = 1 / 16,
        use_swish: bool = True,
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = None,
        act_cfg: Mapping[str, Any] | None = None,
        norm_eval: bool = False,
        with_cp: bool = False,
        zero_init_residual: bool = True,
    ) -> None:
        super().__init__()
        if not 1 <= num_stages <= 4:
            raise ModelConfigError(f"X3D: num_stages must be 1 to 4, got {num_stages}")
        if len(spatial_strides) != num_stages:
            raise ModelConfigError(
                f"X3D: spatial_strides needs one entry per stage ({num_stages}), got {tuple(spatial_strides)}"
            )
        if se_style not in ("all", "half"):
            raise ModelConfigError(f"X3D: se_style must be 'all' or 'half', got {se_style!r}")
        if se_ratio is not None and se_ratio <= 0:
            raise ModelConfigError(f"X3D: se_ratio must be None or > 0, got {se_ratio}")
        check_conv_cfg(conv_cfg, ("Conv3d",), "conv_cfg")
        conv_cfg = CONV3D_CFG if conv_cfg is None else conv_cfg
        norm_cfg = {"type": "BN3d"} if norm_cfg is None else norm_cfg
        act_cfg = {"type": "ReLU"} if act_cfg is None else act_cfg

        self.gamma_w = gamma_w
        self.gamma_b = gamma_b
        self.gamma_d = gamma_d
        self.in_channels = in_channels
        self.num_stages = num_stages
        self.spatial_strides = tuple(spatial_strides)
        self.se_style = se_style
        self.se_ratio = se_ratio
        self.use_swish = use_swish
        self.base_channels = _round_width(24, gamma_w)
        self.stage_blocks = [_round_repeats(n, gamma_d) for n in (1, 2, 5, 3)][:num_stages]

        common: dict[str, Any] = {"bias": False, "conv_cfg": conv_cfg, "norm_cfg": norm_cfg}
        base = self.base_channels
        self.conv1_s = ConvModule(
            in_channels,
            base,
            (1, 3, 3),
            stride=(1, 2, 2),
            padding=(0, 1, 1),
            bias=False,
            conv_cfg=conv_cfg,
            act_cfg=None,
        )
        self.conv1_t = ConvModule(base, base, (5, 1, 1), padding=(2, 0, 0), groups=base, act_cfg=act_cfg, **common)

        self.res_layers: list[str] = []
        layer_inplanes = base
        for i, num_blocks in enumerate(self.stage_blocks):
            inplanes = base * 2**i
            planes = int(inplanes * gamma_b)
            stride = self.spatial_strides[i]
            downsample = None
            if stride != 1 or layer_inplanes != inplanes:
                downsample = ConvModule(layer_inplanes, inplanes, 1, stride=(1, stride, stride), act_cfg=None, **common)
            blocks = []
            for j in range(num_blocks):
                use_se = se_style == "all" or j % 2 == 0
                blocks.append(
                    BlockX3D(
                        layer_inplanes if j == 0 else inplanes,
                        planes,
                        inplanes,
                        spatial_stride=stride if j == 0 else 1,
                        downsample=downsample if j == 0 else None,
                        se_ratio=se_ratio if use_se else None,
                        use_swish=use_swish,
                        conv_cfg=conv_cfg,
                        norm_cfg=norm_cfg,
                        act_cfg=act_cfg,
                    )
                )
            layer_inplanes = inplanes
            name = f"layer{i + 1}"
            self.add_module(name, nn.Sequential(*blocks))
            self.res_layers.append(name)

        last = base * 2 ** (len(self.stage_blocks) - 1)
        self.feat_dim = int(last * gamma_b)
        self.conv5 = ConvModule(last, self.feat_dim, 1, act_cfg=act_cfg, **common)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Extract features from ``(N, C, T, H, W)`` clips."""
        x = self.conv1_t(self.conv1_s(x))
        for name in self.res_layers:
            x = getattr(self, name)(x)
        return self.conv5(x)
