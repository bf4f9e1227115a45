"""mmpretrain's ``MobileOne`` and MMAction2's ``MobileOneTSM``, with their parameter names.

mmpretrain is not a dependency: the layout and arithmetic follow mmpretrain 1.x
``mmpretrain/models/backbones/mobileone.py`` (and its ``SELayer``):

* a train-time :class:`MobileOneBlock` sums a batch-norm identity branch ``branch_norm``
  (when the shape is kept), a 1×1 conv-BN ``branch_scale`` (for 3×3 blocks) and
  ``num_convs`` conv-BN branches ``branch_conv_list.{i}.{conv,norm}``, then SE and ReLU;
* a ``deploy=True`` block holds one biased conv ``branch_reparam`` instead (the branches
  fused); :meth:`MobileOneBlock.switch_to_deploy` computes that fusion as mmpretrain does;
* stages: ``stage0`` (the 3×3 stride-2 stem block) then ``stage1``..``stage4``, each block a
  depthwise 3×3 block followed by a pointwise 1×1 block; SE on the last ``num_se_blocks``.

``MobileOneTSM`` wraps ``stage0`` and every block of ``stage1``..``stage4`` in a temporal
shift (``stage0.net.*``, ``stage1.0.net.*``): the shift sits before the block, so the fused
deploy form works as well.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engines.errors import ModelConfigError
from engines.models.layers import ConvModule, build_activation, build_conv, build_norm, check_conv_cfg, split_cfg
from engines.models.mobilenet_v2 import make_divisible
from engines.models.registry import register
from engines.models.resnet_tsm import TemporalShift

_BN_CFG: Mapping[str, Any] = {"type": "BN"}
_RELU_CFG: Mapping[str, Any] = {"type": "ReLU"}
_SE_KEYS = frozenset({"squeeze_channels", "ratio", "divisor", "bias", "conv_cfg", "act_cfg", "return_weight"})


class SELayer(nn.Module):
    """Squeeze-and-excitation as mmpretrain writes it: ``x * sigmoid(conv2(relu(conv1(avgpool(x)))))``.

    Children ``conv1`` and ``conv2`` are :class:`ConvModule` s with a bias (``conv1.conv.bias``).

    Args:
        channels: Input (and output) channels.
        squeeze_channels: Hidden channels; default ``make_divisible(channels // ratio, divisor)``.
        ratio: Squeeze ratio.
        divisor: Rounding of the hidden channels.
        bias: Conv bias (``'auto'``: yes, there is no norm).
        conv_cfg: Conv type.
        act_cfg: One activation config for both, or a pair (default ReLU, Sigmoid).
        return_weight: Return the attention weights instead of the scaled input.
    """

    def __init__(
        self,
        channels: int,
        squeeze_channels: int | None = None,
        ratio: int = 16,
        divisor: int = 8,
        bias: bool | str = "auto",
        conv_cfg: Mapping[str, Any] | None = None,
        act_cfg: Mapping[str, Any] | Sequence[Mapping[str, Any]] = ({"type": "ReLU"}, {"type": "Sigmoid"}),
        return_weight: bool = False,
    ) -> None:
        super().__init__()
        acts = (act_cfg, act_cfg) if isinstance(act_cfg, Mapping) else tuple(act_cfg)
        if len(acts) != 2:
            raise ModelConfigError(f"se_cfg.act_cfg: expected one config or two, got {act_cfg!r}")
        if squeeze_channels is None:
            squeeze_channels = make_divisible(channels // ratio, divisor)
        if not isinstance(squeeze_channels, int) or squeeze_channels <= 0:
            raise ModelConfigError(f"se_cfg.squeeze_channels: expected a positive int, got {squeeze_channels!r}")
        self.return_weight = return_weight
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = ConvModule(channels, squeeze_channels, 1, bias=bias, conv_cfg=conv_cfg, act_cfg=acts[0])
        self.conv2 = ConvModule(squeeze_channels, channels, 1, bias=bias, conv_cfg=conv_cfg, act_cfg=acts[1])

    def forward(self, x: Tensor) -> Tensor:
        weight = self.conv2(self.conv1(self.global_avgpool(x)))
        return weight if self.return_weight else x * weight


def _norm(cfg: Mapping[str, Any], channels: int) -> nn.Module:
    return build_norm(cfg, channels, 2, "MobileOne.norm_cfg")[1]


class _ConvBN(nn.Sequential):
    """mmpretrain's ``create_conv_bn``: children ``conv`` (no bias) and ``norm``."""

    conv: nn.Conv2d
    norm: nn.BatchNorm2d

    def __init__(self, conv: nn.Module, norm: nn.Module) -> None:
        super().__init__()
        self.add_module("conv", conv)
        self.add_module("norm", norm)


def fuse_conv_bn(conv_weight: Tensor, norm: nn.Module) -> tuple[Tensor, Tensor]:
    """Weight and bias of a bias-free conv followed by an eval-mode batch norm, as one conv."""
    assert isinstance(norm, nn.modules.batchnorm._BatchNorm)
    assert norm.running_mean is not None and norm.running_var is not None
    std = (norm.running_var + norm.eps).sqrt()
    weight = (norm.weight / std).reshape(-1, 1, 1, 1) * conv_weight
    bias = norm.bias - norm.running_mean * norm.weight / std
    return weight, bias


class MobileOneBlock(nn.Module):
    """One MobileOne block: re-parameterizable branches, then SE and the activation.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Kernel of the conv branches (3 or 1).
        num_convs: Number of conv-BN branches.
        stride: Stride of every branch.
        padding: Padding of the conv branches.
        dilation: Dilation of the conv branches.
        groups: Groups of every conv (``in_channels`` for the depthwise blocks).
        se_cfg: :class:`SELayer` arguments, or ``None`` for no SE.
        conv_cfg: Conv type (2D).
        norm_cfg: Batch-norm config.
        act_cfg: Activation config.
        deploy: Build the fused form (one biased conv ``branch_reparam``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_convs: int,
        stride: int = 1,
        padding: int = 1,
        dilation: int = 1,
        groups: int = 1,
        se_cfg: Mapping[str, Any] | None = None,
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] = _BN_CFG,
        act_cfg: Mapping[str, Any] = _RELU_CFG,
        deploy: bool = False,
    ) -> None:
        super().__init__()
        self.se: nn.Module = SELayer(out_channels, **se_cfg) if se_cfg is not None else nn.Identity()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.num_conv_branches = num_convs
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        self.deploy = deploy
        self.branch_reparam: nn.Module | None = None
        self.branch_norm: nn.Module | None = None
        self.branch_scale: _ConvBN | None = None
        self.branch_conv_list = nn.ModuleList()
        if deploy:
            self.branch_reparam = self._conv(kernel_size, padding, dilation, bias=True)
        else:
            if out_channels == in_channels and stride == 1:
                self.branch_norm = _norm(norm_cfg, in_channels)
            if kernel_size > 1:
                self.branch_scale = _ConvBN(self._conv(1, 0, 1, bias=False), _norm(norm_cfg, out_channels))
            for _ in range(num_convs):
                conv = self._conv(kernel_size, padding, dilation, bias=False)
                self.branch_conv_list.append(_ConvBN(conv, _norm(norm_cfg, out_channels)))
        self.act = build_activation(act_cfg, "MobileOne.act_cfg")

    def _conv(self, kernel_size: int, padding: int, dilation: int, *, bias: bool) -> nn.Module:
        return build_conv(
            self.conv_cfg,
            self.in_channels,
            self.out_channels,
            kernel_size,
            stride=self.stride,
            padding=padding,
            dilation=dilation,
            groups=self.groups,
            bias=bias,
            where="MobileOne.conv_cfg",
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.branch_reparam is not None:
            out = self.branch_reparam(x)
        else:
            branches = [self.branch_norm, self.branch_scale, *self.branch_conv_list]
            outs = [branch(x) for branch in branches if branch is not None]
            out = outs[0]
            for more in outs[1:]:
                out = out + more
        return self.act(self.se(out))

    def reparameterize(self) -> tuple[Tensor, Tensor]:
        """Weight and bias of the one conv equal to the sum of the branches (eval-mode norms).

        Raises:
            ModelConfigError: If the block is already fused.
        """
        if self.deploy:
            raise ModelConfigError("MobileOneBlock.reparameterize: the block is already in deploy form")
        k = self.kernel_size
        weight = torch.zeros(self.out_channels, self.in_channels // self.groups, k, k)
        bias = torch.zeros(self.out_channels)
        for branch in self.branch_conv_list:
            assert isinstance(branch, _ConvBN)
            w, b = fuse_conv_bn(branch.conv.weight, branch.norm)
            weight, bias = weight + w, bias + b
        if self.branch_scale is not None:
            w, b = fuse_conv_bn(self.branch_scale.conv.weight, self.branch_scale.norm)
            pad = k // 2
            weight, bias = weight + F.pad(w, [pad, pad, pad, pad]), bias + b
        if self.branch_norm is not None:
            per_group = self.in_channels // self.groups
            identity = torch.zeros(self.in_channels, per_group, k, k)
            for i in range(self.in_channels):
                identity[i, i % per_group, k // 2, k // 2] = 1
            w, b = fuse_conv_bn(identity, self.branch_norm)
            weight, bias = weight + w, bias + b
        return weight, bias

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Replace the branches with their fused conv ``branch_reparam`` (no-op when already fused)."""
        if self.deploy:
            return
        weight, bias = self.reparameterize()
        conv = self._conv(self.kernel_size, self.padding, self.dilation, bias=True)
        assert isinstance(conv, nn.Conv2d) and conv.bias is not None
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
        self.branch_reparam = conv
        self.branch_norm = None
        self.branch_scale = None
        self.branch_conv_list = nn.ModuleList()
        self.deploy = True


@register("mmpretrain.MobileOne")
class MobileOne(nn.Module):
    """mmpretrain's MobileOne backbone (arch ``'s0'``..``'s4'`` or a dict).

    ``forward`` returns a tuple with the outputs of the stages in ``out_indices``, as
    mmpretrain does.

    Args:
        arch: ``'s0'``..``'s4'``, or a dict of four-entry lists ``num_blocks``,
            ``width_factor``, ``num_conv_branches``, ``num_se_blocks``.
        in_channels: Input channels.
        out_indices: Stages (0..3, negative counts from the end) whose outputs are returned.
        frozen_stages: Training only; accepted and ignored.
        conv_cfg: ``None`` or ``dict(type='Conv2d')``.
        norm_cfg: Batch-norm config.
        act_cfg: Activation config.
        se_cfg: :class:`SELayer` arguments for the blocks with SE.
        deploy: Build the fused (re-parameterized) form.
        norm_eval: Training only; accepted and ignored.
        init_cfg: Ignored.

    Raises:
        ModelConfigError: For an unknown arch, a malformed arch dict, bad ``out_indices`` or
            more SE blocks than blocks in a stage.
    """

    arch_zoo: ClassVar[dict[str, dict[str, list[Any]]]] = {
        "s0": {
            "num_blocks": [2, 8, 10, 1],
            "width_factor": [0.75, 1.0, 1.0, 2.0],
            "num_conv_branches": [4, 4, 4, 4],
            "num_se_blocks": [0, 0, 0, 0],
        },
        "s1": {
            "num_blocks": [2, 8, 10, 1],
            "width_factor": [1.5, 1.5, 2.0, 2.5],
            "num_conv_branches": [1, 1, 1, 1],
            "num_se_blocks": [0, 0, 0, 0],
        },
        "s2": {
            "num_blocks": [2, 8, 10, 1],
            "width_factor": [1.5, 2.0, 2.5, 4.0],
            "num_conv_branches": [1, 1, 1, 1],
            "num_se_blocks": [0, 0, 0, 0],
        },
        "s3": {
            "num_blocks": [2, 8, 10, 1],
            "width_factor": [2.0, 2.5, 3.0, 4.0],
            "num_conv_branches": [1, 1, 1, 1],
            "num_se_blocks": [0, 0, 0, 0],
        },
        "s4": {
            "num_blocks": [2, 8, 10, 1],
            "width_factor": [3.0, 3.5, 3.5, 4.0],
            "num_conv_branches": [1, 1, 1, 1],
            "num_se_blocks": [0, 0, 5, 1],
        },
    }
    _ARCH_KEYS = ("num_blocks", "width_factor", "num_conv_branches", "num_se_blocks")

    def __init__(
        self,
        arch: str | Mapping[str, Sequence[Any]] = "s0",
        in_channels: int = 3,
        out_indices: int | Sequence[int] = (3,),
        frozen_stages: int = -1,
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = None,
        act_cfg: Mapping[str, Any] | None = None,
        se_cfg: Mapping[str, Any] | None = None,
        deploy: bool = False,
        norm_eval: bool = False,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        settings = self._arch(arch, name)
        check_conv_cfg(conv_cfg, ("Conv", "Conv2d"), f"{name}.conv_cfg")
        norm = dict(norm_cfg) if norm_cfg is not None else dict(_BN_CFG)
        act = dict(act_cfg) if act_cfg is not None else dict(_RELU_CFG)
        se = dict(se_cfg) if se_cfg is not None else {"ratio": 16}
        build_norm(norm, 1, 2, f"{name}.norm_cfg")
        split_cfg(act, f"{name}.act_cfg")
        unknown = sorted(set(se) - _SE_KEYS)
        if unknown:
            raise ModelConfigError(
                f"{name}.se_cfg: unknown key(s) {unknown}; valid keys: {', '.join(sorted(_SE_KEYS))}"
            )
        self.arch = settings
        self.in_channels = in_channels
        self.deploy = deploy
        block_args: dict[str, Any] = dict(conv_cfg=conv_cfg, norm_cfg=norm, act_cfg=act, deploy=deploy)

        base_channels = [64, 128, 256, 512]
        channels = min(64, int(base_channels[0] * settings["width_factor"][0]))
        self.stage0: nn.Module = MobileOneBlock(
            in_channels, channels, kernel_size=3, num_convs=1, stride=2, **block_args
        )
        in_planes = channels
        self.stages: list[str] = []
        for i, num_blocks in enumerate(settings["num_blocks"]):
            planes = int(base_channels[i] * settings["width_factor"][i])
            num_se = settings["num_se_blocks"][i]
            if num_se > num_blocks:
                raise ModelConfigError(f"{name}.arch: stage {i + 1} has {num_se} SE blocks but {num_blocks} blocks")
            blocks: list[nn.Module] = []
            for j in range(num_blocks):
                block_se = se if j >= num_blocks - num_se else None
                branches = settings["num_conv_branches"][i]
                stride = 2 if j == 0 else 1
                blocks.append(
                    MobileOneBlock(
                        in_planes, in_planes, 3, branches, stride, 1, groups=in_planes, se_cfg=block_se, **block_args
                    )
                )
                blocks.append(MobileOneBlock(in_planes, planes, 1, branches, 1, 0, se_cfg=block_se, **block_args))
                in_planes = planes
            self.add_module(f"stage{i + 1}", nn.Sequential(*blocks))
            self.stages.append(f"stage{i + 1}")
        self.feat_dim = in_planes

        indices = [out_indices] if isinstance(out_indices, int) else list(out_indices)
        for k, index in enumerate(indices):
            if not isinstance(index, int) or not -len(self.stages) <= index < len(self.stages):
                raise ModelConfigError(f"{name}.out_indices: expected stage indices in -4..3, got {out_indices!r}")
            indices[k] = index % len(self.stages)
        self.out_indices = indices

    @classmethod
    def _arch(cls, arch: str | Mapping[str, Sequence[Any]], name: str) -> dict[str, list[Any]]:
        if isinstance(arch, str):
            if arch not in cls.arch_zoo:
                raise ModelConfigError(f"{name}.arch: unknown arch {arch!r}; valid archs: {', '.join(cls.arch_zoo)}")
            return cls.arch_zoo[arch]
        if not isinstance(arch, Mapping):
            raise ModelConfigError(f"{name}.arch: expected an arch name or a dict, got {type(arch).__name__}")
        settings = {key: list(arch.get(key, ())) for key in cls._ARCH_KEYS}
        if set(arch) != set(cls._ARCH_KEYS) or any(len(v) != 4 for v in settings.values()):
            raise ModelConfigError(f"{name}.arch: expected the keys {', '.join(cls._ARCH_KEYS)}, each a list of 4")
        return settings

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Outputs of the stages in ``out_indices`` for images ``(B, C, H, W)``."""
        x = self.stage0(x)
        outs = []
        for i, stage_name in enumerate(self.stages):
            x = getattr(self, stage_name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def switch_to_deploy(self) -> None:
        """Fuse every block's branches (mmpretrain's ``switch_to_deploy``)."""
        for module in self.modules():
            if isinstance(module, MobileOneBlock):
                module.switch_to_deploy()
        self.deploy = True


@register()
class MobileOneTSM(MobileOne):
    """MobileOne with a temporal shift before each block, MMAction2's ``MobileOneTSM``.

    Input is ``(clips * num_segments, 3, H, W)``; returns the single feature map (the
    tuple of one is unpacked, as MMAction2 does).

    Args:
        arch: See :class:`MobileOne`.
        num_segments: Frames per clip.
        is_shift: Insert temporal shifts.
        shift_div: Inverse fraction of channels shifted each way.
        pretrained2d: Ignored (weights come from whole-model checkpoints).
        **kwargs: :class:`MobileOne` arguments.

    Raises:
        ModelConfigError: For a non-positive ``num_segments`` or ``shift_div``, or more than one output.
    """

    def __init__(
        self,
        arch: str | Mapping[str, Sequence[Any]],
        num_segments: int = 8,
        is_shift: bool = True,
        shift_div: int = 8,
        pretrained2d: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(arch, **kwargs)
        for key, value in (("num_segments", num_segments), ("shift_div", shift_div)):
            if not isinstance(value, int) or value <= 0:
                raise ModelConfigError(f"MobileOneTSM.{key}: expected a positive int, got {value!r}")
        if len(self.out_indices) != 1:
            raise ModelConfigError(f"MobileOneTSM.out_indices: expected one stage, got {self.out_indices}")
        self.num_segments = num_segments
        self.is_shift = is_shift
        self.shift_div = shift_div
        if is_shift:
            self.stage0 = TemporalShift(self.stage0, num_segments, shift_div)
            for stage_name in self.stages:
                blocks = [TemporalShift(b, num_segments, shift_div) for b in getattr(self, stage_name).children()]
                setattr(self, stage_name, nn.Sequential(*blocks))

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        """The feature map of the one stage in ``out_indices``."""
        return super().forward(x)[0]
