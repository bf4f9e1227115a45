"""3D ResNets of MMAction2 1.x: I3D (``ResNet3d``) and R(2+1)D; SlowOnly is in :mod:`.resnet3d_slowfast`.

Parameter and submodule names follow MMAction2 so that the ``backbone.*`` keys of
model-zoo checkpoints load with ``strict=True``:

* every conv+norm+act triple is a :class:`~engines.models.layers.ConvModule` with
  children ``conv``, ``bn`` and ``activate`` (mmcv's ``ConvModule`` layout);
* blocks live in ``layer1`` ... ``layer4`` (``nn.Sequential``), the stem is ``conv1``;
* a non-local block sits in ``non_local_block`` after the block's last ReLU;
* R(2+1)D's factorised conv (:class:`~engines.models.layers.Conv2plus1d`) holds ``conv_s``,
  ``bn_s``, ``conv_t``.

Only inference is implemented: arguments that drive weight initialisation, freezing,
gradient checkpointing or training-mode BN (``pretrained``, ``pretrained2d``,
``frozen_stages``, ``norm_eval``, ``with_cp``, ``zero_init_residual``, ``init_cfg``)
are accepted so MMAction2 configs build unchanged, and ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from engines.errors import ModelConfigError
from engines.models.layers import (
    BN3D_CFG,
    CONV3D_CFG,
    EMPTY_CFG,
    RELU_CFG,
    ConfigDict,
    ConvModule,
    IntOrSeq,
    build_activation,
    build_non_local,
    check_conv_cfg,
    triple,
)
from engines.models.registry import register

# --------------------------------------------------------------------------- residual blocks


class BasicBlock3d(nn.Module):
    """Two-conv residual block of ResNet3d-18/34 (children ``conv1``, ``conv2``, ``downsample``, ``relu``).

    Args:
        inplanes: Input channels.
        planes: Output channels (``expansion = 1``).
        spatial_stride: Spatial stride of ``conv1``.
        temporal_stride: Temporal stride of ``conv1``.
        dilation: Spatial dilation of ``conv1``.
        downsample: Shortcut projection, or ``None`` for identity.
        style: ``'pytorch'`` or ``'caffe'`` (no effect on this block).
        inflate: 3×3×3 kernels when true, 1×3×3 otherwise.
        inflate_style: Unused by this block (accepted as in MMAction2).
        non_local: Append a :class:`~engines.models.layers.NonLocal3d` after the block.
        non_local_cfg: Keyword arguments of the non-local block.
        conv_cfg: Conv type.
        norm_cfg: Norm type.
        act_cfg: Activation type.
        with_cp: Training-only; ignored.
    """

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        spatial_stride: int = 1,
        temporal_stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
        style: str = "pytorch",
        inflate: bool = True,
        inflate_style: str = "3x1x1",
        non_local: bool = False,
        non_local_cfg: ConfigDict = EMPTY_CFG,
        conv_cfg: ConfigDict = CONV3D_CFG,
        norm_cfg: ConfigDict = BN3D_CFG,
        act_cfg: ConfigDict = RELU_CFG,
        with_cp: bool = False,
    ) -> None:
        super().__init__()
        _check_style(style, inflate_style)
        kt, pt = (3, 1) if inflate else (1, 0)
        common: dict[str, Any] = dict(bias=False, conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        self.conv1 = ConvModule(
            inplanes,
            planes,
            (kt, 3, 3),
            stride=(temporal_stride, spatial_stride, spatial_stride),
            padding=(pt, dilation, dilation),
            dilation=(1, dilation, dilation),
            act_cfg=act_cfg,
            **common,
        )
        self.conv2 = ConvModule(planes, planes * self.expansion, (kt, 3, 3), padding=(pt, 1, 1), act_cfg=None, **common)
        self.downsample = downsample
        self.relu = build_activation(act_cfg)
        if non_local:
            self.non_local_block = build_non_local(planes * self.expansion, non_local_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.conv2(self.conv1(x)) + identity)
        if hasattr(self, "non_local_block"):
            out = self.non_local_block(out)
        return out


class Bottleneck3d(nn.Module):
    """1-3-1 bottleneck of ResNet3d-50/101/152 (children ``conv1``..``conv3``, ``downsample``, ``relu``).

    Args:
        inplanes: Input channels.
        planes: Bottleneck width; the output has ``planes * 4`` channels.
        spatial_stride: Spatial stride (on ``conv2`` for ``'pytorch'`` style, ``conv1`` for ``'caffe'``).
        temporal_stride: Temporal stride, placed like ``spatial_stride``.
        dilation: Spatial dilation of ``conv2``.
        downsample: Shortcut projection, or ``None`` for identity.
        style: ``'pytorch'`` or ``'caffe'``.
        inflate: Whether the block has a temporal kernel of 3.
        inflate_style: ``'3x1x1'`` (temporal kernel on ``conv1``) or ``'3x3x3'`` (on ``conv2``).
        non_local: Append a :class:`~engines.models.layers.NonLocal3d` after the block.
        non_local_cfg: Keyword arguments of the non-local block.
        conv_cfg: Conv type.
        norm_cfg: Norm type.
        act_cfg: Activation type.
        with_cp: Training-only; ignored.
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        spatial_stride: int = 1,
        temporal_stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
        style: str = "pytorch",
        inflate: bool = True,
        inflate_style: str = "3x1x1",
        non_local: bool = False,
        non_local_cfg: ConfigDict = EMPTY_CFG,
        conv_cfg: ConfigDict = CONV3D_CFG,
        norm_cfg: ConfigDict = BN3D_CFG,
        act_cfg: ConfigDict = RELU_CFG,
        with_cp: bool = False,
    ) -> None:
        super().__init__()
        _check_style(style, inflate_style)
        if style == "pytorch":
            stride1, stride2 = (1, 1, 1), (temporal_stride, spatial_stride, spatial_stride)
        else:
            stride1, stride2 = (temporal_stride, spatial_stride, spatial_stride), (1, 1, 1)
        k1, p1 = (1, 1, 1), (0, 0, 0)
        k2, p2 = (1, 3, 3), (0, dilation, dilation)
        if inflate and inflate_style == "3x1x1":
            k1, p1 = (3, 1, 1), (1, 0, 0)
        elif inflate:
            k2, p2 = (3, 3, 3), (1, dilation, dilation)
        common: dict[str, Any] = dict(bias=False, conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        self.conv1 = ConvModule(inplanes, planes, k1, stride=stride1, padding=p1, act_cfg=act_cfg, **common)
        self.conv2 = ConvModule(
            planes,
            planes,
            k2,
            stride=stride2,
            padding=p2,
            dilation=(1, dilation, dilation),
            act_cfg=act_cfg,
            **common,
        )
        self.conv3 = ConvModule(planes, planes * self.expansion, 1, act_cfg=None, **common)
        self.downsample = downsample
        self.relu = build_activation(act_cfg)
        if non_local:
            self.non_local_block = build_non_local(planes * self.expansion, non_local_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.conv3(self.conv2(self.conv1(x))) + identity)
        if hasattr(self, "non_local_block"):
            out = self.non_local_block(out)
        return out


def _check_style(style: str, inflate_style: str) -> None:
    if style not in ("pytorch", "caffe"):
        raise ModelConfigError(f"style: expected 'pytorch' or 'caffe', got {style!r}")
    if inflate_style not in ("3x1x1", "3x3x3"):
        raise ModelConfigError(f"inflate_style: expected '3x1x1' or '3x3x3', got {inflate_style!r}")


def _per_block(value: Any, blocks: int, name: str) -> tuple[int, ...]:
    """Expand a per-stage flag (int, or one int per block) into one flag per block."""
    if isinstance(value, int):
        return (value,) * blocks
    flags = tuple(value)
    if len(flags) != blocks:
        raise ModelConfigError(f"{name}: expected {blocks} entries (one per block), got {len(flags)}: {value!r}")
    return flags


def _per_stage(value: Any, num_stages: int, name: str) -> tuple[Any, ...]:
    """Expand a backbone-level setting (scalar, or one entry per stage) into one entry per stage."""
    if isinstance(value, int):
        return (value,) * num_stages
    entries = tuple(value)
    if len(entries) < num_stages:
        raise ModelConfigError(f"{name}: expected {num_stages} entries (one per stage), got {value!r}")
    return entries


# --------------------------------------------------------------------------- backbones

_ARCH: dict[int, tuple[type[BasicBlock3d] | type[Bottleneck3d], tuple[int, ...]]] = {
    18: (BasicBlock3d, (2, 2, 2, 2)),
    34: (BasicBlock3d, (3, 4, 6, 3)),
    50: (Bottleneck3d, (3, 4, 6, 3)),
    101: (Bottleneck3d, (3, 4, 23, 3)),
    152: (Bottleneck3d, (3, 8, 36, 3)),
}


@register()
class ResNet3d(nn.Module):
    """ResNet with 3D convolutions, inflated from a 2D ResNet (I3D).

    Input ``(N, C, T, H, W)``; output the features of the stages in ``out_indices`` (a
    tensor when there is one, else a tuple).

    Args:
        depth: 18, 34, 50, 101 or 152.
        pretrained: Training-only; ignored.
        stage_blocks: Blocks per stage, overriding the depth's standard counts.
        pretrained2d: Training-only; ignored.
        in_channels: Input channels.
        num_stages: Number of residual stages (1-4).
        base_channels: Stem output channels; stage ``i`` has ``base_channels * 2**i`` planes.
        out_indices: Stages whose outputs are returned.
        spatial_strides: Spatial stride of each stage's first block.
        temporal_strides: Temporal stride of each stage's first block.
        dilations: Spatial dilation of each stage.
        conv1_kernel: Stem conv kernel ``(t, h, w)``.
        conv1_stride_s: Stem conv spatial stride.
        conv1_stride_t: Stem conv temporal stride.
        pool1_stride_s: Stem max-pool spatial stride.
        pool1_stride_t: Stem max-pool temporal stride.
        with_pool1: Whether to apply the stem max-pool.
        with_pool2: Whether to halve time with a max-pool after the first stage.
        style: ``'pytorch'`` (stride on the 3×3 conv) or ``'caffe'`` (on the first 1×1 conv).
        frozen_stages: Training-only; ignored.
        inflate: Per stage, an int or one int per block: 1 gives the block a temporal kernel of 3.
        inflate_style: ``'3x1x1'`` or ``'3x3x3'`` (see :class:`Bottleneck3d`).
        conv_cfg: Conv type (``Conv3d``; ``Conv2plus1d`` for R(2+1)D).
        norm_cfg: Norm type (``BN3d`` or ``SyncBN``).
        act_cfg: Activation type.
        norm_eval: Training-only; ignored.
        with_cp: Training-only; ignored.
        non_local: Per stage, an int or one int per block: 1 appends a :class:`~engines.models.layers.NonLocal3d`.
        non_local_cfg: Keyword arguments of the non-local blocks.
        zero_init_residual: Training-only; ignored.
        init_cfg: Training-only; ignored.

    Raises:
        ModelConfigError: For an unknown depth, inconsistent per-stage settings or bad layer configs.
    """

    #: depth -> (block class, blocks per stage); subclasses with other blocks (CSN) replace it.
    arch_settings: dict[int, tuple[Any, tuple[int, ...]]] = _ARCH

    def __init__(
        self,
        depth: int = 50,
        pretrained: str | None = None,
        stage_blocks: Sequence[int] | None = None,
        pretrained2d: bool = True,
        in_channels: int = 3,
        num_stages: int = 4,
        base_channels: int = 64,
        out_indices: Sequence[int] = (3,),
        spatial_strides: Sequence[int] = (1, 2, 2, 2),
        temporal_strides: Sequence[int] = (1, 1, 1, 1),
        dilations: Sequence[int] = (1, 1, 1, 1),
        conv1_kernel: IntOrSeq = (3, 7, 7),
        conv1_stride_s: int = 2,
        conv1_stride_t: int = 1,
        pool1_stride_s: int = 2,
        pool1_stride_t: int = 1,
        with_pool1: bool = True,
        with_pool2: bool = True,
        style: str = "pytorch",
        frozen_stages: int = -1,
        inflate: Sequence[Any] | int = (1, 1, 1, 1),
        inflate_style: str = "3x1x1",
        conv_cfg: ConfigDict = CONV3D_CFG,
        norm_cfg: ConfigDict = BN3D_CFG,
        act_cfg: ConfigDict = RELU_CFG,
        norm_eval: bool = False,
        with_cp: bool = False,
        non_local: Sequence[Any] | int = (0, 0, 0, 0),
        non_local_cfg: ConfigDict = EMPTY_CFG,
        zero_init_residual: bool = True,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        if depth not in self.arch_settings:
            raise ModelConfigError(f"depth: expected one of {sorted(self.arch_settings)}, got {depth!r}")
        if not 1 <= num_stages <= 4:
            raise ModelConfigError(f"num_stages: expected 1 to 4, got {num_stages!r}")
        out_indices = tuple(out_indices)
        if not out_indices or max(out_indices) >= num_stages or min(out_indices) < 0:
            raise ModelConfigError(f"out_indices: expected indices in [0, {num_stages}), got {out_indices!r}")
        for name, seq in (
            ("spatial_strides", spatial_strides),
            ("temporal_strides", temporal_strides),
            ("dilations", dilations),
        ):
            if len(seq) != num_stages:
                raise ModelConfigError(f"{name}: expected {num_stages} entries (num_stages), got {seq!r}")
        block, standard_blocks = self.arch_settings[depth]
        if stage_blocks is None:
            stage_blocks = standard_blocks[:num_stages]
        elif len(stage_blocks) != num_stages:
            raise ModelConfigError(f"stage_blocks: expected {num_stages} entries (num_stages), got {stage_blocks!r}")
        _check_style(style, inflate_style)
        conv_cfg = CONV3D_CFG if conv_cfg is None else conv_cfg
        check_conv_cfg(conv_cfg, ("Conv3d", "Conv2plus1d"), "conv_cfg")

        self.depth = depth
        self.in_channels = in_channels
        self.base_channels = base_channels
        self.num_stages = num_stages
        self.stage_blocks = tuple(stage_blocks)
        self.out_indices = out_indices
        self.with_pool1 = with_pool1
        self.with_pool2 = with_pool2
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        self.act_cfg = act_cfg
        self.block = block
        stage_inflations = _per_stage(inflate, num_stages, "inflate")
        non_local_stages = _per_stage(non_local, num_stages, "non_local")

        kernel = triple(conv1_kernel, "conv1_kernel")
        self.conv1 = ConvModule(
            in_channels,
            base_channels,
            kernel,
            stride=(conv1_stride_t, conv1_stride_s, conv1_stride_s),
            padding=tuple((k - 1) // 2 for k in kernel),
            bias=False,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
        )
        self.maxpool = nn.MaxPool3d(
            kernel_size=(1, 3, 3), stride=(pool1_stride_t, pool1_stride_s, pool1_stride_s), padding=(0, 1, 1)
        )
        self.pool2 = nn.MaxPool3d(kernel_size=(2, 1, 1), stride=(2, 1, 1))

        self.res_layers: list[str] = []
        inplanes = base_channels
        for i, num_blocks in enumerate(self.stage_blocks):
            planes = base_channels * 2**i
            layer = self.make_res_layer(
                block,
                inplanes + self._lateral_inplanes(i, inplanes),
                planes,
                num_blocks,
                spatial_stride=spatial_strides[i],
                temporal_stride=temporal_strides[i],
                dilation=dilations[i],
                style=style,
                inflate=_per_block(stage_inflations[i], num_blocks, f"inflate[{i}]"),
                inflate_style=inflate_style,
                non_local=_per_block(non_local_stages[i], num_blocks, f"non_local[{i}]"),
                non_local_cfg=non_local_cfg,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg,
            )
            inplanes = planes * block.expansion
            self.add_module(f"layer{i + 1}", layer)
            self.res_layers.append(f"layer{i + 1}")
        self.feat_dim = block.expansion * base_channels * 2 ** (len(self.stage_blocks) - 1)

    def _lateral_inplanes(self, stage: int, inplanes: int) -> int:
        """Extra input channels of ``stage`` from a lateral connection (SlowFast); none here."""
        return 0

    @staticmethod
    def make_res_layer(
        block: type[BasicBlock3d] | type[Bottleneck3d],
        inplanes: int,
        planes: int,
        blocks: int,
        spatial_stride: int = 1,
        temporal_stride: int = 1,
        dilation: int = 1,
        style: str = "pytorch",
        inflate: IntOrSeq = 1,
        inflate_style: str = "3x1x1",
        non_local: IntOrSeq = 0,
        non_local_cfg: ConfigDict = EMPTY_CFG,
        conv_cfg: ConfigDict = CONV3D_CFG,
        norm_cfg: ConfigDict = BN3D_CFG,
        act_cfg: ConfigDict = RELU_CFG,
    ) -> nn.Sequential:
        """Build one residual stage (an ``nn.Sequential`` of blocks, the first one strided).

        Raises:
            ModelConfigError: If ``inflate`` or ``non_local`` does not have one entry per block.
        """
        inflate = _per_block(inflate, blocks, "inflate")
        non_local = _per_block(non_local, blocks, "non_local")
        downsample = None
        # As MMAction2: a temporal stride alone does not add a projection shortcut.
        if spatial_stride != 1 or inplanes != planes * block.expansion:
            downsample = ConvModule(
                inplanes,
                planes * block.expansion,
                1,
                stride=(temporal_stride, spatial_stride, spatial_stride),
                bias=False,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                act_cfg=None,
            )
        common: dict[str, Any] = dict(
            dilation=dilation,
            style=style,
            inflate_style=inflate_style,
            non_local_cfg=non_local_cfg,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
        )
        layers = [
            block(
                inplanes,
                planes,
                spatial_stride=spatial_stride,
                temporal_stride=temporal_stride,
                downsample=downsample,
                inflate=inflate[0] == 1,
                non_local=non_local[0] == 1,
                **common,
            )
        ]
        for i in range(1, blocks):
            layers.append(
                block(
                    planes * block.expansion,
                    planes,
                    inflate=inflate[i] == 1,
                    non_local=non_local[i] == 1,
                    **common,
                )
            )
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        x = self.conv1(x)
        if self.with_pool1:
            x = self.maxpool(x)
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i == 0 and self.with_pool2:
                x = self.pool2(x)
            if i in self.out_indices:
                outs.append(x)
        return outs[0] if len(outs) == 1 else tuple(outs)


@register()
class ResNet2Plus1d(ResNet3d):
    """R(2+1)D: ResNet3d whose convs are :class:`Conv2plus1d` (``conv_cfg=dict(type='Conv2plus1d')``).

    The forward always applies the stem max-pool, never ``pool2``, and returns the last
    stage's output only (``with_pool1``, ``with_pool2`` and ``out_indices`` are ignored),
    as in MMAction2. Keyword arguments are those of :class:`ResNet3d`.

    Raises:
        ModelConfigError: If ``conv_cfg`` is not ``Conv2plus1d``.
    """

    def __init__(self, **kwargs: Any) -> None:
        check_conv_cfg(kwargs.get("conv_cfg") or CONV3D_CFG, ("Conv2plus1d",), "ResNet2Plus1d.conv_cfg")
        super().__init__(**kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        for name in self.res_layers:
            x = getattr(self, name)(x)
        return x
