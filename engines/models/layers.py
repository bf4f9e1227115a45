"""mmcv building blocks shared by every model family, with mmcv's parameter names.

* config helpers: :func:`split_cfg`, :func:`check_keys`, :func:`check_conv_cfg`, :func:`ntuple`;
* layer builders: :func:`build_conv` (``Conv``/``Conv2d``/``Conv3d``/``Conv2plus1d``),
  :func:`build_norm` (batch norms) and :func:`build_activation`;
* modules: :class:`ConvModule` (conv → norm → activation, 2D or 3D), :class:`Conv2plus1d`
  (R(2+1)D's factorised conv) and :class:`NonLocal3d`.

Only inference is implemented: every norm type is a plain batch norm (``SyncBN`` equals
one in eval mode and has the same keys) and training-only keys (``requires_grad``,
``inplace``) are accepted and ignored, so MMAction2 configs build unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, cast

import torch
from torch import nn

from engines.errors import ModelConfigError
from engines.models.registry import register

ConfigDict = Mapping[str, Any]
IntOrSeq = int | Sequence[int]

# Immutable stand-ins for MMAction2's dict defaults (a shared mutable default would leak edits).
CONV3D_CFG: ConfigDict = MappingProxyType({"type": "Conv3d"})
BN3D_CFG: ConfigDict = MappingProxyType({"type": "BN3d", "requires_grad": True})
RELU_CFG: ConfigDict = MappingProxyType({"type": "ReLU", "inplace": True})
EMPTY_CFG: ConfigDict = MappingProxyType({})

# --------------------------------------------------------------------------- config helpers


def ntuple(value: IntOrSeq, n: int, name: str) -> tuple[int, ...]:
    """``value`` as ``n`` ints: an int is repeated, a sequence must hold ``n`` ints.

    Raises:
        ModelConfigError: If ``value`` is neither.
    """
    if isinstance(value, int):
        return (value,) * n
    values = tuple(value)
    if len(values) != n or not all(isinstance(v, int) for v in values):
        axes = "(t, h, w)" if n == 3 else "(h, w)" if n == 2 else ""
        raise ModelConfigError(f"{name}: expected an int or {n} ints {axes}, got {value!r}")
    return values


def triple(value: IntOrSeq, name: str) -> tuple[int, int, int]:
    """``value`` as ``(t, h, w)``; see :func:`ntuple`."""
    return cast(tuple[int, int, int], ntuple(value, 3, name))


def split_cfg(cfg: ConfigDict | None, where: str) -> tuple[str, dict[str, Any]]:
    """Split an mmcv-style config into its ``type`` and the other keys.

    Raises:
        ModelConfigError: If ``cfg`` is not a mapping with a ``type`` key.
    """
    if not isinstance(cfg, Mapping) or "type" not in cfg:
        raise ModelConfigError(f"{where}: expected a dict with a 'type' key, got {cfg!r}")
    return str(cfg["type"]), {k: v for k, v in cfg.items() if k != "type"}


def init_keys(cls: type) -> list[str]:
    """The keyword arguments ``cls(...)`` accepts, sorted.

    A constructor with ``**kwargs`` is taken to pass them on to ``super().__init__``, so the
    keys of the next constructor up the MRO count too, until one without ``**kwargs``.
    """
    keys: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass in (nn.Module, object):
            break
        params = inspect.signature(init).parameters.values()
        keys.update(p.name for p in params if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return sorted(keys)


def check_keys(kwargs: Mapping[str, Any], cls: type, what: str) -> None:
    """Raise a clear error for keyword arguments that ``cls`` does not take (see :func:`init_keys`).

    Args:
        kwargs: Keyword arguments about to be passed to ``cls``.
        cls: The class that will receive them.
        what: Config path or class name that starts the message.

    Raises:
        ModelConfigError: If some key is not a parameter of ``cls``.
    """
    valid = init_keys(cls)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ModelConfigError(
            f"{what}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(valid)}"
        )


def check_conv_cfg(cfg: ConfigDict | None, valid: Sequence[str], where: str) -> None:
    """Raise unless ``cfg`` is ``None`` (the model's default conv) or names one of the ``valid`` conv types.

    Only ``Conv2plus1d`` takes further keys (its ``norm_cfg``).

    Raises:
        ModelConfigError: For another conv type or an extra key.
    """
    if cfg is None:
        return
    type_name = cfg.get("type") if isinstance(cfg, Mapping) else None
    if type_name not in valid or (type_name != "Conv2plus1d" and len(cfg) > 1):
        alternatives = " or ".join(f"dict(type={t!r})" for t in valid)
        shown = dict(cfg) if isinstance(cfg, Mapping) else cfg
        raise ModelConfigError(f"{where}: only {alternatives} is supported, got {shown!r}")


# --------------------------------------------------------------------------- norms and activations

# mmcv norm types and the dimensionality they apply to (None: any). mmcv names every one ``bn``.
_NORM_DIMS: dict[str, int | None] = {"BN": 2, "BN2d": 2, "BN3d": 3, "SyncBN": None}
_BN_KEYS = frozenset({"eps", "momentum", "affine", "track_running_stats"})
_NORM_TRAINING_KEYS = frozenset({"requires_grad"})


def build_norm(cfg: ConfigDict, num_features: int, dims: int, where: str = "norm_cfg") -> tuple[str, nn.Module]:
    """Build a batch norm for ``dims``-D features (2: images, 3: clips) from an mmcv ``norm_cfg``.

    Returns ``(name, layer)`` like mmcv's ``build_norm_layer``; ``name`` is the attribute
    mmcv gives the layer (``bn``). ``requires_grad`` is accepted and ignored.

    Raises:
        ModelConfigError: For a norm type that does not fit ``dims`` or an unknown key.
    """
    type_name, rest = split_cfg(cfg, where)
    valid = [t for t, d in _NORM_DIMS.items() if d in (None, dims)]
    if type_name not in valid:
        raise ModelConfigError(
            f"{where}.type: unknown norm type {type_name!r}; valid types for {dims}D features: {', '.join(valid)}"
        )
    unknown = sorted(set(rest) - _BN_KEYS - _NORM_TRAINING_KEYS)
    if unknown:
        raise ModelConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"valid keys: {', '.join(sorted(_BN_KEYS | _NORM_TRAINING_KEYS))}"
        )
    kwargs = {k: v for k, v in rest.items() if k in _BN_KEYS}
    norm = nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d
    return "bn", norm(num_features, **kwargs)


class Swish(nn.Module):
    """``x * sigmoid(x)``, mmcv's ``Swish`` (written as mmcv writes it, for identical outputs)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


# What mmcv's registry gives for each activation type.
_ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {
    "ReLU": nn.ReLU,
    "LeakyReLU": nn.LeakyReLU,
    "ReLU6": nn.ReLU6,
    "ELU": nn.ELU,
    "GELU": nn.GELU,
    "Sigmoid": nn.Sigmoid,
    "Tanh": nn.Tanh,
    "SiLU": nn.SiLU,
    "Swish": Swish,
    "HSwish": nn.Hardswish,
}


def build_activation(cfg: ConfigDict, where: str = "act_cfg") -> nn.Module:
    """Build an activation from an mmcv ``act_cfg``; ``inplace`` is ignored (the values are the same).

    Raises:
        ModelConfigError: For an unknown activation type or argument.
    """
    type_name, rest = split_cfg(cfg, where)
    rest.pop("inplace", None)
    factory = _ACTIVATIONS.get(type_name)
    if factory is None:
        raise ModelConfigError(
            f"{where}.type: unknown activation type {type_name!r}; valid types: {', '.join(sorted(_ACTIVATIONS))}"
        )
    try:
        return factory(**rest)
    except TypeError as exc:
        raise ModelConfigError(f"{where}: bad arguments for {type_name}: {exc}") from exc


# --------------------------------------------------------------------------- convolutions


@register()
class Conv2plus1d(nn.Module):
    """R(2+1)D's factorised convolution: a spatial (1×k×k) conv, BN, ReLU, then a temporal (k×1×1) conv.

    The middle width follows the paper's parameter-matching rule
    ``M = floor(t·d²·N_in·N_out / (d²·N_in + t·N_out))`` with ``t = 3`` as in MMAction2.
    ``dilation`` and ``groups`` are stored but not applied, as in MMAction2.
    Children: ``conv_s``, ``bn_s``, ``conv_t``.

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
        kernel = triple(kernel_size, "Conv2plus1d.kernel_size")
        strides = triple(stride, "Conv2plus1d.stride")
        pads = triple(padding, "Conv2plus1d.padding")
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
        _, self.bn_s = build_norm(norm_cfg, mid_channels, 3)
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


# mmcv conv types and the dimensionality of their features.
_CONV_DIMS: dict[str, int] = {"Conv": 2, "Conv2d": 2, "Conv3d": 3, "Conv2plus1d": 3}


def conv_dims(cfg: ConfigDict | None, where: str = "conv_cfg") -> int:
    """2 or 3: the dimensionality of the conv an mmcv ``conv_cfg`` names (``None`` is ``Conv2d``, as in mmcv).

    Raises:
        ModelConfigError: For an unknown conv type.
    """
    if cfg is None:
        return 2
    type_name, _ = split_cfg(cfg, where)
    if type_name not in _CONV_DIMS:
        raise ModelConfigError(f"{where}.type: unknown conv type {type_name!r}; valid types: {', '.join(_CONV_DIMS)}")
    return _CONV_DIMS[type_name]


def build_conv(
    cfg: ConfigDict | None,
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrSeq,
    *,
    stride: IntOrSeq = 1,
    padding: IntOrSeq = 0,
    dilation: IntOrSeq = 1,
    groups: int = 1,
    bias: bool = True,
    where: str = "conv_cfg",
) -> nn.Module:
    """Build a conv from an mmcv ``conv_cfg``: ``Conv``/``Conv2d`` (also for ``None``), ``Conv3d`` or ``Conv2plus1d``.

    Raises:
        ModelConfigError: For an unknown conv type or key.
    """
    dims = conv_dims(cfg, where)
    type_name, rest = split_cfg(cfg, where) if cfg is not None else ("Conv2d", {})
    if type_name == "Conv2plus1d":
        check_keys(rest, Conv2plus1d, f"{where} (Conv2plus1d)")
        layer_args: dict[str, Any] = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias)
        return Conv2plus1d(in_channels, out_channels, kernel_size, **layer_args, **rest)
    if rest:
        raise ModelConfigError(f"{where}: {type_name} takes no extra keys, got {sorted(rest)}")
    conv: Callable[..., nn.Module] = nn.Conv3d if dims == 3 else nn.Conv2d
    return conv(
        in_channels,
        out_channels,
        ntuple(kernel_size, dims, "kernel_size"),
        stride=ntuple(stride, dims, "stride"),
        padding=ntuple(padding, dims, "padding"),
        dilation=ntuple(dilation, dims, "dilation"),
        groups=groups,
        bias=bias,
    )


class ConvModule(nn.Module):
    """Conv → optional norm → optional activation: mmcv's ``ConvModule`` with ``order=('conv', 'norm', 'act')``.

    Children are named as mmcv names them: ``conv``, the norm under :attr:`norm_name`
    (``bn``) and ``activate``. The conv type (``conv_cfg``) sets whether the module is 2D
    or 3D, and so which norm types fit.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Conv kernel.
        stride: Conv stride.
        padding: Conv padding.
        dilation: Conv dilation.
        groups: Conv groups (``in_channels`` for a depthwise conv).
        bias: Conv bias; ``'auto'`` means "only without a norm", as in mmcv.
        conv_cfg: Conv type, see :func:`build_conv`; ``None`` is ``Conv2d``, as in mmcv.
        norm_cfg: Norm type, see :func:`build_norm`; ``None`` for no norm.
        act_cfg: Activation type, see :func:`build_activation`; ``None`` for no activation.

    Raises:
        ModelConfigError: If a config names an unsupported type or key.
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
        self.conv = build_conv(
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
            self.norm_name, norm = build_norm(norm_cfg, out_channels, conv_dims(conv_cfg))
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
    """Non-local block (Wang et al., 2018) with mmcv ``NonLocal3d``'s child names; residual output.

    Children: ``g``, ``theta``, ``phi`` (1×1×1 convs, bias, no norm), ``conv_out`` (1×1×1
    conv with optional norm) and, for ``mode='concatenation'``, ``concat_project``.
    With ``sub_sample`` a (1, 2, 2) max-pool follows ``g`` and ``phi`` (``g.0``, ``phi.0``).

    Args:
        in_channels: Channels of the input feature.
        sub_sample: Spatially sub-sample the keys and values by 2.
        conv_cfg: Conv type of the 1×1×1 convs (``Conv3d`` or ``Conv2plus1d``).
        reduction: Channel reduction of the embedding (``inter = max(C // reduction, 1)``).
        use_scale: Divide the affinity by ``sqrt(inter)`` in ``embedded_gaussian`` mode.
        norm_cfg: Norm after ``conv_out``, or ``None``.
        mode: ``gaussian``, ``embedded_gaussian``, ``dot_product`` or ``concatenation``.
        std: Initialisation only; ignored.
        zeros_init: Initialisation only; ignored.

    Raises:
        ModelConfigError: For an unknown ``mode`` or an unsupported conv or norm config.
    """

    def __init__(
        self,
        in_channels: int,
        sub_sample: bool = False,
        conv_cfg: ConfigDict | None = CONV3D_CFG,
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
        conv_cfg = CONV3D_CFG if conv_cfg is None else conv_cfg
        check_conv_cfg(conv_cfg, ("Conv3d", "Conv2plus1d"), "non_local_cfg.conv_cfg")
        if norm_cfg is not None:
            build_norm(norm_cfg, 1, 3, "non_local_cfg.norm_cfg")  # report a bad config with its path
        self.in_channels = in_channels
        self.inter_channels = max(in_channels // reduction, 1)
        self.use_scale = use_scale
        self.mode = mode
        self.sub_sample = sub_sample
        inter = self.inter_channels

        def embed(cin: int, cout: int) -> ConvModule:
            return ConvModule(cin, cout, 1, conv_cfg=conv_cfg, act_cfg=None)

        # Registered in mmcv's order, so state-dict keys come in the same order.
        self.g: nn.Module = embed(in_channels, inter)
        self.conv_out = ConvModule(inter, in_channels, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=None)
        self.phi: nn.Module
        if mode != "gaussian":
            self.theta = embed(in_channels, inter)
            self.phi = embed(in_channels, inter)
        if mode == "concatenation":
            self.concat_project = ConvModule(inter * 2, 1, 1, bias=False, act_cfg=RELU_CFG)
        if sub_sample:
            pool = nn.MaxPool3d(kernel_size=(1, 2, 2))
            self.g = nn.Sequential(self.g, pool)
            self.phi = nn.Sequential(self.phi, pool) if mode != "gaussian" else pool

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


def build_non_local(in_channels: int, cfg: ConfigDict) -> NonLocal3d:
    """A :class:`NonLocal3d` over ``in_channels`` from a ``non_local_cfg`` (its other keyword arguments).

    Raises:
        ModelConfigError: For an unknown key or a bad value.
    """
    check_keys(cfg, NonLocal3d, "non_local_cfg")
    return NonLocal3d(in_channels, **cfg)
