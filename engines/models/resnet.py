"""MMAction2's 2D ``ResNet`` backbone, with mmcv ``ConvModule`` parameter names.

Every convolution sits in a :class:`~engines.models.layers.ConvModule` holding ``conv``
(no bias) and ``bn`` (plus a parameter-free activation), so checkpoint keys read ``conv1.conv.weight``,
``conv1.bn.running_mean``, ``layer1.0.conv2.bn.weight``, ``layer2.0.downsample.conv.weight``
exactly as in MMAction2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

from engines.errors import ModelConfigError
from engines.models.layers import ConvModule, build_activation, build_norm, check_conv_cfg
from engines.models.registry import register


class BasicBlock(nn.Module):
    """Two 3×3 convs with a residual; the first conv strides (``style`` does not matter here)."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
        style: str = "pytorch",
        *,
        norm_cfg: Mapping[str, Any],
        act_cfg: Mapping[str, Any] | None,
    ) -> None:
        super().__init__()
        self.conv1 = ConvModule(inplanes, planes, 3, stride, dilation, dilation, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.conv2 = ConvModule(planes, planes, 3, 1, 1, 1, norm_cfg=norm_cfg, act_cfg=None)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 → 3×3 → 1×1 convs with a residual; ``style='pytorch'`` strides the 3×3, ``'caffe'`` the first 1×1."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
        style: str = "pytorch",
        *,
        norm_cfg: Mapping[str, Any],
        act_cfg: Mapping[str, Any] | None,
    ) -> None:
        super().__init__()
        conv1_stride, conv2_stride = (1, stride) if style == "pytorch" else (stride, 1)
        self.conv1 = ConvModule(inplanes, planes, 1, conv1_stride, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.conv2 = ConvModule(planes, planes, 3, conv2_stride, dilation, dilation, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.conv3 = ConvModule(planes, planes * self.expansion, 1, norm_cfg=norm_cfg, act_cfg=None)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv3(self.conv2(self.conv1(x)))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def make_res_layer(
    block: type[BasicBlock | Bottleneck],
    inplanes: int,
    planes: int,
    blocks: int,
    stride: int = 1,
    dilation: int = 1,
    style: str = "pytorch",
    *,
    norm_cfg: Mapping[str, Any],
    act_cfg: Mapping[str, Any] | None,
) -> nn.Sequential:
    """One ResNet stage: ``blocks`` residual blocks, the first one striding and projecting."""
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = ConvModule(inplanes, planes * block.expansion, 1, stride, norm_cfg=norm_cfg, act_cfg=None)
    layers = [block(inplanes, planes, stride, dilation, downsample, style, norm_cfg=norm_cfg, act_cfg=act_cfg)]
    inplanes = planes * block.expansion
    for _ in range(1, blocks):
        layers.append(block(inplanes, planes, 1, dilation, None, style, norm_cfg=norm_cfg, act_cfg=act_cfg))
    return nn.Sequential(*layers)


@register()
class ResNet(nn.Module):
    """MMAction2's ResNet: stem (7×7 conv, 3×3 max pool) and up to four stages.

    Args:
        depth: 18, 34, 50, 101 or 152.
        pretrained: Ignored (weights come from whole-model checkpoints).
        torchvision_pretrain: Ignored.
        in_channels: Input channels.
        num_stages: Stages to build, 1 to 4.
        out_indices: Stages whose outputs are returned (a tuple if more than one).
        strides: Stride of the first block of each stage.
        dilations: Dilation of each stage.
        style: ``'pytorch'`` or ``'caffe'`` (where a Bottleneck strides).
        frozen_stages: Training only; accepted and ignored.
        conv_cfg: Only ``dict(type='Conv')``.
        norm_cfg: ``dict(type='BN2d')`` style config (``eps``, ``momentum``).
        act_cfg: ``dict(type='ReLU')`` style config.
        norm_eval: Keep batch norms in eval mode under ``train()``.
        partial_bn: Training only; accepted and ignored.
        with_cp: Training only; accepted and ignored.
        init_cfg: Ignored.

    Raises:
        ModelConfigError: For an unsupported depth or inconsistent stage settings.
    """

    arch_settings: ClassVar[dict[int, tuple[type[BasicBlock | Bottleneck], tuple[int, ...]]]] = {
        18: (BasicBlock, (2, 2, 2, 2)),
        34: (BasicBlock, (3, 4, 6, 3)),
        50: (Bottleneck, (3, 4, 6, 3)),
        101: (Bottleneck, (3, 4, 23, 3)),
        152: (Bottleneck, (3, 8, 36, 3)),
    }

    def __init__(
        self,
        depth: int,
        pretrained: str | None = None,
        torchvision_pretrain: bool = True,
        in_channels: int = 3,
        num_stages: int = 4,
        out_indices: Sequence[int] = (3,),
        strides: Sequence[int] = (1, 2, 2, 2),
        dilations: Sequence[int] = (1, 1, 1, 1),
        style: str = "pytorch",
        frozen_stages: int = -1,
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = None,
        act_cfg: Mapping[str, Any] | None = None,
        norm_eval: bool = False,
        partial_bn: bool = False,
        with_cp: bool = False,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if depth not in self.arch_settings:
            raise ModelConfigError(
                f"{name}.depth: unsupported depth {depth!r}; valid depths: {sorted(self.arch_settings)}"
            )
        if not 1 <= num_stages <= 4:
            raise ModelConfigError(f"{name}.num_stages: expected 1 to 4, got {num_stages!r}")
        out_indices = tuple(out_indices)
        if not out_indices or max(out_indices) >= num_stages or min(out_indices) < 0:
            raise ModelConfigError(
                f"{name}.out_indices: expected indices below num_stages={num_stages}, got {out_indices}"
            )
        if len(strides) != num_stages or len(dilations) != num_stages:
            raise ModelConfigError(
                f"{name}: strides {tuple(strides)} and dilations {tuple(dilations)} "
                f"need num_stages={num_stages} entries each"
            )
        if style not in ("pytorch", "caffe"):
            raise ModelConfigError(f"{name}.style: expected 'pytorch' or 'caffe', got {style!r}")
        check_conv_cfg(conv_cfg, ("Conv", "Conv2d"), f"{name}.conv_cfg")
        norm_cfg = dict(norm_cfg) if norm_cfg is not None else {"type": "BN2d", "requires_grad": True}
        act_cfg = dict(act_cfg) if act_cfg is not None else {"type": "ReLU", "inplace": True}
        build_norm(norm_cfg, 1, 2, f"{name}.norm_cfg")  # report a bad config once, with its path
        build_activation(act_cfg, f"{name}.act_cfg")

        self.depth = depth
        self.in_channels = in_channels
        self.num_stages = num_stages
        self.out_indices = out_indices
        self.strides = tuple(strides)
        self.dilations = tuple(dilations)
        self.style = style
        self.norm_eval = norm_eval
        self.block, stage_blocks = self.arch_settings[depth]
        self.stage_blocks = stage_blocks[:num_stages]

        self.conv1 = ConvModule(in_channels, 64, 7, 2, 3, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.res_layers: list[str] = []
        inplanes = 64
        for i, num_blocks in enumerate(self.stage_blocks):
            planes = 64 * 2**i
            layer = make_res_layer(
                self.block,
                inplanes,
                planes,
                num_blocks,
                self.strides[i],
                self.dilations[i],
                style,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg,
            )
            inplanes = planes * self.block.expansion
            self.add_module(f"layer{i + 1}", layer)
            self.res_layers.append(f"layer{i + 1}")
        self.feat_dim = self.block.expansion * 64 * 2 ** (len(self.stage_blocks) - 1)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:
        """Features of the stages in ``out_indices`` for images ``(B, C, H, W)``."""
        x = self.maxpool(self.conv1(x))
        outs = []
        for i, layer_name in enumerate(self.res_layers):
            x = getattr(self, layer_name)(x)
            if i in self.out_indices:
                outs.append(x)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def train(self, mode: bool = True) -> ResNet:
        """Switch train/eval mode, keeping batch norms in eval mode when ``norm_eval`` is set."""
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self


def _frames_to_images(x: Tensor) -> Tensor:
    """``(N, C, T, H, W)`` -> ``(N*T, C, H, W)``, frames of a sample adjacent."""
    x = x.permute(0, 2, 1, 3, 4)
    return x.reshape(-1, x.shape[2], x.shape[3], x.shape[4])


def _images_to_frames(x: Tensor, batches: int) -> Tensor:
    """``(N*T, C, H, W)`` -> ``(N, C, T, H, W)``, the inverse of :func:`_frames_to_images`."""
    return x.reshape(batches, -1, x.shape[1], x.shape[2], x.shape[3]).permute(0, 2, 1, 3, 4)


@register()
class C2D(ResNet):
    """MMAction2's C2D: a 2D :class:`ResNet` run on every frame of a clip, with two temporal-aware pools.

    As in the video-nonlocal-net baseline MMAction2 follows: the stem's 3×3 max pool is a
    ``(1, 3, 3)`` 3D pool with stride ``(1, 2, 2)`` and *no* padding (``maxpool3d_1``), and a
    ``(2, 1, 1)`` pool halves time after the first stage (``maxpool3d_2``). Input
    ``(N, C, T, H, W)``; outputs ``(N, C', T', H', W')`` per stage in ``out_indices``.
    Keyword arguments are those of :class:`ResNet`; parameter names are the same (no pool has any).
    Unlike MMAction2's, an ``out_indices`` entry before the last stage works (MMAction2 passes the
    5-D output on to the next 2D stage and fails).
    """

    def __init__(self, depth: int, **kwargs: Any) -> None:
        super().__init__(depth, **kwargs)
        del self.maxpool  # the 2D stem pool is replaced by the 3D one below, as in MMAction2
        self.maxpool3d_1 = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 0, 0))
        self.maxpool3d_2 = nn.MaxPool3d(kernel_size=(2, 1, 1), stride=(2, 1, 1), padding=(0, 0, 0))

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:
        """Features of the stages in ``out_indices`` for clips ``(N, C, T, H, W)``."""
        batches = x.shape[0]
        x = self.maxpool3d_1(_images_to_frames(self.conv1(_frames_to_images(x)), batches))
        x = _frames_to_images(x)
        outs = []
        for i, layer_name in enumerate(self.res_layers):
            x = getattr(self, layer_name)(x)
            if i == 0:
                x = _frames_to_images(self.maxpool3d_2(_images_to_frames(x, batches)))
            if i in self.out_indices:
                # MMAction2 reshapes x itself here, so an output before the last stage breaks the next one
                outs.append(_images_to_frames(x, batches))
        return outs[0] if len(outs) == 1 else tuple(outs)
