"""MMAction2's ``MobileNetV2`` and ``MobileNetV2TSM`` (temporal shift in the residual blocks).

Parameter names are MMAction2's: ``conv1.conv.weight``, ``layer2.1.conv.0.conv.weight`` (an
inverted residual's expand / depthwise / project ``ConvModule`` s), ``conv2.bn.running_var``.
With TSM the first conv of every residual block with an expand conv is wrapped:
``layer2.1.conv.0.net.conv.weight``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

from engines.errors import ModelConfigError
from engines.models.layers import ConvModule, build_activation, build_norm, check_conv_cfg
from engines.models.registry import register
from engines.models.resnet_tsm import TemporalShift


def make_divisible(value: float, divisor: int, min_value: int | None = None, min_ratio: float = 0.9) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never below ``min_ratio * value`` (mmcv's rule)."""
    if min_value is None:
        min_value = divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < min_ratio * value:
        new_value += divisor
    return new_value


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1×1 expand (skipped for ``expand_ratio=1``), 3×3 depthwise, 1×1 project.

    Children: ``conv`` (a ``Sequential`` of :class:`ConvModule`). The residual is added when
    the stride is 1 and the channels do not change (:attr:`use_res_connect`).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Stride of the depthwise conv, 1 or 2.
        expand_ratio: Hidden width as a multiple of ``in_channels``.
        conv_cfg: Conv type (2D).
        norm_cfg: Norm type.
        act_cfg: Activation after the expand and depthwise convs.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expand_ratio: float,
        conv_cfg: Mapping[str, Any] | None,
        norm_cfg: Mapping[str, Any],
        act_cfg: Mapping[str, Any],
    ) -> None:
        super().__init__()
        self.stride = stride
        self.use_res_connect = stride == 1 and in_channels == out_channels
        hidden = round(in_channels * expand_ratio)
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvModule(in_channels, hidden, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg))
        layers.append(
            ConvModule(
                hidden, hidden, 3, stride, 1, groups=hidden, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg
            )
        )
        layers.append(ConvModule(hidden, out_channels, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=None))
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


@register()
class MobileNetV2(nn.Module):
    """MMAction2's MobileNetV2: ``conv1``, seven stages ``layer1``..``layer7`` and the 1×1 ``conv2``.

    Args:
        pretrained: Ignored (weights come from whole-model checkpoints).
        widen_factor: Channel multiplier.
        out_indices: Which of the 8 outputs (``layer1``..``layer7``, ``conv2``) to return;
            a tuple when more than one.
        frozen_stages: Training only; accepted and ignored.
        conv_cfg: ``dict(type='Conv')`` / ``dict(type='Conv2d')`` or ``None``.
        norm_cfg: Batch-norm config.
        act_cfg: Activation config (``ReLU6`` in MMAction2).
        norm_eval: Training only; accepted and ignored.
        with_cp: Training only; accepted and ignored.
        init_cfg: Ignored.

    Raises:
        ModelConfigError: For out-of-range ``out_indices`` / ``frozen_stages`` or a bad layer config.
    """

    # expand_ratio, channels, blocks, stride of the first block
    arch_settings: ClassVar[tuple[tuple[int, int, int, int], ...]] = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )

    def __init__(
        self,
        pretrained: str | None = None,
        widen_factor: float = 1.0,
        out_indices: Sequence[int] = (7,),
        frozen_stages: int = -1,
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = None,
        act_cfg: Mapping[str, Any] | None = None,
        norm_eval: bool = False,
        with_cp: bool = False,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.out_indices = tuple(out_indices)
        if not self.out_indices or any(i not in range(8) for i in self.out_indices):
            raise ModelConfigError(f"{name}.out_indices: expected indices in 0..7, got {tuple(out_indices)}")
        if frozen_stages not in range(-1, 9):
            raise ModelConfigError(f"{name}.frozen_stages: expected -1..8, got {frozen_stages!r}")
        if not widen_factor > 0:
            raise ModelConfigError(f"{name}.widen_factor: expected a positive number, got {widen_factor!r}")
        check_conv_cfg(conv_cfg, ("Conv", "Conv2d"), f"{name}.conv_cfg")
        norm = dict(norm_cfg) if norm_cfg is not None else {"type": "BN2d", "requires_grad": True}
        act = dict(act_cfg) if act_cfg is not None else {"type": "ReLU6", "inplace": True}
        build_norm(norm, 1, 2, f"{name}.norm_cfg")
        build_activation(act, f"{name}.act_cfg")
        self.widen_factor = widen_factor

        in_channels = make_divisible(32 * widen_factor, 8)
        self.conv1 = ConvModule(3, in_channels, 3, 2, 1, conv_cfg=conv_cfg, norm_cfg=norm, act_cfg=act)
        self.layers: list[str] = []
        for i, (expand_ratio, channels, num_blocks, stride) in enumerate(self.arch_settings):
            out_channels = make_divisible(channels * widen_factor, 8)
            blocks = []
            for j in range(num_blocks):
                blocks.append(
                    InvertedResidual(
                        in_channels, out_channels, stride if j == 0 else 1, expand_ratio, conv_cfg, norm, act
                    )
                )
                in_channels = out_channels
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.layers.append(f"layer{i + 1}")
        self.out_channel = int(1280 * widen_factor) if widen_factor > 1.0 else 1280
        self.conv2 = ConvModule(in_channels, self.out_channel, 1, conv_cfg=conv_cfg, norm_cfg=norm, act_cfg=act)
        self.layers.append("conv2")

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:
        """Features of the outputs in ``out_indices`` for images ``(B, 3, H, W)``."""
        x = self.conv1(x)
        outs = []
        for i, layer_name in enumerate(self.layers):
            x = getattr(self, layer_name)(x)
            if i in self.out_indices:
                outs.append(x)
        return outs[0] if len(outs) == 1 else tuple(outs)


@register()
class MobileNetV2TSM(MobileNetV2):
    """MobileNetV2 with temporal shift (TSM), MMAction2's ``MobileNetV2TSM``.

    The shift wraps the expand conv (``conv.0``) of every inverted residual that has three
    convs and a residual connection. Input is ``(clips * num_segments, 3, H, W)``.

    Args:
        num_segments: Frames per clip.
        is_shift: Insert temporal shifts.
        shift_div: Inverse fraction of channels shifted each way.
        pretrained2d: Ignored (weights come from whole-model checkpoints).
        **kwargs: :class:`MobileNetV2` arguments.

    Raises:
        ModelConfigError: For a non-positive ``num_segments`` or ``shift_div``.
    """

    def __init__(
        self,
        num_segments: int = 8,
        is_shift: bool = True,
        shift_div: int = 8,
        pretrained2d: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for key, value in (("num_segments", num_segments), ("shift_div", shift_div)):
            if not isinstance(value, int) or value <= 0:
                raise ModelConfigError(f"MobileNetV2TSM.{key}: expected a positive int, got {value!r}")
        self.num_segments = num_segments
        self.is_shift = is_shift
        self.shift_div = shift_div
        if is_shift:
            for module in list(self.modules()):
                if isinstance(module, InvertedResidual) and len(module.conv) == 3 and module.use_res_connect:
                    module.conv[0] = TemporalShift(module.conv[0], num_segments, shift_div)
