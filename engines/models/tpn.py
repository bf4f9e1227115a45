"""MMAction2's Temporal Pyramid Network: the ``TPN`` neck and ``TPNHead``, with MMAction2's names.

The neck takes the backbone's multi-level features as ``(N, C, T, H, W)`` clips (a 2D
recognizer folds its frames into ``T`` first) and fuses them into one ``(N, 2048, T', H', W')``
map. Parameter names are MMAction2's: ``spatial_modulation.spatial_modulation.0.0.conv.weight``,
``temporal_modulation_ops.1.conv.conv.weight``, ``downsample_ops.0.conv.conv.weight``,
``level_fusion_1.downsamples.0.conv.bn.running_var``, ``level_fusion_2.fusion_conv.conv.weight``,
``pyramid_fusion.bn.weight``. The auxiliary head (``aux_head.*``) only computes a training
loss; it is built so model-zoo checkpoints load strictly, and never runs here (MMAction2 runs
it only when labels are passed, i.e. in training).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engines.errors import ModelConfigError
from engines.models.heads import TSNHead
from engines.models.layers import ConvModule, IntOrSeq, triple
from engines.models.registry import register

_CONV3D: Mapping[str, Any] = {"type": "Conv3d"}
_BN3D: Mapping[str, Any] = {"type": "BN3d", "requires_grad": True}
_RELU: Mapping[str, Any] = {"type": "ReLU", "inplace": True}


class DownSample(nn.Module):
    """A conv and a max pool (``ceil_mode``) in either order; children ``conv`` and ``pool``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Conv kernel.
        stride: Conv stride.
        padding: Conv padding.
        groups: Conv groups.
        bias: Conv bias.
        conv_cfg: Conv type (3D).
        norm_cfg: Norm after the conv, or ``None``.
        act_cfg: Activation after the norm, or ``None``.
        downsample_position: ``'before'`` (pool, then conv) or ``'after'``.
        downsample_scale: Kernel and stride of the max pool.

    Raises:
        ModelConfigError: For another ``downsample_position``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrSeq = (3, 1, 1),
        stride: IntOrSeq = (1, 1, 1),
        padding: IntOrSeq = (1, 0, 0),
        groups: int = 1,
        bias: bool | str = False,
        conv_cfg: Mapping[str, Any] | None = _CONV3D,
        norm_cfg: Mapping[str, Any] | None = None,
        act_cfg: Mapping[str, Any] | None = None,
        downsample_position: str = "after",
        downsample_scale: IntOrSeq = (1, 2, 2),
    ) -> None:
        super().__init__()
        if downsample_position not in ("before", "after"):
            raise ModelConfigError(
                f"TPN.downsample_cfg.downsample_position: expected 'before' or 'after', got {downsample_position!r}"
            )
        self.conv = ConvModule(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            groups=groups,
            bias=bias,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
        )
        self.downsample_position = downsample_position
        scale = triple(downsample_scale, "TPN downsample_scale")
        self.pool = nn.MaxPool3d(scale, scale, (0, 0, 0), ceil_mode=True)

    def forward(self, x: Tensor) -> Tensor:
        if self.downsample_position == "before":
            return self.conv(self.pool(x))
        return self.pool(self.conv(x))


class LevelFusion(nn.Module):
    """Per-level grouped 1×1×1 conv (after a max pool), concatenated, then a 1×1×1 ``fusion_conv``.

    Args:
        in_channels: Channels of each level.
        mid_channels: Channels of each level after its conv.
        out_channels: Channels of the fused output.
        downsample_scales: Max-pool scale per level.

    Raises:
        ModelConfigError: If the per-level sequences differ in length.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        mid_channels: Sequence[int],
        out_channels: int,
        downsample_scales: Sequence[IntOrSeq] = ((1, 1, 1), (1, 1, 1)),
    ) -> None:
        super().__init__()
        if not len(in_channels) == len(mid_channels) <= len(downsample_scales):
            raise ModelConfigError(
                "TPN.level_fusion_cfg: in_channels, mid_channels and downsample_scales need one entry per level, "
                f"got {tuple(in_channels)}, {tuple(mid_channels)}, {tuple(downsample_scales)}"
            )
        self.downsamples = nn.ModuleList(
            DownSample(
                in_channels[i],
                mid_channels[i],
                kernel_size=(1, 1, 1),
                stride=(1, 1, 1),
                bias=False,
                padding=(0, 0, 0),
                groups=32,
                norm_cfg=_BN3D,
                act_cfg=_RELU,
                downsample_position="before",
                downsample_scale=downsample_scales[i],
            )
            for i in range(len(in_channels))
        )
        self.fusion_conv = ConvModule(
            sum(mid_channels), out_channels, 1, bias=False, conv_cfg=_CONV3D, norm_cfg=_BN3D, act_cfg=_RELU
        )

    def forward(self, x: Sequence[Tensor]) -> Tensor:
        out = [down(feature) for down, feature in zip(self.downsamples, x, strict=False)]
        return self.fusion_conv(torch.cat(out, 1))


class SpatialModulation(nn.Module):
    """Strided 3×3 convs that bring each level to the top level's spatial size.

    Level ``i`` gets ``log2(out_channels // in_channels[i])`` convs, each doubling the
    channels and halving H and W (an ``nn.Identity`` when that is 0).

    Args:
        in_channels: Channels of each level.
        out_channels: Channels of the top level.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int) -> None:
        super().__init__()
        self.spatial_modulation = nn.ModuleList()
        for channel in in_channels:
            factor = int(math.log2(out_channels // channel)) if out_channels // channel > 0 else -1
            op: nn.Module
            if factor < 1:
                op = nn.Identity()
            else:
                op = nn.ModuleList(
                    ConvModule(
                        channel * 2**k,
                        channel * 2 ** (k + 1),
                        (1, 3, 3),
                        stride=(1, 2, 2),
                        padding=(0, 1, 1),
                        bias=False,
                        conv_cfg=_CONV3D,
                        norm_cfg=_BN3D,
                        act_cfg=_RELU,
                    )
                    for k in range(factor)
                )
            self.spatial_modulation.append(op)

    def forward(self, x: Sequence[Tensor]) -> list[Tensor]:
        out = []
        for op, feature in zip(self.spatial_modulation, x, strict=False):
            if isinstance(op, nn.ModuleList):
                for conv in op:
                    feature = conv(feature)
            else:
                feature = op(feature)
            out.append(feature)
        return out


class AuxHead(nn.Module):
    """TPN's auxiliary classifier (training only): ``conv`` (3×3, stride 2), pool, dropout, ``fc``.

    Args:
        in_channels: Channels of the second-to-last backbone level.
        out_channels: Number of classes.
        loss_weight: Ignored (training only).
        loss_cls: Ignored (training only).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        loss_weight: float = 0.5,
        loss_cls: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.conv = ConvModule(
            in_channels,
            in_channels * 2,
            (1, 3, 3),
            stride=(1, 2, 2),
            padding=(0, 1, 1),
            bias=False,
            conv_cfg=_CONV3D,
            norm_cfg=_BN3D,
        )
        self.avg_pool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.loss_weight = loss_weight
        self.dropout = nn.Dropout(p=0.5)
        self.fc = nn.Linear(in_channels * 2, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        """Auxiliary class scores ``(N, out_channels)`` (what MMAction2's training loss uses)."""
        x = self.avg_pool(self.conv(x)).flatten(1)
        return self.fc(self.dropout(x))


class TemporalModulation(nn.Module):
    """Grouped temporal conv (3×1×1, 32 groups, no norm) and a temporal max pool.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        downsample_scale: Temporal kernel and stride of the max pool.
    """

    def __init__(self, in_channels: int, out_channels: int, downsample_scale: int = 8) -> None:
        super().__init__()
        self.conv = ConvModule(
            in_channels,
            out_channels,
            (3, 1, 1),
            stride=(1, 1, 1),
            padding=(1, 0, 0),
            bias=False,
            groups=32,
            conv_cfg=_CONV3D,
            act_cfg=None,
        )
        self.downsample_scale = downsample_scale
        scale = (downsample_scale, 1, 1)
        self.pool = nn.MaxPool3d(scale, scale, (0, 0, 0), ceil_mode=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            frames = int(x.shape[2])
        if frames <= self.downsample_scale:
            # One window over every frame: the same max, exported as ReduceMax (a MaxPool whose
            # kernel is longer than its input loses its rank in OpenVINO's ONNX importer).
            return x.amax(dim=2, keepdim=True)
        return self.pool(x)


def _upsample(cfg: Mapping[str, Any]) -> nn.Module:
    """``nn.Upsample(**cfg)``; an identity for a scale factor of 1 everywhere (the shipped configs).

    Resizing by 1 changes nothing, and the ONNX ``Resize`` it would export to hides the
    tensor's rank from OpenVINO's importer.
    """
    scale = cfg.get("scale_factor")
    scales: Sequence[Any] = scale if isinstance(scale, Sequence) else (scale,)
    if cfg.get("size") is None and scale is not None and all(float(s) == 1.0 for s in scales):
        return nn.Identity()
    try:
        return nn.Upsample(**cfg)
    except TypeError as exc:
        raise ModelConfigError(f"TPN.upsample_cfg: {exc}") from exc


def _section(cfg: Mapping[str, Any] | None, name: str, required: Sequence[str]) -> dict[str, Any]:
    if not isinstance(cfg, Mapping):
        raise ModelConfigError(f"TPN.{name}: expected a dict with {', '.join(required)}, got {cfg!r}")
    missing = [key for key in required if key not in cfg]
    if missing:
        raise ModelConfigError(f"TPN.{name}: missing key(s) {missing}")
    return dict(cfg)


@register()
class TPN(nn.Module):
    """TPN neck: spatial and temporal modulation, top-down and bottom-up fusion, pyramid fusion.

    ``forward(feats)`` takes the backbone levels as ``(N, C_i, T, H_i, W_i)`` clips and returns
    ``(N, 2048, T', H', W')`` (MMAction2 also returns a training-only auxiliary loss; not here).

    Args:
        in_channels: Channels of each backbone level.
        out_channels: Channels after temporal modulation.
        spatial_modulation_cfg: ``dict(in_channels=..., out_channels=...)``.
        temporal_modulation_cfg: ``dict(downsample_scales=...)`` (one per level), or ``None``.
        upsample_cfg: ``nn.Upsample`` arguments for the top-down flow, or ``None``.
        downsample_cfg: :class:`DownSample` arguments for the bottom-up flow, or ``None``.
        level_fusion_cfg: :class:`LevelFusion` arguments.
        aux_head_cfg: :class:`AuxHead` arguments (``out_channels``), or ``None``.
        flow_type: ``'cascade'`` (bottom-up on the top-down result) or ``'parallel'``.

    Raises:
        ModelConfigError: For a missing section or key, or an unknown ``flow_type``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int,
        spatial_modulation_cfg: Mapping[str, Any] | None = None,
        temporal_modulation_cfg: Mapping[str, Any] | None = None,
        upsample_cfg: Mapping[str, Any] | None = None,
        downsample_cfg: Mapping[str, Any] | None = None,
        level_fusion_cfg: Mapping[str, Any] | None = None,
        aux_head_cfg: Mapping[str, Any] | None = None,
        flow_type: str = "cascade",
    ) -> None:
        super().__init__()
        if flow_type not in ("cascade", "parallel"):
            raise ModelConfigError(f"TPN.flow_type: expected 'cascade' or 'parallel', got {flow_type!r}")
        self.in_channels = tuple(in_channels)
        self.out_channels = out_channels
        self.num_tpn_stages = len(self.in_channels)
        self.flow_type = flow_type
        fusion = _section(level_fusion_cfg, "level_fusion_cfg", ("in_channels", "mid_channels", "out_channels"))
        spatial = _section(spatial_modulation_cfg, "spatial_modulation_cfg", ("in_channels", "out_channels"))

        self.temporal_modulation_ops = nn.ModuleList()
        self.upsample_ops = nn.ModuleList()
        self.downsample_ops = nn.ModuleList()
        self.level_fusion_1 = LevelFusion(**fusion)
        self.spatial_modulation = SpatialModulation(**spatial)
        if temporal_modulation_cfg is not None:
            scales = _section(temporal_modulation_cfg, "temporal_modulation_cfg", ("downsample_scales",))
            if len(scales["downsample_scales"]) < self.num_tpn_stages:
                raise ModelConfigError(
                    f"TPN.temporal_modulation_cfg.downsample_scales: expected {self.num_tpn_stages} entries, "
                    f"got {scales['downsample_scales']!r}"
                )
        for i in range(self.num_tpn_stages):
            if temporal_modulation_cfg is not None:
                scale = temporal_modulation_cfg["downsample_scales"][i]
                self.temporal_modulation_ops.append(TemporalModulation(self.in_channels[-1], out_channels, scale))
            if i < self.num_tpn_stages - 1:
                if upsample_cfg is not None:
                    self.upsample_ops.append(_upsample(upsample_cfg))
                if downsample_cfg is not None:
                    self.downsample_ops.append(DownSample(out_channels, out_channels, **downsample_cfg))
        self.level_fusion_2 = LevelFusion(**fusion)
        self.pyramid_fusion = ConvModule(
            fusion["out_channels"] * 2, 2048, 1, bias=False, conv_cfg=_CONV3D, norm_cfg=_BN3D
        )
        self.aux_head = AuxHead(self.in_channels[-2], **aux_head_cfg) if aux_head_cfg is not None else None

    def forward(self, x: Sequence[Tensor]) -> Tensor:
        """Fuse the levels ``x`` (each ``(N, C_i, T, H_i, W_i)``) into ``(N, 2048, T', H', W')``."""
        spatial = self.spatial_modulation(x)
        temporal = [op(spatial[i]) for i, op in enumerate(self.temporal_modulation_ops)]
        outs = list(temporal)
        for i in range(len(self.upsample_ops), 0, -1):
            outs[i - 1] = outs[i - 1] + self.upsample_ops[i - 1](outs[i])
        top_down = self.level_fusion_1(outs)
        if self.flow_type == "parallel":
            outs = list(temporal)
        for i, down in enumerate(self.downsample_ops):
            outs[i + 1] = outs[i + 1] + down(outs[i])
        bottom_up = self.level_fusion_2(outs)
        return self.pyramid_fusion(torch.cat([top_down, bottom_up], 1))


@register()
class TPNHead(TSNHead):
    """TPN's head on the neck's ``(N, C, T, H, W)`` map: pool, dropout, ``fc_cls`` (keys as TSNHead).

    With ``fcn_test`` (the shipped configs' ``test_cfg``) MMAction2 pools over T×H×W and applies
    ``fc_cls`` as a 1×1×1 conv; here too. Without it, frames-as-segments input
    ``(N * num_segs, C, H, W)`` is pooled per frame and averaged over ``num_segs``
    (``num_segs=None``: a clip is pooled over T×H×W).

    Args:
        See :class:`~engines.models.heads.TSNHead`.
    """

    supports_fcn_test = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.avg_pool3d = nn.AdaptiveAvgPool3d((1, 1, 1)) if self.spatial_type == "avg" else None

    def clips_per_sample(self, num_views: int) -> int:
        return num_views

    def forward(self, x: Tensor, num_segs: int | None = None, fcn_test: bool = False) -> Tensor:
        """Scores ``(rows, num_classes)``: one row per clip (``fcn_test``), per group of ``num_segs`` otherwise."""
        if fcn_test:
            if self.avg_pool3d is not None:
                x = self.avg_pool3d(x)
            weight = self.fc_cls.weight[..., None, None, None]
            return F.conv3d(x, weight, self.fc_cls.bias).reshape(x.shape[0], -1)
        if num_segs is None:
            if self.avg_pool3d is not None:
                x = self.avg_pool3d(x)
        else:
            x = x.mean(dim=(-2, -1), keepdim=True)  # MMAction2's AvgPool3d((1, H, W)) over the map
            x = self.consensus(x.reshape((-1, num_segs, *x.shape[1:]))).squeeze(1)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc_cls(x.reshape(x.shape[0], -1))
