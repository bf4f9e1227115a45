"""Channel-separated 3D ResNets of MMAction2 1.x: ``ResNet3dCSN`` (ip-CSN and ir-CSN).

CSN ("Video Classification with Channel-Separated Convolutional Networks", Tran et al.
2019) is :class:`~engines.models.resnet3d.ResNet3d` with every bottleneck's 3×3×3 ``conv2``
made depthwise (``groups=planes``):

* ``bottleneck_mode='ir'`` (interaction-reduced): ``conv2`` is ``nn.Sequential(depthwise)``,
  keys ``conv2.0.conv.weight``, ``conv2.0.bn.*``;
* ``bottleneck_mode='ip'`` (interaction-preserved): a 1×1×1 conv + norm (no activation) in
  front of the depthwise conv, keys ``conv2.0.*`` (1×1×1) and ``conv2.1.*`` (depthwise).

Only depths 50, 101 and 152 exist, as in MMAction2. ``bn_frozen`` (like ``norm_eval``)
only changes training and is accepted and ignored.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from engines.errors import ModelConfigError
from engines.models.layers import BN3D_CFG, CONV3D_CFG, RELU_CFG, ConfigDict, ConvModule
from engines.models.registry import register
from engines.models.resnet3d import Bottleneck3d, ResNet3d

BOTTLENECK_MODES = ("ip", "ir")
#: MMAction2's CSN default norm: BN with eps 1e-3 (the Caffe2 models it was converted from).
CSN_NORM_CFG: ConfigDict = {"type": "BN3d", "requires_grad": True, "eps": 1e-3}


class CSNBottleneck3d(Bottleneck3d):
    """A :class:`Bottleneck3d` whose ``conv2`` is channel-separated (see the module docstring).

    The depthwise conv keeps the kernel, stride, padding and dilation that ``Bottleneck3d``
    gives ``conv2``. Arguments are those of :class:`Bottleneck3d`; the mode is the class's
    :attr:`bottleneck_mode` (:class:`IPCSNBottleneck3d` sets ``'ip'``).
    """

    bottleneck_mode = "ir"

    def __init__(
        self,
        inplanes: int,
        planes: int,
        *,
        conv_cfg: ConfigDict = CONV3D_CFG,
        norm_cfg: ConfigDict = BN3D_CFG,
        act_cfg: ConfigDict = RELU_CFG,
        **kwargs: Any,
    ) -> None:
        super().__init__(inplanes, planes, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg, **kwargs)
        dense = self.conv2.conv
        assert isinstance(dense, nn.Conv3d)  # Bottleneck3d builds conv2 from a Conv3d conv_cfg
        layers: list[nn.Module] = []
        if self.bottleneck_mode == "ip":
            layers.append(ConvModule(planes, planes, 1, bias=False, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=None))
        layers.append(
            ConvModule(
                planes,
                planes,
                dense.kernel_size,
                stride=dense.stride,
                padding=dense.padding,  # type: ignore[arg-type]  # never a padding mode string here
                dilation=dense.dilation,
                groups=planes,
                bias=False,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg,
            )
        )
        self.conv2 = nn.Sequential(*layers)  # type: ignore[assignment]  # a ConvModule in Bottleneck3d


class IPCSNBottleneck3d(CSNBottleneck3d):
    """Interaction-preserved CSN bottleneck: a 1×1×1 conv before the depthwise one."""

    bottleneck_mode = "ip"


_CSN_STAGES = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


@register()
class ResNet3dCSN(ResNet3d):
    """ResNet3d with channel-separated bottlenecks (ip-CSN / ir-CSN), MMAction2's defaults.

    Args:
        depth: 50, 101 or 152.
        pretrained: Training-only; ignored.
        temporal_strides: Temporal stride of each stage's first block.
        conv1_kernel: Stem conv kernel ``(t, h, w)``.
        conv1_stride_t: Stem conv temporal stride.
        pool1_stride_t: Stem max-pool temporal stride.
        norm_cfg: Norm type (BN3d, eps 1e-3 by default).
        inflate_style: ``'3x3x3'`` (the depthwise conv is 3×3×3) or ``'3x1x1'``.
        bottleneck_mode: ``'ir'`` or ``'ip'`` (see the module docstring).
        bn_frozen: Training-only; ignored.
        **kwargs: Other :class:`~engines.models.resnet3d.ResNet3d` arguments.

    Raises:
        ModelConfigError: For an unknown ``bottleneck_mode`` or depth, or any
            :class:`~engines.models.resnet3d.ResNet3d` error.
    """

    def __init__(
        self,
        depth: int,
        pretrained: str | None = None,
        temporal_strides: tuple[int, ...] = (1, 2, 2, 2),
        conv1_kernel: tuple[int, int, int] = (3, 7, 7),
        conv1_stride_t: int = 1,
        pool1_stride_t: int = 1,
        norm_cfg: ConfigDict = CSN_NORM_CFG,
        inflate_style: str = "3x3x3",
        bottleneck_mode: str = "ir",
        bn_frozen: bool = False,
        **kwargs: Any,
    ) -> None:
        if bottleneck_mode not in BOTTLENECK_MODES:
            raise ModelConfigError(f"bottleneck_mode: expected 'ip' or 'ir', got {bottleneck_mode!r}")
        block = IPCSNBottleneck3d if bottleneck_mode == "ip" else CSNBottleneck3d
        self.arch_settings = {d: (block, stages) for d, stages in _CSN_STAGES.items()}
        super().__init__(
            depth,
            pretrained,
            temporal_strides=temporal_strides,
            conv1_kernel=conv1_kernel,
            conv1_stride_t=conv1_stride_t,
            pool1_stride_t=pool1_stride_t,
            norm_cfg=norm_cfg,
            inflate_style=inflate_style,
            **kwargs,
        )
        self.bottleneck_mode = bottleneck_mode
