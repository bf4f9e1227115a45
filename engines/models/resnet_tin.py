"""MMAction2's ``ResNetTIN``: ResNet with temporal interlace modules (TIN, Shao et al. 2020).

Every block's ``conv1.conv`` becomes ``CombineNet(net1=TemporalInterlace, net2=conv)`` (keys
``layer1.0.conv1.conv.net1.offset_net.fc1.weight``, ``...conv1.conv.net2.weight``), as in
MMAction2. The interlace takes the first ``C / shift_div`` channels, predicts per clip two
fractional temporal offsets in (-4, 4) (used as ``+o`` and ``-o``: four channel groups) and
per-frame weights in (0, 2), shifts each group by its offset with linear interpolation between
the two neighbouring integer shifts, and rescales.

**The shift.** MMAction2 shifts with mmcv's ``tin_shift`` op, which has only a CUDA kernel
(and mmcv-lite has no compiled ops at all), so MMAction2's own TIN cannot run on a CPU.
:func:`tin_shift` here is plain torch with the kernel's semantics: for clip ``n``, channel
``j`` in group ``g = j // (C / G)`` and shift ``s = shift[n, g]``,
``out[n, t + s, j] = in[n, t, j]`` where ``0 <= t + s < T``, and zero elsewhere. It is a
``gather`` along time, so it exports to ONNX. ``is_shift`` and ``temporal_pool`` are
accepted and, as in MMAction2's TIN, have no effect.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from engines.errors import ModelConfigError
from engines.models.registry import register
from engines.models.resnet_tsm import NL3DWrapper, ResNetTSM

#: Offset groups the offset net predicts (each used as +o and -o).
DEFORM_GROUPS = 2


def tin_shift(data: Tensor, shift: Tensor) -> Tensor:
    """mmcv's ``tin_shift``: shift channel groups along time by whole frames, zero-filled.

    Args:
        data: ``(N, T, C, HW)``.
        shift: ``(N, G)`` integer shifts, ``G`` dividing ``C``; group ``g`` is channels
            ``[g C/G, (g+1) C/G)``.

    Returns:
        ``(N, T, C, HW)`` with ``out[n, t + shift[n, g], c] = data[n, t, c]`` (zero where no
        frame lands).

    Raises:
        ValueError: If ``G`` does not divide ``C`` (mmcv's check).
    """
    n, t, c, hw = data.shape
    groups = shift.shape[1]
    if c % groups:
        raise ValueError(f"tin_shift: C ({c}) must be divisible by the shift groups ({groups})")
    frames = torch.arange(t, device=data.device).reshape(1, t, 1)
    source = frames - shift.long().reshape(-1, 1, groups)  # (N, T, G): the frame that lands on t
    valid = (source >= 0) & (source < t)
    grouped = data.reshape(n, t, groups, (c // groups) * hw)
    index = source.clamp(0, t - 1).unsqueeze(-1).expand(grouped.shape)
    out = torch.where(valid.unsqueeze(-1), torch.gather(grouped, 1, index), torch.zeros_like(grouped))
    return out.reshape(n, t, c, hw)


def linear_sampler(data: Tensor, offset: Tensor) -> Tensor:
    """Shift each channel group by a fractional offset: a blend of the two nearest whole shifts.

    Args:
        data: ``(N, T, C, H, W)``.
        offset: ``(N, G)`` offsets in frames.

    Returns:
        ``(N, T, C, H, W)``, MMAction2's ``linear_sampler`` arithmetic.
    """
    n, t, c, h, w = data.shape
    offset0 = torch.floor(offset)
    flat = data.reshape(n, t, c, h * w)
    data0 = tin_shift(flat, offset0)
    data1 = tin_shift(flat, offset0 + 1)
    weight0 = 1 - (offset - offset0)
    weight1 = 1 - weight0
    per_group = c // offset.shape[1]
    weight0 = weight0.repeat_interleave(per_group, dim=1)[:, None, :, None]
    weight1 = weight1.repeat_interleave(per_group, dim=1)[:, None, :, None]
    return (weight0 * data0 + weight1 * data1).reshape(n, t, c, h, w)


class WeightNet(nn.Module):
    """Per-frame weights in (0, 2): ``conv`` (Conv1d over time, one output per group), ``2 * sigmoid``."""

    def __init__(self, in_channels: int, groups: int) -> None:
        super().__init__()
        self.groups = groups
        self.sigmoid = nn.Sigmoid()
        self.conv = nn.Conv1d(in_channels, groups, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, T)`` -> ``(N, T, groups)``."""
        return 2 * self.sigmoid(self.conv(x).permute(0, 2, 1))


class OffsetNet(nn.Module):
    """Per-clip offsets in (-4, 4): ``conv`` (Conv1d to 1 channel), ``fc1``, ReLU, ``fc2``, ``4 * (sigmoid - 0.5)``."""

    def __init__(self, in_channels: int, groups: int, num_segments: int) -> None:
        super().__init__()
        self.sigmoid = nn.Sigmoid()
        self.conv = nn.Conv1d(in_channels, 1, 3, padding=1)
        self.fc1 = nn.Linear(num_segments, num_segments)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(num_segments, groups)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, T)`` -> ``(N, 1, groups)``."""
        n, _, t = x.shape
        x = self.fc2(self.relu(self.fc1(self.conv(x).reshape(n, t))))
        return 4 * (self.sigmoid(x.reshape(n, 1, -1)) - 0.5)


class TemporalInterlace(nn.Module):
    """TIN's temporal interlace of the first ``in_channels // shift_div`` channels (``offset_net``, ``weight_net``).

    Args:
        in_channels: Channels of the input.
        num_segments: Frames per clip.
        shift_div: Inverse fraction of channels interlaced.

    Raises:
        ModelConfigError: If the interlaced channels are not a multiple of 4 (four offset groups).
    """

    def __init__(self, in_channels: int, num_segments: int = 3, shift_div: int = 1) -> None:
        super().__init__()
        folds = in_channels // shift_div
        if folds % (2 * DEFORM_GROUPS) or folds == 0:
            raise ModelConfigError(
                f"ResNetTIN: {in_channels} channels / shift_div={shift_div} = {folds} interlaced channels; "
                f"need a positive multiple of {2 * DEFORM_GROUPS}"
            )
        self.num_segments = num_segments
        self.shift_div = shift_div
        self.in_channels = in_channels
        self.deform_groups = DEFORM_GROUPS
        self.offset_net = OffsetNet(folds, DEFORM_GROUPS, num_segments)
        self.weight_net = WeightNet(folds, DEFORM_GROUPS)

    def forward(self, x: Tensor) -> Tensor:
        """``(clips * num_segments, C, H, W)`` -> same shape."""
        n, c, h, w = x.shape
        folds = c // self.shift_div
        descriptor = x[:, :folds].reshape(-1, self.num_segments, folds, h, w)
        pooled = descriptor.mean(3).mean(3).permute(0, 2, 1)  # (clips, folds, T)
        offset = self.offset_net(pooled).reshape(pooled.shape[0], -1)
        offset = torch.cat([offset, -offset], 1)  # (clips, 4)
        shifted = linear_sampler(descriptor, offset)
        weight = self.weight_net(pooled)[:, :, :, None].repeat(1, 1, 2, folds // 2 // 2)
        weight = weight.reshape(weight.shape[0], weight.shape[1], -1)[:, :, :, None, None]
        shifted = (shifted * weight).reshape(n, folds, h, w)
        return torch.cat([shifted, x[:, folds:]], dim=1)


class CombineNet(nn.Module):
    """``net2(net1(x))``: the interlace (``net1``) in front of a block's first conv (``net2``)."""

    def __init__(self, net1: nn.Module, net2: nn.Module) -> None:
        super().__init__()
        self.net1 = net1
        self.net2 = net2

    def forward(self, x: Tensor) -> Tensor:
        return self.net2(self.net1(x))


@register()
class ResNetTIN(ResNetTSM):
    """ResNet with a temporal interlace before every block's first conv; input ``(clips * num_segments, C, H, W)``.

    Args:
        depth: 18, 34, 50, 101 or 152.
        is_tin: Insert the interlace modules.
        **kwargs: :class:`~engines.models.resnet_tsm.ResNetTSM` arguments (``num_segments``,
            ``shift_div``, ``non_local``...); ``is_shift`` and ``temporal_pool`` have no
            effect, as in MMAction2.

    Raises:
        ModelConfigError: For bad ResNet/TSM settings or channel counts the interlace cannot split.
    """

    def __init__(self, depth: int, is_tin: bool = True, **kwargs: Any) -> None:
        kwargs["is_shift"] = False  # MMAction2's TIN builds no shift and no temporal pool
        kwargs["temporal_pool"] = False
        super().__init__(depth, **kwargs)
        self.is_tin = is_tin
        if is_tin:
            for i in range(self.num_stages):
                for wrapped in getattr(self, f"layer{i + 1}").children():
                    block = wrapped.block if isinstance(wrapped, NL3DWrapper) else wrapped
                    conv1 = block.get_submodule("conv1")
                    conv = conv1.get_submodule("conv")
                    assert isinstance(conv, nn.Conv2d)
                    interlace = TemporalInterlace(conv.in_channels, self.num_segments, self.shift_div)
                    conv1.conv = CombineNet(interlace, conv)
