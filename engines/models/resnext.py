"""mmcls's ``ResNeXt`` (MMAction2's ``'mmcls.ResNeXt'`` backbone type), with mmcls's parameter names.

mmcls is not a dependency: the layout follows mmcls's ``models/backbones/resnet.py`` and
``resnext.py``. Unlike MMAction2's ResNet (``conv1.conv.weight``), mmcls names plain layers:
``conv1.weight``, ``bn1.running_var``, ``layer1.0.conv2.weight``, ``layer1.0.bn3.bias``,
``layer1.0.downsample.0.weight`` (1×1 conv) and ``layer1.0.downsample.1.*`` (its BN). A
ResNeXt bottleneck's middle width is ``groups * width_per_group * mid // base_channels`` and
its 3×3 conv has ``groups`` groups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

from engines.errors import ModelConfigError
from engines.models.layers import build_norm, check_conv_cfg
from engines.models.registry import register


def _bn(cfg: Mapping[str, Any], channels: int) -> nn.Module:
    return build_norm(cfg, channels, 2, "ResNeXt.norm_cfg")[1]


class Bottleneck(nn.Module):
    """mmcls's ResNeXt bottleneck: 1×1, grouped 3×3, 1×1 convs (no bias), each with a BN.

    Args:
        in_channels: Input channels.
        out_channels: Output channels (``expansion`` × the plain ResNet middle width).
        mid_channels: Width of the grouped 3×3 conv.
        groups: Groups of the 3×3 conv.
        stride: Stride of the block (on the 3×3 conv for ``'pytorch'`` style, the first 1×1 for ``'caffe'``).
        dilation: Dilation of the 3×3 conv.
        style: ``'pytorch'`` or ``'caffe'``.
        downsample: Projection of the identity, or ``None``.
        norm_cfg: Batch-norm config.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int,
        groups: int,
        stride: int,
        dilation: int,
        style: str,
        downsample: nn.Module | None,
        norm_cfg: Mapping[str, Any],
    ) -> None:
        super().__init__()
        conv1_stride, conv2_stride = (1, stride) if style == "pytorch" else (stride, 1)
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 1, stride=conv1_stride, bias=False)
        self.bn1 = _bn(norm_cfg, mid_channels)
        self.conv2 = nn.Conv2d(
            mid_channels,
            mid_channels,
            3,
            stride=conv2_stride,
            padding=dilation,
            dilation=dilation,
            groups=groups,
            bias=False,
        )
        self.bn2 = _bn(norm_cfg, mid_channels)
        self.conv3 = nn.Conv2d(mid_channels, out_channels, 1, bias=False)
        self.bn3 = _bn(norm_cfg, out_channels)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


@register("mmcls.ResNeXt")
class ResNeXt(nn.Module):
    """mmcls's ResNeXt backbone; ``forward`` returns the tuple of the ``out_indices`` stage outputs.

    Args:
        depth: 50, 101 or 152.
        groups: Groups of each bottleneck's 3×3 conv.
        width_per_group: Width of each group at ``base_channels``.
        in_channels: Input channels.
        stem_channels: Channels of the 7×7 stem conv.
        base_channels: Plain-ResNet middle width of the first stage.
        expansion: Output / middle width ratio of a plain bottleneck (4).
        num_stages: Stages to build, 1 to 4.
        strides: Stride of each stage's first block.
        dilations: Dilation of each stage.
        out_indices: Stages whose outputs are returned.
        style: ``'pytorch'`` or ``'caffe'``.
        deep_stem: Only ``False`` (the shipped configs' stem).
        avg_down: Only ``False``.
        frozen_stages: Training only; accepted and ignored.
        conv_cfg: ``None`` or ``dict(type='Conv2d')``.
        norm_cfg: Batch-norm config.
        norm_eval: Training only; accepted and ignored.
        with_cp: Training only; accepted and ignored.
        zero_init_residual: Training only; accepted and ignored.
        drop_path_rate: Must be 0 or is identity at inference (accepted, ignored).
        init_cfg: Ignored.

    Raises:
        ModelConfigError: For an unsupported depth, stem, or inconsistent stage settings.
    """

    arch_settings: ClassVar[dict[int, tuple[int, ...]]] = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}

    def __init__(
        self,
        depth: int,
        groups: int = 32,
        width_per_group: int = 4,
        in_channels: int = 3,
        stem_channels: int = 64,
        base_channels: int = 64,
        expansion: int | None = None,
        num_stages: int = 4,
        strides: Sequence[int] = (1, 2, 2, 2),
        dilations: Sequence[int] = (1, 1, 1, 1),
        out_indices: Sequence[int] = (3,),
        style: str = "pytorch",
        deep_stem: bool = False,
        avg_down: bool = False,
        frozen_stages: int = -1,
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = None,
        norm_eval: bool = False,
        with_cp: bool = False,
        zero_init_residual: bool = True,
        drop_path_rate: float = 0.0,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        if depth not in self.arch_settings:
            raise ModelConfigError(f"ResNeXt.depth: unsupported depth {depth!r}; valid depths: 50, 101, 152")
        if deep_stem or avg_down:
            raise ModelConfigError("ResNeXt: deep_stem=True and avg_down=True are not supported; remove them")
        if not 1 <= num_stages <= 4 or len(strides) != num_stages or len(dilations) != num_stages:
            raise ModelConfigError(
                f"ResNeXt: num_stages={num_stages} needs 1 to 4 stages and one stride and dilation per stage, "
                f"got strides {tuple(strides)}, dilations {tuple(dilations)}"
            )
        self.out_indices = tuple(out_indices)
        if not self.out_indices or not all(0 <= i < num_stages for i in self.out_indices):
            raise ModelConfigError(f"ResNeXt.out_indices: expected stages below {num_stages}, got {out_indices!r}")
        if style not in ("pytorch", "caffe"):
            raise ModelConfigError(f"ResNeXt.style: expected 'pytorch' or 'caffe', got {style!r}")
        check_conv_cfg(conv_cfg, ("Conv", "Conv2d"), "ResNeXt.conv_cfg")
        norm = dict(norm_cfg) if norm_cfg is not None else {"type": "BN", "requires_grad": True}
        expansion = expansion or 4
        self.conv1 = nn.Conv2d(in_channels, stem_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = _bn(norm, stem_channels)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.res_layers: list[str] = []
        inplanes, outplanes = stem_channels, base_channels * expansion
        for i, num_blocks in enumerate(self.arch_settings[depth][:num_stages]):
            plain_mid = outplanes // expansion
            mid = groups * width_per_group * plain_mid // base_channels if groups != 1 else plain_mid
            blocks: list[nn.Module] = []
            for j in range(num_blocks):
                stride = strides[i] if j == 0 else 1
                downsample = None
                if j == 0 and (stride != 1 or inplanes != outplanes):
                    downsample = nn.Sequential(
                        nn.Conv2d(inplanes, outplanes, 1, stride=stride, bias=False), _bn(norm, outplanes)
                    )
                blocks.append(
                    Bottleneck(inplanes, outplanes, mid, groups, stride, dilations[i], style, downsample, norm)
                )
                inplanes = outplanes
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.res_layers.append(f"layer{i + 1}")
            outplanes *= 2
        self.feat_dim = inplanes

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Outputs of the stages in ``out_indices`` for images ``(B, C, H, W)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
