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

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from engines.errors import ModelConfigError
from engines.models.layers import build_non_local
from engines.models.registry import register
from engines.models.resnet import Bottleneck, ResNet


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
        fold = c // shift_div
        if fold == 0:  # fewer channels than shift_div (e.g. a shift before an RGB stem): nothing moves
            return x
        x5 = x.reshape(-1, num_segments, c, h, w)
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


class NL3DWrapper(nn.Module):
    """A residual block followed by a :class:`~engines.models.layers.NonLocal3d` over ``(clip, C, T, H, W)``.

    Args:
        block: The wrapped residual block.
        num_segments: Frames per clip.
        non_local_cfg: :class:`~engines.models.layers.NonLocal3d` arguments.
        channels: Output channels of ``block``.
    """

    def __init__(self, block: nn.Module, num_segments: int, non_local_cfg: Mapping[str, Any], channels: int) -> None:
        super().__init__()
        self.block = block
        self.num_segments = num_segments
        self.non_local_block = build_non_local(channels, non_local_cfg)

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
        non_local_cfg: :class:`~engines.models.layers.NonLocal3d` arguments; empty means no non-local blocks.
        shift_div: Inverse fraction of channels shifted each way.
        shift_place: ``'blockres'`` (shift inside the residual branch) or ``'block'``.
        temporal_pool: Halve the frames before ``layer2``.
        pretrained2d: Ignored (weights come from whole-model checkpoints).
        **kwargs: :class:`~engines.models.resnet.ResNet` arguments.

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
        **kwargs: Any,
    ) -> None:
        super().__init__(depth, **kwargs)
        if not isinstance(num_segments, int) or num_segments <= 0:
            raise ModelConfigError(f"ResNetTSM.num_segments: expected a positive int, got {num_segments!r}")
        if not isinstance(shift_div, int) or shift_div <= 0:
            raise ModelConfigError(f"ResNetTSM.shift_div: expected a positive int, got {shift_div!r}")
        if (is_shift or temporal_pool) and self.num_stages != 4:
            raise ModelConfigError(f"ResNetTSM: shift and temporal_pool need num_stages=4, got {self.num_stages}")
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
