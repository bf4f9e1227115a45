"""Skeleton GCNs: ST-GCN, ST-GCN++ (``STGCN``), 2s-AGCN (``AAGCN``), ``GCNHead`` and ``RecognizerGCN``.

Plain-torch versions of MMAction2 1.x's ``mmaction/models/backbones/stgcn.py``,
``aagcn.py``, ``models/utils/gcn_utils.py``, ``heads/gcn_head.py`` and
``recognizers/recognizer_gcn.py``: same constructor arguments, same submodule names (so
model-zoo ``backbone.*`` / ``cls_head.*`` keys load as they are), same eval-mode arithmetic,
traceable by ``torch.onnx.export`` with a dynamic batch.

Layer-wise arguments: :class:`STGCN` and :class:`AAGCN` pass every ``gcn_*`` argument to the
graph unit (``unit_gcn`` / ``unit_aagcn``, prefix removed) and every ``tcn_*`` argument to the
temporal unit; ``tcn_type`` picks ``'unit_tcn'`` or ``'mstcn'``. A value that is a sequence with
one item per stage (for ``STGCN`` a tuple or list, for ``AAGCN`` a tuple, as in MMAction2)
gives each stage its own value. ST-GCN++ is ``STGCN(gcn_adaptive='init', gcn_with_res=True,
tcn_type='mstcn', graph_cfg=dict(layout='coco', mode='spatial'))``.

The graph convolutions are written as one matrix product over ``(subset, joint)`` instead of
MMAction2's ``einsum``: the same sums (outputs agree to float32 rounding), and a plain
``MatMul`` in the exported graph.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from engines.errors import InputShapeError, ModelConfigError
from engines.models.gcn_graph import build_graph
from engines.models.heads import BaseHead
from engines.models.layers import build_activation, build_norm
from engines.models.recognizers import BaseRecognizer, _static_size
from engines.models.registry import register

#: MMAction2's tolerance when rounding inflated channel counts.
EPS = 1e-4
ADAPTIVE_MODES = (None, "init", "offset", "importance")
CONV_POSITIONS = ("pre", "post")
TCN_TYPES = ("unit_tcn", "mstcn")
MSTCN_DEFAULT_CFG: tuple[Any, ...] = ((3, 1), (3, 2), (3, 3), (3, 4), ("max", 3), "1x1")


class _Unset:
    """Marks a layer-wise argument that the config did not set (the unit's own default applies)."""

    def __repr__(self) -> str:
        return "<unit default>"


#: Default of every ``gcn_*`` / ``tcn_*`` argument: left out of the units' arguments.
UNSET: Any = _Unset()


def _norm2d(norm: str | Mapping[str, Any], channels: int, where: str) -> nn.Module:
    """A 2D batch norm from a unit's ``norm`` (a type name or an mmcv norm config)."""
    cfg = dict(norm) if isinstance(norm, Mapping) else {"type": norm}
    return build_norm(cfg, channels, 2, where)[1]


def _drop(p: float) -> nn.Dropout:
    return nn.Dropout(float(p))  # identity in eval; MMAction2's inplace flag changes nothing there


# --------------------------------------------------------------------------- units


class unit_gcn(nn.Module):  # MMAction2's class name (checkpoint layout)
    """Spatial graph convolution: 1×1 conv per subset, sum over the subsets' adjacencies, BN, act.

    Children: ``conv``, ``bn``, ``act``, ``down`` (``with_res`` and ``in != out``: conv + BN);
    ``A`` (a parameter with ``adaptive='init'``, else a buffer) and ``PA`` (``'offset'``,
    ``'importance'``).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        A: Adjacency ``(num_subsets, V, V)``.
        adaptive: ``None``, ``'init'`` (learned ``A``), ``'offset'`` (``A + PA``) or
            ``'importance'`` (``A * PA``).
        conv_pos: ``'pre'`` (conv, then graph product) or ``'post'``.
        with_res: Add a residual (``down``) before the activation.
        norm: Norm type name or config (batch norms).
        act: Activation type name or config.
        init_cfg: Ignored (weights come from checkpoints).

    Raises:
        ModelConfigError: For an unknown ``adaptive``, ``conv_pos``, norm or activation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        A: Tensor,
        adaptive: str | None = "importance",
        conv_pos: str = "pre",
        with_res: bool = False,
        norm: str | Mapping[str, Any] = "BN",
        act: str | Mapping[str, Any] = "ReLU",
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        if adaptive not in ADAPTIVE_MODES:
            raise ModelConfigError(f"gcn_adaptive: expected one of {ADAPTIVE_MODES}, got {adaptive!r}")
        if conv_pos not in CONV_POSITIONS:
            raise ModelConfigError(f"gcn_conv_pos: expected one of {CONV_POSITIONS}, got {conv_pos!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_subsets = int(A.size(0))
        self.adaptive = adaptive
        self.conv_pos = conv_pos
        self.with_res = with_res
        self.bn = _norm2d(norm, out_channels, "gcn_norm")
        self.act = build_activation(act if isinstance(act, Mapping) else {"type": act}, "gcn_act")
        self.A: Tensor
        if adaptive == "init":
            self.A = nn.Parameter(A.clone())
        else:
            self.register_buffer("A", A)
        if adaptive in ("offset", "importance"):
            self.PA = nn.Parameter(A.clone())
        k = self.num_subsets
        if conv_pos == "pre":
            self.conv = nn.Conv2d(in_channels, out_channels * k, 1)
        else:
            self.conv = nn.Conv2d(k * in_channels, out_channels, 1)
        self.down: nn.Module | None = None
        if with_res and in_channels != out_channels:
            self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), _norm2d(norm, out_channels, "gcn_norm"))

    def adjacency(self) -> Tensor:
        """The adjacency used in the product: ``A``, ``A + PA`` or ``A * PA``."""
        if self.adaptive == "offset":
            return self.A + self.PA
        if self.adaptive == "importance":
            return self.A * self.PA
        return self.A

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C_in, T, V)`` → ``(N, C_out, T, V)``."""
        _, c, t, v = x.shape
        k = self.num_subsets
        adj = self.adjacency()
        if self.with_res:
            res = x if self.down is None else self.down(x)
        if self.conv_pos == "pre":
            y = self.conv(x).reshape(-1, k, self.out_channels, t, v)
            y = y.permute(0, 2, 3, 1, 4).reshape(-1, self.out_channels, t, k * v)
            y = torch.matmul(y, adj.reshape(k * v, v))  # sum over subsets and joints
        else:
            y = torch.matmul(x, adj.permute(1, 0, 2).reshape(v, k * v))  # (N, C, T, K*V)
            y = y.reshape(-1, c, t, k, v).permute(0, 3, 1, 2, 4).reshape(-1, k * c, t, v)
            y = self.conv(y)
        y = self.bn(y)
        if self.with_res:
            y = y + res
        return self.act(y)


class unit_aagcn(nn.Module):  # MMAction2's class name (checkpoint layout)
    """2s-AGCN / AAGCN graph unit: per-subset convs over learned plus data-dependent adjacency, attention.

    Children: ``conv_d.i``; with ``adaptive``: ``A`` (parameter), ``alpha``, ``conv_a.i``,
    ``conv_b.i`` (else ``A`` is a buffer); with ``attention``: ``conv_ta``, ``conv_sa``, ``fc1c``,
    ``fc2c``; ``down`` (``in != out``), ``bn``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        A: Adjacency ``(num_subsets, V, V)``.
        coff_embedding: Embedding width is ``out_channels // coff_embedding``.
        adaptive: Learn ``A`` and add the data-dependent adjacency.
        attention: Spatial, temporal and channel attention after the unit.
        init_cfg: Ignored (weights come from checkpoints).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        A: Tensor,
        coff_embedding: int = 4,
        adaptive: bool = True,
        attention: bool = True,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        inter = out_channels // coff_embedding
        self.inter_c = inter
        self.out_c = out_channels
        self.in_c = in_channels
        self.num_subset = int(A.shape[0])
        self.adaptive = adaptive
        self.attention = attention
        num_joints = int(A.shape[-1])
        self.conv_d = nn.ModuleList(nn.Conv2d(in_channels, out_channels, 1) for _ in range(self.num_subset))
        self.A: Tensor
        if adaptive:
            self.A = nn.Parameter(A)
            self.alpha = nn.Parameter(torch.zeros(1))
            self.conv_a = nn.ModuleList(nn.Conv2d(in_channels, inter, 1) for _ in range(self.num_subset))
            self.conv_b = nn.ModuleList(nn.Conv2d(in_channels, inter, 1) for _ in range(self.num_subset))
        else:
            self.register_buffer("A", A)
        if attention:
            self.conv_ta = nn.Conv1d(out_channels, 1, 9, padding=4)
            kernel = num_joints if num_joints % 2 else num_joints - 1
            self.conv_sa = nn.Conv1d(out_channels, 1, kernel, padding=(kernel - 1) // 2)
            self.fc1c = nn.Linear(out_channels, out_channels // 2)
            self.fc2c = nn.Linear(out_channels // 2, out_channels)
        self.down: nn.Module | None = None
        if in_channels != out_channels:
            self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
        self.bn = nn.BatchNorm2d(out_channels)
        self.tan = nn.Tanh()
        self.sigmoid = nn.Sigmoid()
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C_in, T, V)`` → ``(N, C_out, T, V)``."""
        _, c, t, v = x.shape
        flat = x.reshape(-1, c * t, v)
        parts = []
        for i in range(self.num_subset):
            adj = self.A[i]
            if self.adaptive:
                a1 = self.conv_a[i](x).permute(0, 3, 1, 2).reshape(-1, v, self.inter_c * t)
                a2 = self.conv_b[i](x).reshape(-1, self.inter_c * t, v)
                adj = adj + self.tan(torch.matmul(a1, a2) / (self.inter_c * t)) * self.alpha
            parts.append(self.conv_d[i](torch.matmul(flat, adj).reshape(-1, c, t, v)))
        y = parts[0]
        for z in parts[1:]:
            y = y + z
        y = self.relu(self.bn(y) + (x if self.down is None else self.down(x)))
        if self.attention:
            se = self.sigmoid(self.conv_sa(y.mean(-2)))  # spatial: (N, 1, V)
            y = y * se.unsqueeze(-2) + y
            se = self.sigmoid(self.conv_ta(y.mean(-1)))  # temporal: (N, 1, T)
            y = y * se.unsqueeze(-1) + y
            se = self.sigmoid(self.fc2c(self.relu(self.fc1c(y.mean(-1).mean(-1)))))  # channel: (N, C)
            y = y * se.unsqueeze(-1).unsqueeze(-1) + y
        return y


class unit_tcn(nn.Module):  # MMAction2's class name (checkpoint layout)
    """Temporal convolution ``(kernel_size, 1)``, BN (or none), dropout. Children: ``conv``, ``bn``, ``drop``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Temporal kernel.
        stride: Temporal stride.
        dilation: Temporal dilation.
        norm: Norm type name or config; ``None`` for none.
        dropout: Dropout after the norm (identity in eval).
        init_cfg: Ignored (weights come from checkpoints).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 9,
        stride: int = 1,
        dilation: int = 1,
        norm: str | Mapping[str, Any] | None = "BN",
        dropout: float = 0,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        pad = (kernel_size + (kernel_size - 1) * (dilation - 1) - 1) // 2
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size=(kernel_size, 1),
            padding=(pad, 0),
            stride=(stride, 1),
            dilation=(dilation, 1),
        )
        self.bn = _norm2d(norm, out_channels, "tcn_norm") if norm is not None else nn.Identity()
        self.drop = _drop(dropout)
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.bn(self.conv(x)))


class mstcn(nn.Module):  # MMAction2's class name (checkpoint layout)
    """Multi-scale temporal convolution (ST-GCN++): parallel branches, concatenated, fused by a 1×1 conv.

    Children: ``branches.i`` (``'1x1'``: a conv; ``('max', k)``: conv, BN, ReLU, max-pool;
    ``(k, d)``: conv, BN, ReLU, ``unit_tcn`` without norm), ``transform`` (BN, ReLU, conv),
    ``bn``, ``drop``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        mid_channels: Branch width as a fraction of ``out_channels``; ``None`` splits
            ``out_channels`` over the branches (the first takes the remainder).
        dropout: Dropout at the end (identity in eval).
        ms_cfg: Branches: ``(kernel, dilation)``, ``('max', kernel)`` or ``'1x1'``.
        stride: Temporal stride.
        init_cfg: Ignored (weights come from checkpoints).

    Raises:
        ModelConfigError: For a bad ``mid_channels`` or branch config.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: float | None = None,
        dropout: float = 0.0,
        ms_cfg: Sequence[Any] = MSTCN_DEFAULT_CFG,
        stride: int = 1,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        self.ms_cfg = ms_cfg
        num_branches = len(ms_cfg)
        self.num_branches = num_branches
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.act = nn.ReLU()
        if mid_channels is None:
            mid = out_channels // num_branches
            rem = out_channels - mid * (num_branches - 1)
        else:
            if not isinstance(mid_channels, float) or mid_channels <= 0:
                raise ModelConfigError(f"tcn_mid_channels: expected a positive float, got {mid_channels!r}")
            mid = rem = int(out_channels * mid_channels)
        self.mid_channels = mid
        self.rem_mid_channels = rem
        branches: list[nn.Module] = []
        for i, cfg in enumerate(ms_cfg):
            width = rem if i == 0 else mid
            if cfg == "1x1":
                branches.append(nn.Conv2d(in_channels, width, kernel_size=1, stride=(stride, 1)))
                continue
            if not isinstance(cfg, (tuple, list)) or len(cfg) != 2:
                raise ModelConfigError(
                    f"tcn_ms_cfg[{i}]: expected (kernel, dilation), ('max', kernel) or '1x1', got {cfg!r}"
                )
            head = [nn.Conv2d(in_channels, width, kernel_size=1), nn.BatchNorm2d(width), self.act]
            if cfg[0] == "max":
                pool = nn.MaxPool2d(kernel_size=(int(cfg[1]), 1), stride=(stride, 1), padding=(1, 0))
                branches.append(nn.Sequential(*head, pool))
            elif isinstance(cfg[0], int) and isinstance(cfg[1], int):
                tcn = unit_tcn(width, width, kernel_size=cfg[0], stride=stride, dilation=cfg[1], norm=None)
                branches.append(nn.Sequential(*head, tcn))
            else:
                raise ModelConfigError(
                    f"tcn_ms_cfg[{i}]: expected (kernel, dilation), ('max', kernel) or '1x1', got {cfg!r}"
                )
        self.branches = nn.ModuleList(branches)
        fused = mid * (num_branches - 1) + rem
        self.transform = nn.Sequential(nn.BatchNorm2d(fused), self.act, nn.Conv2d(fused, out_channels, kernel_size=1))
        self.bn = nn.BatchNorm2d(out_channels)
        self.drop = _drop(dropout)

    def forward(self, x: Tensor) -> Tensor:
        feat = torch.cat([branch(x) for branch in self.branches], dim=1)
        return self.drop(self.bn(self.transform(feat)))


# --------------------------------------------------------------------------- blocks

_UNIT_TCN_KEYS = frozenset({"dilation", "norm", "dropout", "init_cfg"})
_MSTCN_KEYS = frozenset({"mid_channels", "dropout", "ms_cfg", "init_cfg"})


def _split_unit_kwargs(kwargs: Mapping[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    gcn = {k[4:]: v for k, v in kwargs.items() if k.startswith("gcn_")}
    tcn = {k[4:]: v for k, v in kwargs.items() if k.startswith("tcn_")}
    other = sorted(k for k in kwargs if not k.startswith(("gcn_", "tcn_")))
    if other:
        raise ModelConfigError(f"{where}: unknown key(s) {other}; layer-wise keys start with gcn_ or tcn_")
    return gcn, tcn


def _build_tcn(out_channels: int, stride: int, tcn: dict[str, Any], where: str) -> nn.Module:
    tcn_type = tcn.pop("type", "unit_tcn")
    if tcn_type not in TCN_TYPES:
        raise ModelConfigError(f"{where}.tcn_type: expected one of {TCN_TYPES}, got {tcn_type!r}")
    valid = _UNIT_TCN_KEYS if tcn_type == "unit_tcn" else _MSTCN_KEYS
    unknown = sorted(set(tcn) - valid)
    if unknown:
        keys = ", ".join(f"tcn_{k}" for k in sorted(valid))
        raise ModelConfigError(f"{where}: {tcn_type} takes no {['tcn_' + k for k in unknown]}; valid: {keys}")
    if tcn_type == "unit_tcn":
        return unit_tcn(out_channels, out_channels, 9, stride=stride, **tcn)
    return mstcn(out_channels, out_channels, stride=stride, **tcn)


def _unit_kwargs(cls: type, gcn: dict[str, Any], where: str) -> dict[str, Any]:
    from engines.models.layers import init_keys

    valid = [k for k in init_keys(cls) if k not in ("in_channels", "out_channels", "A")]
    unknown = sorted(set(gcn) - set(valid))
    if unknown:
        raise ModelConfigError(
            f"{where}: {cls.__name__} takes no {['gcn_' + k for k in unknown]}; valid: "
            + ", ".join(f"gcn_{k}" for k in valid)
        )
    return gcn


class _GCNBlock(nn.Module):
    """Graph unit → temporal unit, plus a residual, then ReLU. Children: ``gcn``, ``tcn``, ``residual``.

    Subclasses name their graph unit class in :attr:`unit` (MMAction2's ``gcn_type``).
    """

    unit: type[nn.Module] = unit_gcn

    def __init__(
        self, in_channels: int, out_channels: int, A: Tensor, stride: int, residual: bool, kwargs: Mapping[str, Any]
    ) -> None:
        super().__init__()
        where = type(self).__name__
        gcn, tcn = _split_unit_kwargs(kwargs, where)
        unit_name = self.unit.__name__
        gcn_type = gcn.pop("type", unit_name)
        if gcn_type != unit_name:
            raise ModelConfigError(f"{where}.gcn_type: only {unit_name!r} is supported, got {gcn_type!r}")
        self.gcn = self.unit(in_channels, out_channels, A, **_unit_kwargs(self.unit, gcn, where))
        self.tcn = _build_tcn(out_channels, stride, tcn, where)
        self.relu = nn.ReLU()
        self.with_residual = residual
        self.residual: nn.Module | None = None
        if residual and (in_channels != out_channels or stride != 1):
            self.residual = unit_tcn(in_channels, out_channels, kernel_size=1, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        y = self.tcn(self.gcn(x))
        if self.with_residual:
            y = y + (x if self.residual is None else self.residual(x))
        return self.relu(y)


class STGCNBlock(_GCNBlock):
    """ST-GCN block: ``unit_gcn`` → ``unit_tcn`` / ``mstcn`` (+ residual) → ReLU."""

    unit = unit_gcn


class AAGCNBlock(_GCNBlock):
    """AAGCN block: ``unit_aagcn`` → ``unit_tcn`` (+ residual) → ReLU."""

    unit = unit_aagcn

    def __init__(
        self, in_channels: int, out_channels: int, A: Tensor, stride: int, residual: bool, kwargs: Mapping[str, Any]
    ) -> None:
        if kwargs.get("tcn_type", "unit_tcn") != "unit_tcn":
            # MMAction2's AAGCNBlock accepts 'mstcn' but then builds no temporal unit and fails at forward.
            raise ModelConfigError(f"AAGCN.tcn_type: only 'unit_tcn' works, got {kwargs['tcn_type']!r}")
        super().__init__(in_channels, out_channels, A, stride, residual, kwargs)


# --------------------------------------------------------------------------- backbones


def _layer_wise(kwargs: Mapping[str, Any], num_stages: int, per_stage: tuple[type, ...]) -> list[dict[str, Any]]:
    """One kwargs dict per stage: a ``per_stage`` sequence of ``num_stages`` items is split, as in MMAction2."""
    given = {k: v for k, v in kwargs.items() if v is not UNSET}
    stages = [copy.deepcopy(given) for _ in range(num_stages)]
    for key, value in given.items():
        if isinstance(value, per_stage):
            values = cast(Sequence[Any], value)
            if len(values) == num_stages:
                for i in range(num_stages):
                    stages[i][key] = values[i]
    if stages:
        stages[0].pop("tcn_dropout", None)
    return stages


def _data_bn(data_bn_type: str | None, num_person: int, in_channels: int, num_joints: int) -> nn.Module:
    if data_bn_type == "MVC":
        return nn.BatchNorm1d(num_person * in_channels * num_joints)
    if data_bn_type == "VC":
        return nn.BatchNorm1d(in_channels * num_joints)
    if data_bn_type is None:
        return nn.Identity()
    raise ModelConfigError(f"data_bn_type: expected 'MVC', 'VC' or None, got {data_bn_type!r}")


class _SkeletonBackbone(nn.Module):
    """Input normalisation (``data_bn``) and the stack of blocks shared by ST-GCN and AAGCN."""

    data_bn_type: str | None
    num_person: int
    num_stages: int
    data_bn: nn.Module
    gcn: nn.ModuleList

    def _check_stages(self, stages: Sequence[int], name: str) -> list[int]:
        try:
            if isinstance(stages, str):
                raise TypeError("a string")
            values = [int(s) for s in stages]
        except (TypeError, ValueError) as exc:
            raise ModelConfigError(f"{type(self).__name__}.{name}: expected a list of ints, got {stages!r}") from exc
        return values

    def forward(self, x: Tensor) -> Tensor:
        """``(N, M, T, V, C)`` keypoints → features ``(N, M, C', T', V)``.

        Raises:
            InputShapeError: If ``x`` is not 5-D or ``M`` does not fit an ``'MVC'`` data norm.
        """
        if x.dim() != 5:
            raise InputShapeError(f"{type(self).__name__} expects (N, M, T, V, C) input, got shape {tuple(x.shape)}")
        _, m, t, v, c = x.shape
        if self.data_bn_type == "MVC" and _static_size(x, 1) != self.num_person:
            raise InputShapeError(
                f"{type(self).__name__}: data_bn_type 'MVC' was built for num_person={self.num_person}, "
                f"got M={_static_size(x, 1)}"
            )
        x = x.permute(0, 1, 3, 4, 2)  # (N, M, V, C, T)
        if self.data_bn_type == "MVC":
            x = self.data_bn(x.reshape(-1, m * v * c, t))
        else:
            x = self.data_bn(x.reshape(-1, v * c, t))
        x = x.reshape(-1, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(-1, c, t, v)
        for i in range(self.num_stages):
            x = self.gcn[i](x)
        return x.reshape(-1, m, *x.shape[1:])


@register()
class STGCN(_SkeletonBackbone):
    """ST-GCN backbone (and ST-GCN++ with ``gcn_adaptive='init'``, ``gcn_with_res=True``, ``tcn_type='mstcn'``).

    Children: ``data_bn``, ``gcn.i`` (:class:`STGCNBlock`). Stage ``i`` (2..``num_stages``) has
    ``base_channels * ch_ratio ** (inflations so far)`` channels and temporal stride 2 in
    ``down_stages``; stage 1 maps ``in_channels`` to ``base_channels`` (left out when equal).

    Args:
        graph_cfg: ``dict(layout=..., mode=...)``, see :class:`~engines.models.gcn_graph.Graph`.
        in_channels: Channels per joint (3: x, y, score).
        base_channels: Channels of the first stages.
        data_bn_type: ``'VC'`` (per joint and channel), ``'MVC'`` (also per person) or ``None``.
        ch_ratio: Channel growth at each of ``inflate_stages``.
        num_person: People per sample (``'MVC'`` only).
        num_stages: Stages, counting the input stage.
        inflate_stages: Stages (1-based) that multiply the channels by ``ch_ratio``.
        down_stages: Stages (1-based) with temporal stride 2.
        init_cfg: Ignored (weights come from checkpoints).
        gcn_type: ``'unit_gcn'`` (the only one).
        gcn_adaptive: ``unit_gcn.adaptive``.
        gcn_conv_pos: ``unit_gcn.conv_pos``.
        gcn_with_res: ``unit_gcn.with_res``.
        gcn_norm: ``unit_gcn.norm``.
        gcn_act: ``unit_gcn.act``.
        gcn_init_cfg: Ignored.
        tcn_type: ``'unit_tcn'`` or ``'mstcn'``.
        tcn_dilation: ``unit_tcn.dilation``.
        tcn_norm: ``unit_tcn.norm``.
        tcn_dropout: Dropout of the temporal units (not the first stage's; identity in eval).
        tcn_mid_channels: ``mstcn.mid_channels``.
        tcn_ms_cfg: ``mstcn.ms_cfg``.
        tcn_init_cfg: Ignored.

    Every ``gcn_*`` / ``tcn_*`` value may also be a tuple or list of ``num_stages`` values, one per stage.

    Raises:
        ModelConfigError: For a bad graph, data norm, or layer-wise argument.
    """

    def __init__(
        self,
        graph_cfg: Mapping[str, Any],
        in_channels: int = 3,
        base_channels: int = 64,
        data_bn_type: str | None = "VC",
        ch_ratio: int = 2,
        num_person: int = 2,
        num_stages: int = 10,
        inflate_stages: Sequence[int] = (5, 8),
        down_stages: Sequence[int] = (5, 8),
        init_cfg: Any = None,
        gcn_type: Any = UNSET,
        gcn_adaptive: Any = UNSET,
        gcn_conv_pos: Any = UNSET,
        gcn_with_res: Any = UNSET,
        gcn_norm: Any = UNSET,
        gcn_act: Any = UNSET,
        gcn_init_cfg: Any = UNSET,
        tcn_type: Any = UNSET,
        tcn_dilation: Any = UNSET,
        tcn_norm: Any = UNSET,
        tcn_dropout: Any = UNSET,
        tcn_mid_channels: Any = UNSET,
        tcn_ms_cfg: Any = UNSET,
        tcn_init_cfg: Any = UNSET,
    ) -> None:
        super().__init__()
        self.graph = build_graph(graph_cfg, "STGCN.graph_cfg")
        A = torch.tensor(self.graph.A, dtype=torch.float32)
        self.data_bn_type = data_bn_type
        self.num_person = num_person
        self.data_bn = _data_bn(data_bn_type, num_person, in_channels, int(A.size(1)))
        inflate = self._check_stages(inflate_stages, "inflate_stages")
        down = self._check_stages(down_stages, "down_stages")
        layer_kwargs = dict(
            gcn_type=gcn_type, gcn_adaptive=gcn_adaptive, gcn_conv_pos=gcn_conv_pos, gcn_with_res=gcn_with_res,
            gcn_norm=gcn_norm, gcn_act=gcn_act, gcn_init_cfg=gcn_init_cfg, tcn_type=tcn_type,
            tcn_dilation=tcn_dilation, tcn_norm=tcn_norm, tcn_dropout=tcn_dropout,
            tcn_mid_channels=tcn_mid_channels, tcn_ms_cfg=tcn_ms_cfg, tcn_init_cfg=tcn_init_cfg,
        )  # fmt: skip
        stages = _layer_wise(layer_kwargs, num_stages, (tuple, list))
        self.in_channels = in_channels
        self.base_channels = base_channels
        self.ch_ratio = ch_ratio
        self.inflate_stages = inflate
        self.down_stages = down
        modules: list[nn.Module] = []
        if in_channels != base_channels:
            modules.append(STGCNBlock(in_channels, base_channels, A.clone(), 1, False, stages[0]))
        inflate_times = 0
        channels = base_channels
        for i in range(2, num_stages + 1):
            stride = 1 + (i in down)
            if i in inflate:
                inflate_times += 1
            out_channels = int(base_channels * ch_ratio**inflate_times + EPS)
            modules.append(STGCNBlock(channels, out_channels, A.clone(), stride, True, stages[i - 1]))
            channels = out_channels
        self.out_channels = channels
        self.num_stages = num_stages - 1 if in_channels == base_channels else num_stages
        self.gcn = nn.ModuleList(modules)


@register()
class AAGCN(_SkeletonBackbone):
    """AAGCN backbone; 2s-AGCN is ``AAGCN(gcn_attention=False)``.

    Children: ``A`` (buffer), ``data_bn``, ``gcn.i`` (:class:`AAGCNBlock`). Channels double at
    each of ``inflate_stages``; temporal stride 2 at ``down_stages``.

    Args:
        graph_cfg: ``dict(layout=..., mode=...)``, see :class:`~engines.models.gcn_graph.Graph`.
        in_channels: Channels per joint.
        base_channels: Channels of the first stages.
        data_bn_type: ``'MVC'``, ``'VC'`` or ``None``.
        num_person: People per sample (``'MVC'`` only).
        num_stages: Stages, counting the input stage.
        inflate_stages: Stages (1-based) that double the channels.
        down_stages: Stages (1-based) with temporal stride 2.
        init_cfg: Ignored (weights come from checkpoints).
        gcn_type: ``'unit_aagcn'`` (the only one).
        gcn_coff_embedding: ``unit_aagcn.coff_embedding``.
        gcn_adaptive: ``unit_aagcn.adaptive``.
        gcn_attention: ``unit_aagcn.attention``.
        gcn_init_cfg: Ignored.
        tcn_type: ``'unit_tcn'`` (MMAction2 accepts ``'mstcn'`` here but cannot run it).
        tcn_dilation: ``unit_tcn.dilation``.
        tcn_norm: ``unit_tcn.norm``.
        tcn_dropout: Dropout of the temporal units (not the first stage's; identity in eval).
        tcn_init_cfg: Ignored.

    Every ``gcn_*`` / ``tcn_*`` value may also be a tuple of ``num_stages`` values, one per stage.

    Raises:
        ModelConfigError: For a bad graph, data norm, or layer-wise argument.
    """

    def __init__(
        self,
        graph_cfg: Mapping[str, Any],
        in_channels: int = 3,
        base_channels: int = 64,
        data_bn_type: str | None = "MVC",
        num_person: int = 2,
        num_stages: int = 10,
        inflate_stages: Sequence[int] = (5, 8),
        down_stages: Sequence[int] = (5, 8),
        init_cfg: Any = None,
        gcn_type: Any = UNSET,
        gcn_coff_embedding: Any = UNSET,
        gcn_adaptive: Any = UNSET,
        gcn_attention: Any = UNSET,
        gcn_init_cfg: Any = UNSET,
        tcn_type: Any = UNSET,
        tcn_dilation: Any = UNSET,
        tcn_norm: Any = UNSET,
        tcn_dropout: Any = UNSET,
        tcn_init_cfg: Any = UNSET,
    ) -> None:
        super().__init__()
        self.graph = build_graph(graph_cfg, "AAGCN.graph_cfg")
        A = torch.tensor(self.graph.A, dtype=torch.float32)
        self.register_buffer("A", A)
        self.data_bn_type = data_bn_type
        self.in_channels = in_channels
        self.base_channels = base_channels
        self.num_person = num_person
        inflate = self._check_stages(inflate_stages, "inflate_stages")
        down = self._check_stages(down_stages, "down_stages")
        self.inflate_stages = inflate
        self.down_stages = down
        self.data_bn = _data_bn(data_bn_type, num_person, in_channels, int(A.size(1)))
        layer_kwargs = dict(
            gcn_type=gcn_type, gcn_coff_embedding=gcn_coff_embedding, gcn_adaptive=gcn_adaptive,
            gcn_attention=gcn_attention, gcn_init_cfg=gcn_init_cfg, tcn_type=tcn_type, tcn_dilation=tcn_dilation,
            tcn_norm=tcn_norm, tcn_dropout=tcn_dropout, tcn_init_cfg=tcn_init_cfg,
        )  # fmt: skip
        stages = _layer_wise(layer_kwargs, num_stages, (tuple,))
        modules: list[nn.Module] = []
        if in_channels != base_channels:
            modules.append(AAGCNBlock(in_channels, base_channels, A.clone(), 1, False, stages[0]))
        channels = base_channels
        for i in range(2, num_stages + 1):
            out_channels = channels * (1 + (i in inflate))
            modules.append(AAGCNBlock(channels, out_channels, A.clone(), 1 + (i in down), True, stages[i - 1]))
            channels = out_channels
        self.out_channels = channels
        self.num_stages = num_stages - 1 if in_channels == base_channels else num_stages
        self.gcn = nn.ModuleList(modules)


# --------------------------------------------------------------------------- head and recognizer


@register()
class GCNHead(BaseHead):
    """GCN head: average over time, joints and people, dropout, ``fc``.

    Args:
        num_classes: Number of classes.
        in_channels: Channels of the backbone's features.
        loss_cls: Ignored (training only).
        dropout: Dropout before ``fc`` (identity in eval).
        average_clips: How the clips of a sample are folded (MMAction2's default ``'prob'``).
        init_cfg: Ignored (weights come from checkpoints).
        **kwargs: Other :class:`~engines.models.heads.BaseHead` arguments.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        loss_cls: Mapping[str, Any] | None = None,
        dropout: float = 0.0,
        average_clips: str | None = "prob",
        init_cfg: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, in_channels, average_clips=average_clips, **kwargs)
        self.dropout_ratio = dropout
        self.dropout = nn.Dropout(p=dropout) if dropout != 0 else None
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: Tensor, num_segs: int = 1) -> Tensor:
        """Scores ``(N, num_classes)`` from features ``(N, M, C, T, V)``."""
        pooled = x.mean(dim=(3, 4)).mean(dim=1)
        if self.dropout is not None:
            pooled = self.dropout(pooled)
        return self.fc(pooled)


_GCN_PREPROCESSOR_KEYS = frozenset({"type", "to_float32", "format_shape", "blending"})


@register()
class RecognizerGCN(BaseRecognizer):
    """Skeleton recognizer: a GCN backbone and :class:`GCNHead`, scoring every clip and folding them.

    ``forward(inputs)``: keypoint features ``(N, num_clips, M, T, V, C)`` (``FormatGCNInput``'s
    output, batched) → ``(N, num_classes)``, the clips folded by the head's ``average_clips``
    (``'prob'``: mean softmax, ``'score'``: mean raw score; ``None`` keeps
    ``(N, num_clips, num_classes)``, squeezed for one clip), as MMAction2's ``predict``.

    MMAction2 does not normalise skeleton inputs in its data preprocessor, so
    ``data_preprocessor`` may only name ``ActionDataPreprocessor`` without ``mean``/``std``.

    Raises:
        ModelConfigError: For a data preprocessor with mean/std, or the errors of :class:`BaseRecognizer`.
    """

    input_format = "NMTVC"

    def _read_preprocessor(self, cfg: Mapping[str, Any] | None) -> None:
        where = "model.data_preprocessor"
        cfg = dict(cfg or {"type": "ActionDataPreprocessor"})
        if cfg.get("type") != "ActionDataPreprocessor":
            raise ModelConfigError(f"{where}.type: expected 'ActionDataPreprocessor', got {cfg.get('type')!r}")
        unknown = sorted(set(cfg) - _GCN_PREPROCESSOR_KEYS)
        if unknown:
            raise ModelConfigError(
                f"{where}: RecognizerGCN takes keypoints as they are; unknown or unsupported key(s) {unknown} "
                "(remove mean/std: skeleton features are not normalised by the preprocessor)"
            )
        self.mean = None
        self.std = None
        self.to_rgb = False

    def forward(self, inputs: Tensor) -> Tensor:
        """Score a batch of ``N`` samples of ``num_clips`` clips each.

        Raises:
            InputShapeError: If ``inputs`` is not 6-D.
        """
        if inputs.dim() != 6:
            raise InputShapeError(
                f"RecognizerGCN expects (N, num_clips, M, T, V, C) input, got shape {tuple(inputs.shape)}"
            )
        num_clips = _static_size(inputs, 1)
        clips = inputs.reshape((-1, *inputs.shape[2:]))
        scores = self.cls_head(self.backbone(clips), num_segs=num_clips)
        return self._fold_clips(scores, num_clips)


__all__ = [
    "AAGCN",
    "STGCN",
    "AAGCNBlock",
    "GCNHead",
    "RecognizerGCN",
    "STGCNBlock",
    "mstcn",
    "unit_aagcn",
    "unit_gcn",
    "unit_tcn",
]
