"""3D ResNets of MMAction2 1.x: I3D (``ResNet3d``), SlowOnly and R(2+1)D.

Parameter and submodule names follow MMAction2 so that the ``backbone.*`` keys of
model-zoo checkpoints load with ``strict=True``:

* every conv+norm+act triple is a :class:`ConvModule3d` with children ``conv``,
  ``bn`` and ``activate`` (mmcv's ``ConvModule`` layout);
* blocks live in ``layer1`` ... ``layer4`` (``nn.Sequential``), the stem is ``conv1``;
* a non-local block sits in ``non_local_block`` after the block's last ReLU;
* R(2+1)D's factorised conv (:class:`Conv2plus1d`) holds ``conv_s``, ``bn_s``, ``conv_t``.

Only inference is implemented: arguments that drive weight initialisation, freezing,
gradient checkpointing or training-mode BN (``pretrained``, ``pretrained2d``,
``frozen_stages``, ``norm_eval``, ``with_cp``, ``zero_init_residual``, ``init_cfg``)
are accepted so MMAction2 configs build unchanged, and ignored.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from engines.errors import ModelConfigError
from engines.models.registry import register

ConfigDict = Mapping[str, Any]

# Immutable stand-ins for MMAction2's dict defaults (a shared mutable default would leak edits).
CONV3D_CFG: ConfigDict = MappingProxyType({"type": "Conv3d"})
BN3D_CFG: ConfigDict = MappingProxyType({"type": "BN3d", "requires_grad": True})
RELU_CFG: ConfigDict = MappingProxyType({"type": "ReLU", "inplace": True})
EMPTY_CFG: ConfigDict = MappingProxyType({})

IntOrSeq = int | Sequence[int]


def _triple(value: IntOrSeq, name: str) -> tuple[int, int, int]:
    if isinstance(value, int):
        return (value, value, value)
    values = tuple(value)
    if len(values) != 3 or not all(isinstance(v, int) for v in values):
        raise ModelConfigError(f"{name}: expected an int or 3 ints (t, h, w), got {value!r}")
    return values


def _split_cfg(cfg: ConfigDict | None, what: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(cfg, Mapping) or "type" not in cfg:
        raise ModelConfigError(f"{what}: expected a dict with a 'type' key, got {cfg!r}")
    rest = {k: v for k, v in cfg.items() if k != "type"}
    return str(cfg["type"]), rest


def check_keys(kwargs: Mapping[str, Any], func: Callable[..., Any], what: str, also_valid: Sequence[str] = ()) -> None:
    """Raise a clear error for keyword arguments that ``func`` does not take.

    Args:
        kwargs: Keyword arguments about to be passed to ``func``.
        func: The callable (usually a constructor) that will receive them.
        what: Config path or class name used in the message.
        also_valid: Further keys the caller consumes itself (listed as valid in the message).

    Raises:
        ModelConfigError: If some key is not a parameter of ``func``.
    """
    params = inspect.signature(func).parameters
    valid = sorted({k for k, p in params.items() if k != "self" and p.kind is not p.VAR_KEYWORD} | set(also_valid))
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ModelConfigError(
            f"{what}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(valid)}"
        )


# --------------------------------------------------------------------------- layer builders

_BN_KEYS = {"eps", "momentum", "affine", "track_running_stats"}


def build_norm3d(cfg: ConfigDict, num_features: int) -> tuple[str, nn.Module]:
    """Build a norm layer for 5-D features from an mmcv ``norm_cfg``.

    Returns ``(name, layer)`` where ``name`` is the attribute mmcv gives it (``bn``).

    Raises:
        ModelConfigError: For a norm type other than ``BN3d``/``SyncBN`` or an unknown key.
    """
    type_name, rest = _split_cfg(cfg, "norm_cfg")
    if type_name not in ("BN3d", "SyncBN"):
        raise ModelConfigError(f"norm_cfg.type: expected 'BN3d' or 'SyncBN', got {type_name!r}")
    rest.pop("requires_grad", None)  # training-only
    unknown = sorted(set(rest) - _BN_KEYS)
    if unknown:
        raise ModelConfigError(
            f"norm_cfg: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: "
            f"requires_grad, {', '.join(sorted(_BN_KEYS))}"
        )
    # SyncBN equals BatchNorm in eval mode, and its keys are the same.
    return "bn", nn.BatchNorm3d(num_features, **{"eps": 1e-5, **rest})


_ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {
    "ReLU": nn.ReLU,
    "LeakyReLU": nn.LeakyReLU,
    "ReLU6": nn.ReLU6,
    "ELU": nn.ELU,
    "GELU": nn.GELU,
    "Sigmoid": nn.Sigmoid,
    "Tanh": nn.Tanh,
    "SiLU": nn.SiLU,
    "Swish": nn.SiLU,
    "HSwish": nn.Hardswish,
}


def build_activation(cfg: ConfigDict) -> nn.Module:
    """Build an activation from an mmcv ``act_cfg`` (``inplace`` is ignored).

    Raises:
        ModelConfigError: For an unknown activation type or argument.
    """
    type_name, rest = _split_cfg(cfg, "act_cfg")
    rest.pop("inplace", None)
    factory = _ACTIVATIONS.get(type_name)
    if factory is None:
        raise ModelConfigError(
            f"act_cfg.type: unknown activation {type_name!r}; valid: {', '.join(sorted(_ACTIVATIONS))}"
        )
    try:
        return factory(**rest)
    except TypeError as exc:
        raise ModelConfigError(f"act_cfg: bad arguments for {type_name}: {exc}") from exc


@register()
class Conv2plus1d(nn.Module):
    """R(2+1)D's factorised convolution: a spatial (1×k×k) conv, BN, ReLU, then a temporal (k×1×1) conv.

    The middle width follows the paper's parameter-matching rule
    ``M = floor(t·d²·N_in·N_out / (d²·N_in + t·N_out))`` with ``t = 3`` as in MMAction2.
    ``dilation`` and ``groups`` are stored but not applied, as in MMAction2.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: ``(t, h, w)`` kernel of the equivalent 3D conv.
        stride: ``(t, h, w)`` stride; ``t`` goes to the temporal conv, ``h, w`` to the spatial one.
        padding: ``(t, h, w)`` padding, split the same way.
        dilation: Ignored (kept for signature compatibility).
        groups: Ignored (kept for signature compatibility).
        bias: Whether both convs have a bias.
        norm_cfg: Norm between the two convs (``bn_s``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrSeq,
        stride: IntOrSeq = 1,
        padding: IntOrSeq = 0,
        dilation: IntOrSeq = 1,
        groups: int = 1,
        bias: bool = True,
        norm_cfg: ConfigDict = BN3D_CFG,
    ) -> None:
        super().__init__()
        kernel = _triple(kernel_size, "Conv2plus1d.kernel_size")
        strides = _triple(stride, "Conv2plus1d.stride")
        pads = _triple(padding, "Conv2plus1d.padding")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel
        self.stride = strides
        self.padding = pads
        self.dilation = dilation
        self.groups = groups
        spatial = in_channels * kernel[1] * kernel[2]
        mid_channels = int(3 * spatial * out_channels / (spatial + 3 * out_channels))
        self.conv_s = nn.Conv3d(
            in_channels,
            mid_channels,
            kernel_size=(1, kernel[1], kernel[2]),
            stride=(1, strides[1], strides[2]),
            padding=(0, pads[1], pads[2]),
            bias=bias,
        )
        _, self.bn_s = build_norm3d(norm_cfg, mid_channels)
        self.relu = nn.ReLU()
        self.conv_t = nn.Conv3d(
            mid_channels,
            out_channels,
            kernel_size=(kernel[0], 1, 1),
            stride=(strides[0], 1, 1),
            padding=(pads[0], 0, 0),
            bias=bias,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_t(self.relu(self.bn_s(self.conv_s(x))))


def build_conv3d(
    cfg: ConfigDict | None,
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrSeq,
    *,
    stride: IntOrSeq = 1,
    padding: IntOrSeq = 0,
    dilation: IntOrSeq = 1,
    groups: int = 1,
    bias: bool = False,
) -> nn.Module:
    """Build a 3D conv from an mmcv ``conv_cfg`` (``Conv3d`` or ``Conv2plus1d``; ``None`` means ``Conv3d``).

    Raises:
        ModelConfigError: For another conv type or an unknown key.
    """
    type_name, rest = _split_cfg(cfg if cfg is not None else CONV3D_CFG, "conv_cfg")
    if type_name == "Conv3d":
        if rest:
            raise ModelConfigError(f"conv_cfg: Conv3d takes no extra keys, got {sorted(rest)}")
        return nn.Conv3d(
            in_channels,
            out_channels,
            _triple(kernel_size, "kernel_size"),
            stride=_triple(stride, "stride"),
            padding=_triple(padding, "padding"),
            dilation=_triple(dilation, "dilation"),
            groups=groups,
            bias=bias,
        )
    if type_name == "Conv2plus1d":
        check_keys(rest, Conv2plus1d.__init__, "conv_cfg (Conv2plus1d)")
        return Conv2plus1d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            **rest,
        )
    raise ModelConfigError(f"conv_cfg.type: expected 'Conv3d' or 'Conv2plus1d', got {type_name!r}")


class ConvModule3d(nn.Module):
    """Conv → norm → activation with mmcv ``ConvModule``'s child names (``conv``, ``bn``, ``activate``).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Conv kernel.
        stride: Conv stride.
        padding: Conv padding.
        dilation: Conv dilation.
        groups: Conv groups.
        bias: Conv bias; ``'auto'`` means "only without a norm", as in mmcv.
        conv_cfg: Conv type (``Conv3d`` or ``Conv2plus1d``).
        norm_cfg: Norm type, or ``None`` for no norm.
        act_cfg: Activation type, or ``None`` for no activation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrSeq,
        stride: IntOrSeq = 1,
        padding: IntOrSeq = 0,
        dilation: IntOrSeq = 1,
        groups: int = 1,
        bias: bool | str = "auto",
        conv_cfg: ConfigDict | None = None,
        norm_cfg: ConfigDict | None = None,
        act_cfg: ConfigDict | None = RELU_CFG,
    ) -> None:
        super().__init__()
        with_bias = norm_cfg is None if bias == "auto" else bool(bias)
        self.conv = build_conv3d(
            conv_cfg,
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=with_bias,
        )
        self.norm_name: str | None = None
        if norm_cfg is not None:
            self.norm_name, norm = build_norm3d(norm_cfg, out_channels)
            self.add_module(self.norm_name, norm)
        self.activate: nn.Module | None = build_activation(act_cfg) if act_cfg is not None else None

    @property
    def norm(self) -> nn.Module | None:
        """The norm layer, or ``None``."""
        return getattr(self, self.norm_name) if self.norm_name else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm_name is not None:
            x = getattr(self, self.norm_name)(x)
        if self.activate is not None:
            x = self.activate(x)
        return x


# --------------------------------------------------------------------------- non-local

_NL_MODES = ("gaussian", "embedded_gaussian", "dot_product", "concatenation")


class NonLocal3d(nn.Module):
    """Non-local block (Wang et al., 2018) with mmcv ``NonLocal3d``'s child names.

    Children: ``g``, ``theta``, ``phi`` (1×1×1 convs, bias, no norm), ``conv_out`` (1×1×1
    conv with optional norm) and, for ``mode='concatenation'``, ``concat_project``.
    With ``sub_sample`` a (1, 2, 2) max-pool follows ``g`` and ``phi`` (``g.0``, ``phi.0``).

    Args:
        in_channels: Channels of the input feature.
        sub_sample: Spatially sub-sample the keys and values by 2.
        conv_cfg: Conv type of the 1×1×1 convs.
        reduction: Channel reduction of the embedding (``inter = max(C // reduction, 1)``).
        use_scale: Divide the affinity by ``sqrt(inter)`` in ``embedded_gaussian`` mode.
        norm_cfg: Norm after ``conv_out``, or ``None``.
        mode: ``gaussian``, ``embedded_gaussian``, ``dot_product`` or ``concatenation``.
        std: Initialisation only; ignored.
        zeros_init: Initialisation only; ignored.

    Raises:
        ModelConfigError: For an unknown ``mode``.
    """

    def __init__(
        self,
        in_channels: int,
        sub_sample: bool = False,
        conv_cfg: ConfigDict = CONV3D_CFG,
        reduction: int = 2,
        use_scale: bool = True,
        norm_cfg: ConfigDict | None = None,
        mode: str = "embedded_gaussian",
        std: float = 0.01,
        zeros_init: bool = True,
    ) -> None:
        super().__init__()
        if mode not in _NL_MODES:
            raise ModelConfigError(f"non_local_cfg.mode: expected one of {_NL_MODES}, got {mode!r}")
        self.in_channels = in_channels
        self.inter_channels = max(in_channels // reduction, 1)
        self.use_scale = use_scale
        self.mode = mode
        self.sub_sample = sub_sample
        inter = self.inter_channels

        def embed(cin: int, cout: int) -> ConvModule3d:
            return ConvModule3d(cin, cout, 1, conv_cfg=conv_cfg, act_cfg=None)

        g: nn.Module = embed(in_channels, inter)
        self.conv_out = ConvModule3d(inter, in_channels, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=None)
        theta: nn.Module | None = None
        phi: nn.Module | None = None
        if mode != "gaussian":
            theta = embed(in_channels, inter)
            phi = embed(in_channels, inter)
        if mode == "concatenation":
            self.concat_project = nn.Sequential()
            self.concat_project.add_module("conv", nn.Conv2d(inter * 2, 1, 1, bias=False))
            self.concat_project.add_module("activate", nn.ReLU())
        if sub_sample:
            pool = nn.MaxPool3d(kernel_size=(1, 2, 2))
            g = nn.Sequential(g, pool)
            phi = nn.Sequential(phi, pool) if phi is not None else pool
        self.g = g
        if theta is not None:
            self.theta = theta
        if phi is not None:
            self.phi = phi

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.size(0)
        g_x = self.g(x).reshape(n, self.inter_channels, -1).permute(0, 2, 1)
        if self.mode == "gaussian":
            theta_x = x.reshape(n, self.in_channels, -1).permute(0, 2, 1)
            source = self.phi(x) if self.sub_sample else x
            phi_x = source.reshape(n, self.in_channels, -1)
            affinity = torch.matmul(theta_x, phi_x).softmax(dim=-1)
        elif self.mode == "concatenation":
            theta_x = self.theta(x).reshape(n, self.inter_channels, -1, 1)
            phi_x = self.phi(x).reshape(n, self.inter_channels, 1, -1)
            h, w = theta_x.size(2), phi_x.size(3)
            pair = torch.cat([theta_x.repeat(1, 1, 1, w), phi_x.repeat(1, 1, h, 1)], dim=1)
            affinity = self.concat_project(pair).reshape(n, h, w) / w
        else:
            theta_x = self.theta(x).reshape(n, self.inter_channels, -1).permute(0, 2, 1)
            phi_x = self.phi(x).reshape(n, self.inter_channels, -1)
            affinity = torch.matmul(theta_x, phi_x)
            if self.mode == "dot_product":
                affinity = affinity / affinity.shape[-1]
            else:
                if self.use_scale:
                    affinity = affinity / theta_x.shape[-1] ** 0.5
                affinity = affinity.softmax(dim=-1)
        y = torch.matmul(affinity, g_x).permute(0, 2, 1).reshape(n, self.inter_channels, *x.shape[2:])
        return x + self.conv_out(y)


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
        non_local: Append a :class:`NonLocal3d` after the block.
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
        self.conv1 = ConvModule3d(
            inplanes,
            planes,
            (kt, 3, 3),
            stride=(temporal_stride, spatial_stride, spatial_stride),
            padding=(pt, dilation, dilation),
            dilation=(1, dilation, dilation),
            act_cfg=act_cfg,
            **common,
        )
        self.conv2 = ConvModule3d(
            planes, planes * self.expansion, (kt, 3, 3), padding=(pt, 1, 1), act_cfg=None, **common
        )
        self.downsample = downsample
        self.relu = build_activation(act_cfg)
        if non_local:
            self.non_local_block = NonLocal3d(planes * self.expansion, **dict(non_local_cfg))

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
        non_local: Append a :class:`NonLocal3d` after the block.
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
        self.conv1 = ConvModule3d(inplanes, planes, k1, stride=stride1, padding=p1, act_cfg=act_cfg, **common)
        self.conv2 = ConvModule3d(
            planes,
            planes,
            k2,
            stride=stride2,
            padding=p2,
            dilation=(1, dilation, dilation),
            act_cfg=act_cfg,
            **common,
        )
        self.conv3 = ConvModule3d(planes, planes * self.expansion, 1, act_cfg=None, **common)
        self.downsample = downsample
        self.relu = build_activation(act_cfg)
        if non_local:
            self.non_local_block = NonLocal3d(planes * self.expansion, **dict(non_local_cfg))

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
        non_local: Per stage, an int or one int per block: 1 appends a :class:`NonLocal3d`.
        non_local_cfg: Keyword arguments of the non-local blocks.
        zero_init_residual: Training-only; ignored.
        init_cfg: Training-only; ignored.

    Raises:
        ModelConfigError: For an unknown depth, inconsistent per-stage settings or bad layer configs.
    """

    arch_settings = _ARCH

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
        if depth not in _ARCH:
            raise ModelConfigError(f"depth: expected one of {sorted(_ARCH)}, got {depth!r}")
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
        block, standard_blocks = _ARCH[depth]
        if stage_blocks is None:
            stage_blocks = standard_blocks[:num_stages]
        elif len(stage_blocks) != num_stages:
            raise ModelConfigError(f"stage_blocks: expected {num_stages} entries (num_stages), got {stage_blocks!r}")
        _check_style(style, inflate_style)

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

        kernel = _triple(conv1_kernel, "conv1_kernel")
        self.conv1 = ConvModule3d(
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
            downsample = ConvModule3d(
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


# MMAction2's ResNet3dPathway arguments; SlowOnly accepts them (``lateral`` must stay false).
PATHWAY_KEYS = (
    "lateral",
    "lateral_inv",
    "lateral_norm",
    "speed_ratio",
    "channel_ratio",
    "fusion_kernel",
    "lateral_infl",
    "lateral_activate",
)


@register()
class ResNet3dSlowOnly(ResNet3d):
    """The slow pathway of SlowFast on its own: ResNet3d with SlowOnly defaults.

    Defaults differ from :class:`ResNet3d` in ``conv1_kernel=(1, 7, 7)``,
    ``inflate=(0, 0, 1, 1)`` and ``with_pool2=False``. The lateral-connection
    arguments of MMAction2's ``ResNet3dPathway`` are accepted; ``lateral`` must be false.
    Other keyword arguments are those of :class:`ResNet3d`.

    Raises:
        ModelConfigError: If ``lateral`` is true or a key is unknown.
    """

    def __init__(
        self,
        conv1_kernel: IntOrSeq = (1, 7, 7),
        conv1_stride_t: int = 1,
        pool1_stride_t: int = 1,
        inflate: Sequence[Any] | int = (0, 0, 1, 1),
        with_pool2: bool = False,
        lateral: bool = False,
        lateral_inv: bool = False,
        lateral_norm: bool = False,
        speed_ratio: int = 8,
        channel_ratio: int = 8,
        fusion_kernel: int = 5,
        lateral_infl: int = 2,
        lateral_activate: Sequence[int] = (1, 1, 1, 1),
        **kwargs: Any,
    ) -> None:
        if lateral:
            raise ModelConfigError("ResNet3dSlowOnly: lateral must be False (use ResNet3dSlowFast)")
        check_keys(
            kwargs,
            ResNet3d.__init__,
            "ResNet3dSlowOnly",
            also_valid=PATHWAY_KEYS,
        )
        super().__init__(
            conv1_kernel=conv1_kernel,
            conv1_stride_t=conv1_stride_t,
            pool1_stride_t=pool1_stride_t,
            inflate=inflate,
            with_pool2=with_pool2,
            **kwargs,
        )


@register()
class ResNet2Plus1d(ResNet3d):
    """R(2+1)D: ResNet3d whose convs are :class:`Conv2plus1d` (``conv_cfg=dict(type='Conv2plus1d')``).

    The forward always applies the stem max-pool, never ``pool2``, and returns the last
    stage's output only (``with_pool1``, ``with_pool2`` and ``out_indices`` are ignored),
    as in MMAction2. Keyword arguments are those of :class:`ResNet3d`.

    Raises:
        ModelConfigError: If ``conv_cfg`` is not ``Conv2plus1d`` or a key is unknown.
    """

    def __init__(self, **kwargs: Any) -> None:
        check_keys(kwargs, ResNet3d.__init__, "ResNet2Plus1d")
        conv_cfg = kwargs.get("conv_cfg", CONV3D_CFG)
        if not isinstance(conv_cfg, Mapping) or conv_cfg.get("type") != "Conv2plus1d":
            raise ModelConfigError(f"ResNet2Plus1d: conv_cfg.type must be 'Conv2plus1d', got {conv_cfg!r}")
        super().__init__(**kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        for name in self.res_layers:
            x = getattr(self, name)(x)
        return x
