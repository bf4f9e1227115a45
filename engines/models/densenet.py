"""torchvision's DenseNets (MMAction2's ``'torchvision.densenet161'`` backbone type), with torchvision's names.

torchvision is not a dependency: the layout follows torchvision's ``models/densenet.py``.
Keys: ``features.conv0.weight``, ``features.norm0.*``,
``features.denseblock1.denselayer1.{norm1,conv1,norm2,conv2}.*``,
``features.transition1.{norm,conv}.*``, ``features.norm5.*``. As MMAction2 does, the
classifier is an ``nn.Identity`` (so checkpoints hold no ``classifier`` keys) and the
recognizer reads :attr:`DenseNet.features` (ending at ``norm5``, before torchvision's final
ReLU) and average-pools it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engines.errors import ModelConfigError
from engines.models.registry import register


class _DenseLayer(nn.Module):
    """BN-ReLU-1×1 conv (``bn_size * growth_rate``), BN-ReLU-3×3 conv (``growth_rate``) on the concatenated inputs."""

    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)

    def forward(self, features: list[Tensor]) -> Tensor:
        x = self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))
        return self.conv2(self.relu2(self.norm2(x)))


class _DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers (``denselayer1``...), each fed every earlier output."""

    def __init__(self, num_layers: int, num_input_features: int, bn_size: int, growth_rate: int) -> None:
        super().__init__()
        for i in range(num_layers):
            self.add_module(
                f"denselayer{i + 1}", _DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size)
            )

    def forward(self, init_features: Tensor) -> Tensor:
        features = [init_features]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class _Transition(nn.Sequential):
    """BN, ReLU, 1×1 conv, 2×2 average pool (children ``norm``, ``relu``, ``conv``, ``pool``)."""

    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(num_input_features))
        self.add_module("relu", nn.ReLU())
        self.add_module("conv", nn.Conv2d(num_input_features, num_output_features, 1, bias=False))
        self.add_module("pool", nn.AvgPool2d(kernel_size=2, stride=2))


class DenseNet(nn.Module):
    """torchvision's DenseNet-BC with its classifier replaced by ``nn.Identity`` (as MMAction2 does).

    Args:
        growth_rate: Channels each dense layer adds.
        block_config: Dense layers per block.
        num_init_features: Channels of the stem conv.
        bn_size: Bottleneck width as a multiple of ``growth_rate``.
        drop_rate: Dropout after each dense layer (identity at inference).
        num_classes: Ignored (MMAction2 drops the classifier).
        memory_efficient: Training only; accepted and ignored.
        weights: Ignored (weights come from whole-model checkpoints).
        progress: Ignored.
        pretrained: Ignored (torchvision's legacy name for ``weights``).

    Raises:
        ModelConfigError: For non-positive sizes.
    """

    def __init__(
        self,
        growth_rate: int = 32,
        block_config: Sequence[int] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int = 4,
        drop_rate: float = 0.0,
        num_classes: int = 1000,
        memory_efficient: bool = False,
        weights: Any = None,
        progress: bool = True,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if min(growth_rate, num_init_features, bn_size, *block_config) <= 0:
            raise ModelConfigError(f"{name}: growth_rate, block_config, num_init_features and bn_size must be positive")
        self.features = nn.Sequential()
        self.features.add_module("conv0", nn.Conv2d(3, num_init_features, 7, stride=2, padding=3, bias=False))
        self.features.add_module("norm0", nn.BatchNorm2d(num_init_features))
        self.features.add_module("relu0", nn.ReLU())
        self.features.add_module("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}", _DenseBlock(num_layers, channels, bn_size, growth_rate))
            channels += num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", _Transition(channels, channels // 2))
                channels //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.feat_dim = channels
        self.classifier = nn.Identity()
        self.fc = nn.Identity()  # MMAction2 sets both attributes

    def forward(self, x: Tensor) -> Tensor:
        """torchvision's forward: features, ReLU, global average pool, (identity) classifier."""
        out = F.relu(self.features(x))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(out, (1, 1)), 1))


def _densenet(growth_rate: int, block_config: tuple[int, ...], num_init_features: int) -> type[DenseNet]:
    class _Arch(DenseNet):
        def __init__(self, **kwargs: Any) -> None:
            for key in ("growth_rate", "block_config", "num_init_features"):
                if key in kwargs:
                    raise ModelConfigError(f"{type(self).__name__}: {key} is fixed by the architecture; remove it")
            super().__init__(growth_rate, block_config, num_init_features, **kwargs)

    return _Arch


@register("torchvision.densenet121")
class DenseNet121(_densenet(32, (6, 12, 24, 16), 64)):  # type: ignore[misc]
    """torchvision's ``densenet121`` (growth 32, blocks 6-12-24-16, 64 stem channels)."""


@register("torchvision.densenet161")
class DenseNet161(_densenet(48, (6, 12, 36, 24), 96)):  # type: ignore[misc]
    """torchvision's ``densenet161`` (growth 48, blocks 6-12-36-24, 96 stem channels)."""


@register("torchvision.densenet169")
class DenseNet169(_densenet(32, (6, 12, 32, 32), 64)):  # type: ignore[misc]
    """torchvision's ``densenet169`` (growth 32, blocks 6-12-32-32, 64 stem channels)."""


@register("torchvision.densenet201")
class DenseNet201(_densenet(32, (6, 12, 48, 32), 64)):  # type: ignore[misc]
    """torchvision's ``densenet201`` (growth 32, blocks 6-12-48-32, 64 stem channels)."""
