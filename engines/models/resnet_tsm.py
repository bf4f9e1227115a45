"""MMAction2's ``ResNetTSM``: ResNet with temporal shift, optional temporal pooling and non-local blocks.

The wrappers keep MMAction2's module names, so checkpoint keys match:

* ``shift_place='blockres'``: ``layer1.0.conv1.conv.net.weight`` (the shift wraps ``conv1.conv``;
  with 23 or more blocks in ``layer3`` only every second block shifts, as in MMAction2);
* ``shift_place='block'``: ``layer1.0.net.conv1.conv.weight`` (the shift wraps the block);
* ``temporal_pool=True``: ``layer2.net.0...`` (a temporal max pool wraps ``layer2``);
* non-local blocks: ``layer2.0.block...`` and ``layer2.0.non_local_block.g.conv.weight``.

The shift is written with slices and ``cat`` (no in-place writes), so it exports to ONNX.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from engines.errors import ModelConfigError
from engines.models.registry import register
from engines.models.resnet import Bottleneck, ResNet, make_act

_NL_MODES = ("gaussian", "embedded_gaussian", "dot_product", "concatenation")


class TemporalShift(nn.Module):
    """Shift 1/``shift_div`` of the channels one frame back and another 1/``shift_div`` one frame ahead.

    Args:
        net: Module applied after the shift.
        num_segments: Frames per clip; the batch is ``clips * num_segments``.
        shift_div: Inverse fraction of channels shifted each way.
    """

    def __init__(self, net: nn.Module, num_segments: int = 3, shift_div: int = 8) -> None:
        super().__init__()
        self.net = net
        self.num_segments = num_segments
        self.shift_div = shift_div

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.shift(x, self.num_segments, self.shift_div))

    @staticmethod
    def shift(x: Tensor, num_segments: int, shift_div: int = 3) -> Tensor:
        """Temporal shift of ``x`` (``(clips * num_segments, C, H, W)``), zero-filled at the clip ends."""
        _, c, h, w = x.shape
        x5 = x.reshape(-1, num_segments, c, h, w)
        fold = c // shift_div
        left = x5[:, 1:, :fold]  # channels [0, fold) take the next frame's values
        mid = x5[:, :-1, fold : 2 * fold]  # channels [fold, 2 fold) take the previous frame's values
        blank = torch.zeros_like(x5[:, :1, :fold])
        left = torch.cat((left, blank), dim=1)
        mid = torch.cat((blank, mid), dim=1)
        out = torch.cat((left, mid, x5[:, :, 2 * fold :]), dim=2)
        return out.reshape(-1, c, h, w)


class TemporalPool(nn.Module):
    """Halve the frames with a temporal max pool (kernel 3, stride 2) before ``net``.

    Args:
        net: The wrapped stage.
        num_segments: Frames per clip before pooling.
    """

    def __init__(self, net: nn.Module, num_segments: int) -> None:
        super().__init__()
        self.net = net
        self.num_segments = num_segments
        self.max_pool3d = nn.MaxPool3d(kernel_size=(3, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0))

    def forward(self, x: Tensor) -> Tensor:
        _, c, h, w = x.shape
        x = x.reshape(-1, self.num_segments, c, h, w).transpose(1, 2)
        x = self.max_pool3d(x).transpose(1, 2).reshape(-1, c, h, w)
        return self.net(x)


class _Conv3dModule(nn.Module):
    """1×1×1 Conv3d → optional BN3d → optional activation, named ``conv``/``bn``/``activate`` like mmcv."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm_cfg: Mapping[str, Any] | None = None,
        act_cfg: Mapping[str, Any] | None = None,
        bias: bool | None = None,
    ) -> None:
        super().__init__()
        with_norm = norm_cfg is not None
        self.conv = nn.Conv3d(in_channels, out_channels, 1, bias=(not with_norm) if bias is None else bias)
        if norm_cfg is not None:
            self.bn = _make_norm3d(out_channels, norm_cfg)
        activate = make_act(act_cfg, "non_local_cfg.act_cfg")
        if activate is not None:
            self.activate = activate
        self.with_norm = with_norm
        self.with_activation = activate is not None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.with_norm:
            x = self.bn(x)
        return self.activate(x) if self.with_activation else x


def _make_norm3d(num_features: int, norm_cfg: Mapping[str, Any]) -> nn.BatchNorm3d:
    cfg = dict(norm_cfg)
    norm_type = cfg.pop("type", None)
    cfg.pop("requires_grad", None)
    if norm_type not in ("BN3d", "SyncBN"):
        raise ModelConfigError(f"non_local_cfg.norm_cfg.type: expected 'BN3d' or 'SyncBN', got {norm_type!r}")
    unknown = sorted(set(cfg) - {"eps", "momentum"})
    if unknown:
        raise ModelConfigError(f"non_local_cfg.norm_cfg: unknown key(s) {unknown}")
    return nn.BatchNorm3d(num_features, eps=cfg.get("eps", 1e-5), momentum=cfg.get("momentum", 0.1))


class NonLocal3d(nn.Module):
    """mmcv's 3D non-local block (``g``, ``theta``, ``phi``, ``conv_out``; residual output).

    Args:
        in_channels: Channels of the input feature.
        sub_sample: Spatially max-pool (1×2×2) the ``g`` and ``phi`` branches.
        conv_cfg: Only ``dict(type='Conv3d')``.
        reduction: Inner channels are ``in_channels // reduction``.
        use_scale: Divide by ``sqrt(inner channels)`` in ``embedded_gaussian`` mode.
        norm_cfg: Norm of ``conv_out`` (``BN3d``), or ``None``.
        mode: ``gaussian``, ``embedded_gaussian``, ``dot_product`` or ``concatenation``.
        std: Ignored (initialisation).
        zeros_init: Ignored (initialisation).

    Raises:
        ModelConfigError: For an unknown mode or an unsupported conv/norm config.
    """

    def __init__(
        self,
        in_channels: int,
        sub_sample: bool = False,
        conv_cfg: Mapping[str, Any] | None = None,
        reduction: int = 2,
        use_scale: bool = True,
        norm_cfg: Mapping[str, Any] | None = None,
        mode: str = "embedded_gaussian",
        std: float = 0.01,
        zeros_init: bool = True,
    ) -> None:
        super().__init__()
        if mode not in _NL_MODES:
            raise ModelConfigError(f"non_local_cfg.mode: expected one of {_NL_MODES}, got {mode!r}")
        if conv_cfg is not None and dict(conv_cfg) != {"type": "Conv3d"}:
            raise ModelConfigError(f"non_local_cfg.conv_cfg: only dict(type='Conv3d') works, got {conv_cfg!r}")
        self.in_channels = in_channels
        self.inter_channels = max(in_channels // reduction, 1)
        self.use_scale = use_scale
        self.mode = mode
        self.sub_sample = sub_sample
        inter = self.inter_channels
        self.g: nn.Module = _Conv3dModule(in_channels, inter)
        self.conv_out = _Conv3dModule(inter, in_channels, norm_cfg=norm_cfg)
        self.phi: nn.Module | None = None
        if mode != "gaussian":
            self.theta = _Conv3dModule(in_channels, inter)
            self.phi = _Conv3dModule(in_channels, inter)
        if mode == "concatenation":
            self.concat_project = _Conv2dReLU(inter * 2)
        if sub_sample:
            pool = nn.MaxPool3d(kernel_size=(1, 2, 2))
            self.g = nn.Sequential(self.g, pool)
            self.phi = nn.Sequential(self.phi, pool) if self.phi is not None else pool

    def _pairwise(self, theta_x: Tensor, phi_x: Tensor) -> Tensor:
        if self.mode == "concatenation":
            h, w = theta_x.shape[2], phi_x.shape[3]
            feat = torch.cat((theta_x.repeat(1, 1, 1, w), phi_x.repeat(1, 1, h, 1)), dim=1)
            weight = self.concat_project(feat).squeeze(1)
            return weight / weight.shape[-1]
        weight = torch.matmul(theta_x, phi_x)
        if self.mode == "dot_product":
            return weight / weight.shape[-1]
        if self.mode == "embedded_gaussian" and self.use_scale:
            weight = weight / math.sqrt(theta_x.shape[-1])
        return weight.softmax(dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        g_x = self.g(x).reshape(n, self.inter_channels, -1).permute(0, 2, 1)
        if self.mode == "gaussian":
            theta_x = x.reshape(n, self.in_channels, -1).permute(0, 2, 1)
            phi_src = self.phi(x) if self.phi is not None else x
            phi_x = phi_src.reshape(n, self.in_channels, -1)
        elif self.mode == "concatenation":
            theta_x = self.theta(x).reshape(n, self.inter_channels, -1, 1)
            phi_x = self.phi(x).reshape(n, self.inter_channels, 1, -1)  # type: ignore[misc]
        else:
            theta_x = self.theta(x).reshape(n, self.inter_channels, -1).permute(0, 2, 1)
            phi_x = self.phi(x).reshape(n, self.inter_channels, -1)  # type: ignore[misc]
        y = torch.matmul(self._pairwise(theta_x, phi_x), g_x)
        y = y.permute(0, 2, 1).reshape(n, self.inter_channels, *x.shape[2:])
        return x + self.conv_out(y)


class _Conv2dReLU(nn.Module):
    """mmcv ``ConvModule(2C, 1, 1, bias=False, act_cfg=ReLU)``: the concatenation projection."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 1, 1, bias=False)
        self.activate = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(self.conv(x))


class NL3DWrapper(nn.Module):
    """A residual block followed by a :class:`NonLocal3d` over ``(clip, C, T, H, W)``.

    Args:
        block: The wrapped residual block.
        num_segments: Frames per clip.
        non_local_cfg: :class:`NonLocal3d` arguments.
        channels: Output channels of ``block``.
    """

    def __init__(self, block: nn.Module, num_segments: int, non_local_cfg: Mapping[str, Any], channels: int) -> None:
        super().__init__()
        self.block = block
        self.num_segments = num_segments
        try:
            self.non_local_block = NonLocal3d(channels, **non_local_cfg)
        except TypeError as exc:
            raise ModelConfigError(f"non_local_cfg: {exc}") from exc

    def forward(self, x: Tensor) -> Tensor:
        x = self.block(x)
        _, c, h, w = x.shape
        x = x.reshape(-1, self.num_segments, c, h, w).transpose(1, 2)
        x = self.non_local_block(x)
        return x.transpose(1, 2).reshape(-1, c, h, w)


@register()
class ResNetTSM(ResNet):
    """ResNet with temporal shift modules (TSM), MMAction2's ``ResNetTSM``.

    Input is ``(clips * num_segments, C, H, W)``: the frames of each clip are consecutive.

    Args:
        depth: 18, 34, 50, 101 or 152.
        num_segments: Frames per clip.
        is_shift: Insert temporal shifts.
        non_local: Per stage, per block flags for non-local blocks (used only when
            ``non_local_cfg`` is not empty), e.g. ``((0, 0, 0), (1, 0, 1, 0), ...)``.
        non_local_cfg: :class:`NonLocal3d` arguments; empty means no non-local blocks.
        shift_div: Inverse fraction of channels shifted each way.
        shift_place: ``'blockres'`` (shift inside the residual branch) or ``'block'``.
        temporal_pool: Halve the frames before ``layer2``.
        pretrained2d: Ignored (weights come from whole-model checkpoints).
        **resnet_kwargs: :class:`~engines.models.resnet.ResNet` arguments.

    Raises:
        ModelConfigError: For an invalid shift, pooling or non-local setting.
    """

    def __init__(
        self,
        depth: int,
        num_segments: int = 8,
        is_shift: bool = True,
        non_local: Sequence[Any] = (0, 0, 0, 0),
        non_local_cfg: Mapping[str, Any] | None = None,
        shift_div: int = 8,
        shift_place: str = "blockres",
        temporal_pool: bool = False,
        pretrained2d: bool = True,
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
        super().__init__(
            depth,
            in_channels=in_channels,
            num_stages=num_stages,
            out_indices=out_indices,
            strides=strides,
            dilations=dilations,
            style=style,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            norm_eval=norm_eval,
        )
        if not isinstance(num_segments, int) or num_segments <= 0:
            raise ModelConfigError(f"ResNetTSM.num_segments: expected a positive int, got {num_segments!r}")
        if not isinstance(shift_div, int) or shift_div <= 0:
            raise ModelConfigError(f"ResNetTSM.shift_div: expected a positive int, got {shift_div!r}")
        if (is_shift or temporal_pool) and num_stages != 4:
            raise ModelConfigError(f"ResNetTSM: shift and temporal_pool need num_stages=4, got {num_stages}")
        self.num_segments = num_segments
        self.is_shift = is_shift
        self.shift_div = shift_div
        self.shift_place = shift_place
        self.temporal_pool = temporal_pool
        if is_shift:
            self._make_temporal_shift()
        if non_local_cfg:
            self._make_non_local(non_local, non_local_cfg)
        if temporal_pool:
            self.add_module("layer2", TemporalPool(self.get_submodule("layer2"), num_segments))

    def _make_temporal_shift(self) -> None:
        if self.temporal_pool:
            segments = [self.num_segments] + [self.num_segments // 2] * 3
        else:
            segments = [self.num_segments] * 4
        if segments[-1] <= 0:
            raise ModelConfigError(f"ResNetTSM: num_segments={self.num_segments} is too small for temporal_pool")
        if self.shift_place == "block":
            for i, num_segments in enumerate(segments):
                stage = getattr(self, f"layer{i + 1}")
                wrapped = [TemporalShift(b, num_segments, self.shift_div) for b in stage.children()]
                setattr(self, f"layer{i + 1}", nn.Sequential(*wrapped))
        elif "blockres" in self.shift_place:
            every = 2 if self.stage_blocks[2] >= 23 else 1
            for i, num_segments in enumerate(segments):
                for j, block in enumerate(getattr(self, f"layer{i + 1}").children()):
                    if j % every == 0:
                        block.conv1.conv = TemporalShift(block.conv1.conv, num_segments, self.shift_div)
        else:
            raise ModelConfigError(f"ResNetTSM.shift_place: expected 'blockres' or 'block', got {self.shift_place!r}")

    def _make_non_local(self, non_local: Sequence[Any], non_local_cfg: Mapping[str, Any]) -> None:
        if self.block is not Bottleneck:
            raise ModelConfigError(f"ResNetTSM.non_local: non-local blocks need depth >= 50, got {self.depth}")
        stages = tuple(non_local) if isinstance(non_local, Sequence) else (non_local,) * self.num_stages
        if len(stages) != self.num_stages or not all(isinstance(s, Sequence) for s in stages):
            raise ModelConfigError(
                f"ResNetTSM.non_local: expected {self.num_stages} per-block flag tuples, got {non_local!r}"
            )
        for i, flags in enumerate(stages):
            layer = getattr(self, f"layer{i + 1}")
            if len(flags) > len(layer):
                raise ModelConfigError(
                    f"ResNetTSM.non_local[{i}]: {len(flags)} flags for {len(layer)} blocks in layer{i + 1}"
                )
            channels = 64 * 2**i * self.block.expansion
            for j, flag in enumerate(flags):
                if flag:
                    layer[j] = NL3DWrapper(layer[j], self.num_segments, non_local_cfg, channels)
