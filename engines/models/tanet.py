"""TANet of MMAction2 1.x: a 2D ResNet whose bottlenecks carry a temporal adaptive module (TAM).

"TAM: Temporal Adaptive Module for Video Recognition" (Liu et al. 2021). Every bottleneck
of every stage becomes a :class:`TABlock` (keys ``layerI.J.block.*`` for the original block,
``layerI.J.tam.*`` for the module), the TAM sitting between ``conv1`` and ``conv2``.

:class:`TAM` per channel: a local branch ``L`` (Conv1d over time on the spatially pooled
feature, sigmoid) rescales the frames; a global branch ``G`` (MLP over the pooled temporal
profile, softmax) gives a ``K``-tap kernel that is convolved along time. MMAction2 runs
that convolution as ``F.conv2d`` with ``groups = batch × channels``, which bakes the batch
size into an exported graph; here it is the same sum written as ``K`` shifted
multiply-adds, so the batch stays dynamic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from engines.errors import InputShapeError, ModelConfigError
from engines.models.registry import register
from engines.models.resnet import Bottleneck, ResNet

_TAM_KEYS = (
    "alpha",
    "adaptive_kernel_size",
    "beta",
    "conv1d_kernel_size",
    "adaptive_convolution_stride",
    "adaptive_convolution_padding",
    "init_std",
)


class TAM(nn.Module):
    """Temporal adaptive module with MMAction2's names: ``G`` (global branch) and ``L`` (local branch).

    Args:
        in_channels: Channels of the feature.
        num_segments: Frames per clip.
        alpha: ``G``'s hidden width is ``num_segments * alpha``.
        adaptive_kernel_size: Taps ``K`` of the temporal kernel that ``G`` predicts.
        beta: ``L``'s hidden width is ``in_channels // beta``.
        conv1d_kernel_size: Temporal kernel of ``L``'s first Conv1d.
        adaptive_convolution_stride: Temporal stride of the adaptive convolution.
        adaptive_convolution_padding: Temporal zero padding of the adaptive convolution.
        init_std: Training only; ignored.

    Raises:
        ModelConfigError: For non-positive sizes, or a stride/padding that changes the frame
            count (MMAction2 then fails reshaping the output).
    """

    def __init__(
        self,
        in_channels: int,
        num_segments: int,
        alpha: int = 2,
        adaptive_kernel_size: int = 3,
        beta: int = 4,
        conv1d_kernel_size: int = 3,
        adaptive_convolution_stride: int = 1,
        adaptive_convolution_padding: int = 1,
        init_std: float = 0.001,
    ) -> None:
        super().__init__()
        if alpha <= 0 or beta <= 0:
            raise ModelConfigError(f"tam_cfg: alpha and beta must be positive, got alpha={alpha}, beta={beta}")
        frames_out = (
            num_segments + 2 * adaptive_convolution_padding - adaptive_kernel_size
        ) // adaptive_convolution_stride + 1
        if frames_out != num_segments:
            raise ModelConfigError(
                f"tam_cfg: adaptive_kernel_size={adaptive_kernel_size}, adaptive_convolution_stride="
                f"{adaptive_convolution_stride}, adaptive_convolution_padding={adaptive_convolution_padding} turn "
                f"{num_segments} frames into {frames_out}; the TAM must keep the frame count"
            )
        self.in_channels = in_channels
        self.num_segments = num_segments
        self.kernel_size = adaptive_kernel_size
        self.stride = adaptive_convolution_stride
        self.padding = adaptive_convolution_padding
        self.G = nn.Sequential(
            nn.Linear(num_segments, num_segments * alpha, bias=False),
            nn.BatchNorm1d(num_segments * alpha),
            nn.ReLU(inplace=True),
            nn.Linear(num_segments * alpha, adaptive_kernel_size, bias=False),
            nn.Softmax(-1),
        )
        self.L = nn.Sequential(
            nn.Conv1d(
                in_channels,
                in_channels // beta,
                conv1d_kernel_size,
                stride=1,
                padding=conv1d_kernel_size // 2,
                bias=False,
            ),
            nn.BatchNorm1d(in_channels // beta),
            nn.ReLU(inplace=True),
            nn.Conv1d(in_channels // beta, in_channels, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``(N*T, C, H, W)`` -> same shape, ``T = num_segments`` consecutive frames per clip.

        Raises:
            InputShapeError: If the channels differ from ``in_channels``.
        """
        n, c, h, w = x.shape
        t = self.num_segments
        if c != self.in_channels:
            raise InputShapeError(f"TAM expects {self.in_channels} channels, got {c}")
        x = x.reshape(-1, t, c, h, w).permute(0, 2, 1, 3, 4)  # (B, C, T, H, W)
        theta = x.mean(dim=(3, 4))  # (B, C, T): adaptive_avg_pool2d to 1x1
        kernel = self.G(theta.reshape(-1, t)).reshape(-1, c, self.kernel_size, 1)  # (B, C, K, 1)
        local = self.L(theta).unsqueeze(-1).unsqueeze(-1)  # (B, C, T, 1, 1)
        frames = (x * local).flatten(3)  # (B, C, T, H*W)
        padded = F.pad(frames, (0, 0, self.padding, self.padding))
        span = self.stride * (t - 1) + 1
        y = kernel[:, :, 0:1] * padded[:, :, 0 : span : self.stride]
        for k in range(1, self.kernel_size):  # the grouped conv of MMAction2, tap by tap
            y = y + kernel[:, :, k : k + 1] * padded[:, :, k : k + span : self.stride]
        return y.reshape(-1, c, t, h, w).permute(0, 2, 1, 3, 4).reshape(n, c, h, w)


class TABlock(nn.Module):
    """A :class:`~engines.models.resnet.Bottleneck` (``block``) with a :class:`TAM` (``tam``) after its ``conv1``.

    Args:
        block: The bottleneck.
        num_segments: Frames per clip.
        tam_cfg: Keyword arguments of :class:`TAM`.
    """

    def __init__(self, block: Bottleneck, num_segments: int, tam_cfg: Mapping[str, Any]) -> None:
        super().__init__()
        self.block = block
        self.num_segments = num_segments
        conv1 = block.conv1.conv
        assert isinstance(conv1, nn.Conv2d)  # a 2D ResNet block
        self.tam = TAM(conv1.out_channels, num_segments, **tam_cfg)

    def forward(self, x: Tensor) -> Tensor:
        block = self.block
        out = block.conv3(block.conv2(self.tam(block.conv1(x))))
        identity = x if block.downsample is None else block.downsample(x)
        return block.relu(out + identity)


@register()
class TANet(ResNet):
    """TANet: :class:`~engines.models.resnet.ResNet` (depth 50, 101 or 152) with every block a :class:`TABlock`.

    Input ``(N*num_segments, C, H, W)``, frames of a clip consecutive.

    Args:
        depth: 50, 101 or 152 (TA-blocks need bottlenecks, as in MMAction2).
        num_segments: Frames per clip (at least 3).
        tam_cfg: Keyword arguments of :class:`TAM`, or ``None``.
        **kwargs: :class:`~engines.models.resnet.ResNet` arguments.

    Raises:
        ModelConfigError: For a depth without bottlenecks, too few segments, or a bad ``tam_cfg``.
    """

    def __init__(self, depth: int, num_segments: int, tam_cfg: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(depth, **kwargs)
        if self.block is not Bottleneck:
            raise ModelConfigError(f"TANet.depth: TA-blocks need bottleneck blocks (depth 50, 101 or 152), got {depth}")
        if not isinstance(num_segments, int) or num_segments < 3:
            raise ModelConfigError(f"TANet.num_segments: expected an int >= 3, got {num_segments!r}")
        tam_cfg = dict(tam_cfg or {})
        unknown = sorted(set(tam_cfg) - set(_TAM_KEYS))
        if unknown:
            raise ModelConfigError(f"TANet.tam_cfg: unknown key(s) {unknown}; valid keys: {', '.join(_TAM_KEYS)}")
        self.num_segments = num_segments
        self.tam_cfg = tam_cfg
        for name in self.res_layers:
            stage = getattr(self, name)
            blocks = [TABlock(block, num_segments, tam_cfg) for block in stage.children()]
            setattr(self, name, nn.Sequential(*blocks))

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:
        """Features of the stages in ``out_indices``.

        Raises:
            InputShapeError: If the frame count is not a multiple of ``num_segments``.
        """
        if x.shape[0] % self.num_segments:
            raise InputShapeError(
                f"TANet expects a multiple of num_segments={self.num_segments} frames, got {x.shape[0]}"
            )
        return super().forward(x)
