"""CSPNeXt, the backbone of RTMDet and RTMPose, with mmdet 3.x's parameter names.

Plain torch, inference only. The modules and their children are named as mmdet 3.3 names
them (``mmdet/models/backbones/cspnext.py``, ``mmdet/models/layers/csp_layer.py``,
``mmdet/models/layers/se_layer.py``, ``SPPBottleneck`` of ``csp_darknet.py`` and mmcv's
``DepthwiseSeparableConvModule``), so an mmdet / mmpose checkpoint loads with its own keys:
``backbone.stem.0.conv.weight``, ``backbone.stage1.1.main_conv.bn.running_mean``,
``backbone.stage4.2.blocks.0.conv2.depthwise_conv.conv.weight``, ``backbone.stage4.1.conv1...``
(the SPP bottleneck), ``backbone.stage2.1.attention.fc.weight`` (channel attention).

A stage is ``Sequential(downsample conv 3×3 s2, [SPPBottleneck on the last P5 stage], CSPLayer)``;
a CSP layer splits into a main path (1×1 conv, ``num_blocks`` CSPNeXt blocks: 3×3 conv then a
depthwise-separable 5×5) and a short path (1×1 conv), concatenates them, applies channel
attention (global average pool → 1×1 conv → hard sigmoid → scale) and fuses with a 1×1 conv.

Training-only keys of the configs (``frozen_stages``, ``norm_eval``, ``init_cfg``) are accepted
and ignored; ``SyncBN`` is a plain batch norm at inference (same keys).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from engines.errors import ModelConfigError
from engines.models.layers import ConfigDict, ConvModule
from engines.models.registry import register

#: mmdet's defaults for the CSPNeXt family (a config's ``norm_cfg=dict(type='SyncBN')`` replaces
#: the whole dict, so its eps is then torch's 1e-5, as in mmdet).
CSP_NORM_CFG: ConfigDict = MappingProxyType({"type": "BN", "momentum": 0.03, "eps": 0.001})
SILU_CFG: ConfigDict = MappingProxyType({"type": "SiLU"})
SWISH_CFG: ConfigDict = MappingProxyType({"type": "Swish"})


class DepthwiseSeparableConvModule(nn.Module):
    """mmcv's depthwise-separable conv: ``depthwise_conv`` (groups = channels) then a 1×1 ``pointwise_conv``.

    Both are :class:`~engines.models.layers.ConvModule` with the same norm and activation
    (mmcv's ``dw_*_cfg`` / ``pw_*_cfg`` default to them).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        conv_cfg: ConfigDict | None = None,
        norm_cfg: ConfigDict | None = None,
        act_cfg: ConfigDict | None = SILU_CFG,
    ) -> None:
        super().__init__()
        common: dict[str, Any] = {"conv_cfg": conv_cfg, "norm_cfg": norm_cfg, "act_cfg": act_cfg}
        self.depthwise_conv = ConvModule(
            in_channels, in_channels, kernel_size, stride, padding, dilation, groups=in_channels, **common
        )
        self.pointwise_conv = ConvModule(in_channels, out_channels, 1, **common)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


def _conv(use_depthwise: bool) -> type[nn.Module]:
    return DepthwiseSeparableConvModule if use_depthwise else ConvModule


class ChannelAttention(nn.Module):
    """mmdet's ``ChannelAttention``: ``x * hardsigmoid(fc(avgpool(x)))`` (``fc``: 1×1 conv with bias)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(channels, channels, 1, 1, 0, bias=True)
        self.act = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.act(self.fc(self.global_avgpool(x)))


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling (YOLOv3-SPP): ``conv1`` halves the channels, max pools of each
    kernel size (stride 1) are concatenated with their input, ``conv2`` fuses."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: Sequence[int] = (5, 9, 13),
        conv_cfg: ConfigDict | None = None,
        norm_cfg: ConfigDict = CSP_NORM_CFG,
        act_cfg: ConfigDict = SWISH_CFG,
    ) -> None:
        super().__init__()
        mid = in_channels // 2
        self.conv1 = ConvModule(in_channels, mid, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.poolings = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes)
        self.conv2 = ConvModule(
            mid * (len(kernel_sizes) + 1), out_channels, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x, *(pool(x) for pool in self.poolings)], dim=1))


class DarknetBottleneck(nn.Module):
    """1×1 conv then 3×3 conv, plus the input when the channels match (CSP layers without ``use_lk_block``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expansion: float = 0.5,
        add_identity: bool = True,
        use_depthwise: bool = False,
        conv_cfg: ConfigDict | None = None,
        norm_cfg: ConfigDict = CSP_NORM_CFG,
        act_cfg: ConfigDict = SWISH_CFG,
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        common: dict[str, Any] = {"conv_cfg": conv_cfg, "norm_cfg": norm_cfg, "act_cfg": act_cfg}
        self.conv1 = ConvModule(in_channels, hidden, 1, **common)
        self.conv2 = _conv(use_depthwise)(hidden, out_channels, 3, stride=1, padding=1, **common)
        self.add_identity = add_identity and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class CSPNeXtBlock(nn.Module):
    """3×3 conv then a depthwise-separable ``kernel_size`` conv (5×5), plus the input when the channels match."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expansion: float = 0.5,
        add_identity: bool = True,
        use_depthwise: bool = False,
        kernel_size: int = 5,
        conv_cfg: ConfigDict | None = None,
        norm_cfg: ConfigDict = CSP_NORM_CFG,
        act_cfg: ConfigDict = SILU_CFG,
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        # mmdet passes no conv_cfg to conv1 (its default Conv2d)
        self.conv1 = _conv(use_depthwise)(
            in_channels, hidden, 3, stride=1, padding=1, norm_cfg=norm_cfg, act_cfg=act_cfg
        )
        self.conv2 = DepthwiseSeparableConvModule(
            hidden,
            out_channels,
            kernel_size,
            1,
            kernel_size // 2,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
        )
        self.add_identity = add_identity and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class CSPLayer(nn.Module):
    """Cross Stage Partial layer: ``final_conv(attention(cat(blocks(main_conv(x)), short_conv(x))))``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        expand_ratio: Hidden channels = ``int(out_channels * expand_ratio)``.
        num_blocks: Blocks on the main path.
        add_identity: Residual connections inside the blocks.
        use_depthwise: Depthwise-separable 3×3 convs inside the blocks.
        use_lk_block: :class:`CSPNeXtBlock` (large-kernel) blocks, else :class:`DarknetBottleneck`.
        channel_attention: Add :class:`ChannelAttention` (child ``attention``) before ``final_conv``.
        conv_cfg, norm_cfg, act_cfg: mmcv layer configs.
        init_cfg: Ignored (weights come from checkpoints).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expand_ratio: float = 0.5,
        num_blocks: int = 1,
        add_identity: bool = True,
        use_depthwise: bool = False,
        use_lk_block: bool = False,
        channel_attention: bool = False,
        conv_cfg: ConfigDict | None = None,
        norm_cfg: ConfigDict = CSP_NORM_CFG,
        act_cfg: ConfigDict = SWISH_CFG,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        mid = int(out_channels * expand_ratio)
        common: dict[str, Any] = {"conv_cfg": conv_cfg, "norm_cfg": norm_cfg, "act_cfg": act_cfg}
        self.main_conv = ConvModule(in_channels, mid, 1, **common)
        self.short_conv = ConvModule(in_channels, mid, 1, **common)
        self.final_conv = ConvModule(2 * mid, out_channels, 1, **common)
        block = CSPNeXtBlock if use_lk_block else DarknetBottleneck
        self.blocks = nn.Sequential(
            *(block(mid, mid, 1.0, add_identity, use_depthwise, **common) for _ in range(num_blocks))
        )
        self.channel_attention = channel_attention
        if channel_attention:
            self.attention = ChannelAttention(2 * mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat((self.blocks(self.main_conv(x)), self.short_conv(x)), dim=1)
        if self.channel_attention:
            out = self.attention(out)
        return self.final_conv(out)


#: Per stage: in_channels, out_channels, num_blocks, add_identity, use_spp (before widen / deepen).
ARCH_SETTINGS: Mapping[str, tuple[tuple[int, int, int, bool, bool], ...]] = MappingProxyType(
    {
        "P5": ((64, 128, 3, True, False), (128, 256, 6, True, False), (256, 512, 6, True, False),
               (512, 1024, 3, False, True)),
        "P6": ((64, 128, 3, True, False), (128, 256, 6, True, False), (256, 512, 6, True, False),
               (512, 768, 3, True, False), (768, 1024, 3, False, True)),
    }
)  # fmt: skip


@register()
class CSPNeXt(nn.Module):
    """CSPNeXt backbone (RTMDet, RTMPose): a 3-conv stem (``stem.0-2``) and stages ``stage1..stageN``.

    Args:
        arch: ``'P5'`` (4 stages) or ``'P6'`` (5 stages).
        deepen_factor: Blocks per CSP layer = ``max(round(n * deepen_factor), 1)``.
        widen_factor: Channels = ``int(c * widen_factor)``.
        out_indices: Which outputs to return (0 is the stem, i the i-th stage).
        use_depthwise: Depthwise-separable downsampling convs.
        expand_ratio: CSP layers' hidden channel ratio.
        arch_ovewrite: Replace the arch settings (mmdet's spelling).
        spp_kernal_sizes: Max-pool kernels of the SPP bottleneck (mmdet's spelling).
        channel_attention: Channel attention in each CSP layer.
        conv_cfg, norm_cfg, act_cfg: mmcv layer configs.
        frozen_stages, norm_eval, init_cfg: Training-only; ignored.

    Raises:
        ModelConfigError: Unknown ``arch`` or ``out_indices`` out of range.
    """

    def __init__(
        self,
        arch: str = "P5",
        deepen_factor: float = 1.0,
        widen_factor: float = 1.0,
        out_indices: Sequence[int] = (2, 3, 4),
        frozen_stages: int = -1,
        use_depthwise: bool = False,
        expand_ratio: float = 0.5,
        arch_ovewrite: Sequence[Sequence[Any]] | None = None,
        spp_kernal_sizes: Sequence[int] = (5, 9, 13),
        channel_attention: bool = True,
        conv_cfg: ConfigDict | None = None,
        norm_cfg: ConfigDict = CSP_NORM_CFG,
        act_cfg: ConfigDict = SILU_CFG,
        norm_eval: bool = False,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        if arch not in ARCH_SETTINGS:
            raise ModelConfigError(f"backbone.arch: expected one of {', '.join(ARCH_SETTINGS)}, got {arch!r}")
        settings = [tuple(s) for s in arch_ovewrite] if arch_ovewrite else list(ARCH_SETTINGS[arch])
        if not set(out_indices) <= set(range(len(settings) + 1)):
            raise ModelConfigError(f"backbone.out_indices: expected indices in 0..{len(settings)}, got {out_indices}")
        self.out_indices = tuple(out_indices)
        common: dict[str, Any] = {"norm_cfg": norm_cfg, "act_cfg": act_cfg}
        half, stem = int(settings[0][0] * widen_factor // 2), int(settings[0][0] * widen_factor)
        self.stem = nn.Sequential(
            ConvModule(3, half, 3, stride=2, padding=1, **common),
            ConvModule(half, half, 3, stride=1, padding=1, **common),
            ConvModule(half, stem, 3, stride=1, padding=1, **common),
        )
        self.layers = ["stem"]
        for i, (c_in, c_out, blocks, add_identity, use_spp) in enumerate(settings):
            c_in, c_out = int(c_in * widen_factor), int(c_out * widen_factor)
            stage: list[nn.Module] = [
                _conv(use_depthwise)(c_in, c_out, 3, stride=2, padding=1, conv_cfg=conv_cfg, **common)
            ]
            if use_spp:
                stage.append(SPPBottleneck(c_out, c_out, spp_kernal_sizes, conv_cfg=conv_cfg, **common))
            stage.append(
                CSPLayer(
                    c_out, c_out, expand_ratio=expand_ratio, num_blocks=max(round(blocks * deepen_factor), 1),
                    add_identity=bool(add_identity), use_depthwise=use_depthwise, use_lk_block=True,
                    channel_attention=channel_attention, conv_cfg=conv_cfg, **common,
                )
            )  # fmt: skip
            self.add_module(f"stage{i + 1}", nn.Sequential(*stage))
            self.layers.append(f"stage{i + 1}")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = []
        for i, name in enumerate(self.layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
