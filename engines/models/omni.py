"""OmniSource's image-and-video model of MMAction2 1.x: ``RecognizerOmni``, ``OmniResNet``, ``OmniHead``.

MMAction2 trains it on ImageNet images and Kinetics videos together
(``format_shape='MIX2d3d'``: the layout follows the input). Its test pipeline gives videos,
``(N, V, C, T, H, W)`` after ``FormatShape('NCTHW')``, and on a 5-D input every module takes
its 3D path, so this is what is implemented:

* :class:`OmniResNet`: a SlowOnly-like 3D ResNet-50 (stem ``(1, 7, 7)``, temporal kernel 1 in
  stages 1-2 and 3 in stages 3-4 on each bottleneck's ``conv1``, no temporal stride) with bare
  ``nn.Conv3d``/``nn.BatchNorm3d`` children (keys ``conv1.weight``, ``bn1.*``,
  ``layer3.0.downsample.0.weight``, ...), as MMAction2;
* :class:`OmniHead`: the video classifier ``fc3d`` (pool, Linear, BN, ReLU, Linear with
  ``video_nl_head``; else pool, BN, Linear); the image classifier ``fc2d`` is built so
  checkpoints load strictly, and unused;
* :class:`RecognizerOmni`: a :class:`~engines.models.recognizers.Recognizer3D` over them.

Image input (4-D, MMAction2's 2D path) is refused with an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from engines.clip_spec import MIXED_FORMAT
from engines.errors import InputShapeError, ModelConfigError
from engines.models.heads import BaseHead
from engines.models.recognizers import Recognizer3D
from engines.models.registry import register

_BN_MOMENTUM = 0.01


def _video_only(x: Tensor, what: str) -> None:
    if x.dim() != 5:
        raise InputShapeError(
            f"{what} takes video clips (N, C, T, H, W); got shape {tuple(x.shape)} "
            "(MMAction2's image path of OmniSource models is not supported)"
        )


class OmniBottleNeck(nn.Module):
    """Bottleneck of :class:`OmniResNet` (MMAction2's ``BottleNeck`` in ``resnet_omni``).

    Args:
        inplanes: Input channels.
        planes: Bottleneck width; the output has ``planes * 4`` channels.
        temporal_kernel: 1 or 3, the temporal kernel of ``conv1``.
        spatial_stride: Spatial stride of ``conv2`` (and of the projection shortcut).
    """

    def __init__(self, inplanes: int, planes: int, temporal_kernel: int = 3, spatial_stride: int = 1) -> None:
        super().__init__()
        if temporal_kernel not in (1, 3):
            raise ModelConfigError(f"OmniResNet: temporal_kernel must be 1 or 3, got {temporal_kernel}")
        self.conv1 = nn.Conv3d(
            inplanes, planes, (temporal_kernel, 1, 1), padding=(temporal_kernel // 2, 0, 0), bias=False
        )
        self.conv2 = nn.Conv3d(
            planes, planes, (1, 3, 3), stride=(1, spatial_stride, spatial_stride), padding=(0, 1, 1), bias=False
        )
        self.conv3 = nn.Conv3d(planes, planes * 4, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes, momentum=_BN_MOMENTUM)
        self.bn2 = nn.BatchNorm3d(planes, momentum=_BN_MOMENTUM)
        self.bn3 = nn.BatchNorm3d(planes * 4, momentum=_BN_MOMENTUM)
        self.downsample: nn.Sequential | None = None
        if inplanes != planes * 4 or spatial_stride != 1:
            self.downsample = nn.Sequential(
                nn.Conv3d(inplanes, planes * 4, 1, stride=(1, spatial_stride, spatial_stride), bias=False),
                nn.BatchNorm3d(planes * 4, momentum=_BN_MOMENTUM),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out)).relu()
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return (out + identity).relu()


@register()
class OmniResNet(nn.Module):
    """Omni-ResNet's video path: input ``(N, 3, T, H, W)``, output ``(N, 2048, T, H/32, W/32)``.

    Args:
        layers: Blocks per stage.
        pretrain_2d: Training only (2D ImageNet weights inflated at build time); ignored.
        init_cfg: Ignored.

    Raises:
        ModelConfigError: If ``layers`` does not have four positive entries.
    """

    def __init__(
        self, layers: Sequence[int] = (3, 4, 6, 3), pretrain_2d: str | None = None, init_cfg: Any = None
    ) -> None:
        super().__init__()
        layers = tuple(layers)
        if len(layers) != 4 or not all(isinstance(n, int) and n > 0 for n in layers):
            raise ModelConfigError(f"OmniResNet.layers: expected 4 positive block counts, got {layers!r}")
        self.conv1 = nn.Conv3d(3, 64, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(64, momentum=_BN_MOMENTUM)
        self.pool3d = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        self.pool2d = nn.MaxPool2d(3, 2, 1)  # the image path's; kept for the module layout
        inplanes = 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            temporal_kernel = 1 if i < 2 else 3
            stride = 1 if i == 0 else 2
            stage = [OmniBottleNeck(inplanes, planes, temporal_kernel, stride)]
            inplanes = planes * 4
            stage += [OmniBottleNeck(inplanes, planes, temporal_kernel) for _ in range(1, blocks)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.feat_dim = 2048

    def forward(self, x: Tensor) -> Tensor:
        """Features of the last stage for clips ``(N, C, T, H, W)``.

        Raises:
            InputShapeError: For a 4-D (image) input.
        """
        _video_only(x, "OmniResNet")
        x = self.pool3d(self.bn1(self.conv1(x)).relu())
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return x


@register()
class OmniHead(BaseHead):
    """OmniSource head: ``fc3d`` scores videos (``video_classes``); ``fc2d`` (images) is kept for the keys.

    ``num_classes`` is ``video_classes`` here (MMAction2 sets it to ``image_classes``, which
    only matters for training).

    Args:
        image_classes: Classes of the image head.
        video_classes: Classes of the video head.
        in_channels: Channels of the backbone feature.
        loss_cls: Ignored (training only).
        image_dropout_ratio: Dropout of the image head (identity in eval).
        video_dropout_ratio: Dropout of the video head (identity in eval).
        video_nl_head: Non-linear video head (Linear, BN, ReLU, Linear) instead of BN, Linear.
        **kwargs: :class:`~engines.models.heads.BaseHead` arguments.
    """

    def __init__(
        self,
        image_classes: int,
        video_classes: int,
        in_channels: int,
        loss_cls: Mapping[str, Any] | None = None,
        image_dropout_ratio: float = 0.2,
        video_dropout_ratio: float = 0.5,
        video_nl_head: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(video_classes, in_channels, loss_cls=loss_cls, **kwargs)
        if not isinstance(image_classes, int) or image_classes <= 0:
            raise ModelConfigError(f"OmniHead.image_classes: expected a positive int, got {image_classes!r}")
        self.image_classes = image_classes
        self.fc2d = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.BatchNorm1d(in_channels),
            nn.Dropout(image_dropout_ratio),
            nn.Linear(in_channels, image_classes),
        )
        if video_nl_head:
            self.fc3d = nn.Sequential(
                nn.AdaptiveAvgPool3d(1),
                nn.Flatten(),
                nn.Linear(in_channels, video_classes * 2),
                nn.BatchNorm1d(video_classes * 2),
                nn.ReLU(inplace=True),
                nn.Dropout(video_dropout_ratio),
                nn.Linear(video_classes * 2, video_classes),
            )
        else:
            self.fc3d = nn.Sequential(
                nn.AdaptiveAvgPool3d(1),
                nn.Flatten(),
                nn.BatchNorm1d(in_channels),
                nn.Dropout(video_dropout_ratio),
                nn.Linear(in_channels, video_classes),
            )

    def forward(self, x: Tensor, num_segs: int = 1) -> Tensor:
        """Video scores ``(N, video_classes)`` from features ``(N, C, T, H, W)``.

        Raises:
            InputShapeError: For a 4-D (image) feature.
        """
        _video_only(x, "OmniHead")
        return self.fc3d(x)


@register()
class RecognizerOmni(Recognizer3D):
    """MMAction2's ``RecognizerOmni`` on videos: a :class:`~engines.models.recognizers.Recognizer3D`.

    The data preprocessor's ``format_shape`` may be ``'MIX2d3d'`` (read as ``'NCTHW'``: the
    clips are videos). Arguments are those of :class:`~engines.models.recognizers.BaseRecognizer`.
    """

    def _read_preprocessor(self, cfg: Mapping[str, Any] | None) -> None:
        cfg = dict(cfg or {"type": "ActionDataPreprocessor"})
        if cfg.get("format_shape") == MIXED_FORMAT:
            cfg["format_shape"] = self.input_format
        super()._read_preprocessor(cfg)
