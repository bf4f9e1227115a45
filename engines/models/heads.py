"""Classification heads with MMAction2 1.x names, arguments and eval-time arithmetic.

Every head turns backbone features into raw class scores, one row per *clip*
(a clip is whatever the head scores on its own: a TSN sample after segment
consensus, a TSM group of ``num_segments`` frames, a 3D view). The recognizer
then folds the clips of each sample together with :func:`average_clip`, as
MMAction2's ``BaseHead.predict_by_feat`` does.

Training-only arguments (``loss_cls``, ``init_std``, ``label_smooth_eps``,
``multi_class``, ``topk``, ``init_cfg``) are accepted so MMAction2 configs build
unchanged, and ignored. Submodule names (``fc_cls``, ``fc1``, ``fc2``) match
MMAction2, so ``cls_head.*`` checkpoint keys load as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engines.errors import InputShapeError, ModelConfigError
from engines.models.registry import register

AVERAGE_CLIPS = (None, "score", "prob")


def average_clip(cls_scores: Tensor, num_segs: int, average_clips: str | None) -> Tensor:
    """Fold the per-clip scores of each sample together, as MMAction2's ``BaseHead.average_clip``.

    Args:
        cls_scores: Scores of shape ``(N * num_segs, num_classes)``.
        num_segs: Clips per sample (a Python int, so the graph stays static).
        average_clips: ``'score'`` averages the raw scores, ``'prob'`` averages the
            softmax probabilities, ``None`` keeps every clip.

    Returns:
        ``(N, num_classes)`` for ``'score'``/``'prob'``; ``(N, num_segs, num_classes)``
        for ``None`` (MMAction2 does not average in that case).

    Raises:
        ModelConfigError: If ``average_clips`` is not one of ``None``, ``'score'``, ``'prob'``.
    """
    if average_clips not in AVERAGE_CLIPS:
        raise ModelConfigError(f"average_clips: expected one of {AVERAGE_CLIPS}, got {average_clips!r}")
    scores = cls_scores.reshape((-1, num_segs, *cls_scores.shape[1:]))
    if average_clips == "prob":
        return F.softmax(scores, dim=2).mean(dim=1)
    if average_clips == "score":
        return scores.mean(dim=1)
    return scores


class AvgConsensus(nn.Module):
    """Mean over one dimension, keeping it (MMAction2's ``AvgConsensus``)."""

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=self.dim, keepdim=True)


def _build_consensus(consensus: Mapping[str, Any] | None, where: str) -> AvgConsensus:
    if consensus is None:
        consensus = {"type": "AvgConsensus", "dim": 1}
    if not isinstance(consensus, Mapping) or consensus.get("type") != "AvgConsensus":
        # MMAction2 leaves the consensus unset for other types and then fails at forward time.
        raise ModelConfigError(f"{where}.consensus: only type 'AvgConsensus' is supported, got {consensus!r}")
    extra = sorted(set(consensus) - {"type", "dim"})
    if extra:
        raise ModelConfigError(f"{where}.consensus: unknown key(s) {extra}; valid keys: dim")
    return AvgConsensus(dim=int(consensus.get("dim", 1)))


def clips_of_segments(num_views: int, num_segments: int, family: str) -> int:
    """Clips in a sample of ``num_views`` frames for a head that folds ``num_segments`` per clip.

    Raises:
        InputShapeError: If ``num_views`` is not a multiple of ``num_segments``.
    """
    if num_views % num_segments:
        raise InputShapeError(
            f"{family} expects the views per sample to be a multiple of num_segments={num_segments}, got {num_views}"
        )
    return num_views // num_segments


class BaseHead(nn.Module):
    """Shared arguments and clip averaging of every head.

    Args:
        num_classes: Number of classes.
        in_channels: Channels of the input feature.
        loss_cls: Ignored (training only).
        multi_class: Ignored (training only).
        label_smooth_eps: Ignored (training only).
        topk: Ignored (training only).
        average_clips: How clips of one sample are folded: ``None``, ``'score'`` or ``'prob'``.
        init_cfg: Ignored (weights come from checkpoints).

    Raises:
        ModelConfigError: If ``average_clips`` or a size is invalid.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        *,
        loss_cls: Mapping[str, Any] | None = None,
        multi_class: bool = False,
        label_smooth_eps: float = 0.0,
        topk: int | Sequence[int] = (1, 5),
        average_clips: str | None = None,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if not isinstance(num_classes, int) or num_classes <= 0:
            raise ModelConfigError(f"{name}.num_classes: expected a positive int, got {num_classes!r}")
        if not isinstance(in_channels, int) or in_channels <= 0:
            raise ModelConfigError(f"{name}.in_channels: expected a positive int, got {in_channels!r}")
        if average_clips not in AVERAGE_CLIPS:
            raise ModelConfigError(f"{name}.average_clips: expected one of {AVERAGE_CLIPS}, got {average_clips!r}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.average_clips = average_clips

    def clips_per_sample(self, num_views: int) -> int:
        """Rows of :meth:`forward`'s output per sample, for ``num_views`` input views per sample.

        Raises:
            InputShapeError: If ``num_views`` does not fit the head.
        """
        return num_views

    def average_clip(self, cls_scores: Tensor, num_segs: int = 1) -> Tensor:
        """Fold ``num_segs`` clip scores per sample with this head's ``average_clips``."""
        return average_clip(cls_scores, num_segs, self.average_clips)


def _make_dropout(dropout_ratio: float) -> nn.Dropout | None:
    return nn.Dropout(p=dropout_ratio) if dropout_ratio != 0 else None


@register()
class TSNHead(BaseHead):
    """TSN head: spatial average, segment consensus, dropout, ``fc_cls``.

    Args:
        num_classes: Number of classes.
        in_channels: Channels of the input feature.
        spatial_type: ``'avg'`` pools H×W; anything else expects pooled features.
        consensus: ``dict(type='AvgConsensus', dim=1)`` (the only supported type).
        dropout_ratio: Dropout before ``fc_cls`` (identity in eval).
        init_std: Ignored (training only).
        **kwargs: :class:`BaseHead` arguments.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        spatial_type: str = "avg",
        consensus: Mapping[str, Any] | None = None,
        dropout_ratio: float = 0.4,
        init_std: float = 0.01,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, in_channels, **kwargs)
        self.spatial_type = spatial_type
        self.dropout_ratio = dropout_ratio
        self.consensus = _build_consensus(consensus, "TSNHead")
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1)) if spatial_type == "avg" else None
        self.dropout = _make_dropout(dropout_ratio)
        self.fc_cls = nn.Linear(in_channels, num_classes)

    def clips_per_sample(self, num_views: int) -> int:
        return 1  # the consensus folds all views of a sample into one row

    def forward(self, x: Tensor, num_segs: int = 1) -> Tensor:
        """Scores ``(N, num_classes)`` from features ``(N * num_segs, C, H, W)``."""
        if self.avg_pool is not None:
            x = self.avg_pool(x)
        x = x.reshape((-1, num_segs, *x.shape[1:]))
        x = self.consensus(x).squeeze(1)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc_cls(x.flatten(1))


@register()
class TSMHead(BaseHead):
    """TSM head: spatial average, dropout, ``fc_cls``, then consensus over each group of segments.

    Args:
        num_classes: Number of classes.
        in_channels: Channels of the input feature.
        num_segments: Frames per clip (the backbone's ``num_segments``).
        spatial_type: ``'avg'`` pools H×W; anything else expects pooled features.
        consensus: ``dict(type='AvgConsensus', dim=1)`` (the only supported type).
        dropout_ratio: Dropout before ``fc_cls`` (identity in eval).
        init_std: Ignored (training only).
        is_shift: With ``temporal_pool``, the backbone halved the segments.
        temporal_pool: See ``is_shift``.
        **kwargs: :class:`BaseHead` arguments.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        num_segments: int = 8,
        spatial_type: str = "avg",
        consensus: Mapping[str, Any] | None = None,
        dropout_ratio: float = 0.8,
        init_std: float = 0.001,
        is_shift: bool = True,
        temporal_pool: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, in_channels, **kwargs)
        if not isinstance(num_segments, int) or num_segments <= 0:
            raise ModelConfigError(f"TSMHead.num_segments: expected a positive int, got {num_segments!r}")
        self.num_segments = num_segments
        self.spatial_type = spatial_type
        self.dropout_ratio = dropout_ratio
        self.is_shift = is_shift
        self.temporal_pool = temporal_pool
        # Rows per clip that reach the consensus (the backbone halves them with temporal pooling).
        self.segments_out = num_segments // 2 if is_shift and temporal_pool else num_segments
        if self.segments_out <= 0:
            raise ModelConfigError(f"TSMHead: num_segments={num_segments} is too small for temporal_pool")
        self.consensus = _build_consensus(consensus, "TSMHead")
        self.dropout = _make_dropout(dropout_ratio)
        self.fc_cls = nn.Linear(in_channels, num_classes)
        self.avg_pool = nn.AdaptiveAvgPool2d(1) if spatial_type == "avg" else None

    def clips_per_sample(self, num_views: int) -> int:
        return clips_of_segments(num_views, self.num_segments, "TSM")

    def forward(self, x: Tensor, num_segs: int = 1) -> Tensor:
        """Scores ``(N * clips, num_classes)``; ``num_segs`` is unused, as in MMAction2."""
        if self.avg_pool is not None:
            x = self.avg_pool(x)
        x = torch.flatten(x, 1)
        if self.dropout is not None:
            x = self.dropout(x)
        scores = self.fc_cls(x)
        scores = scores.reshape((-1, self.segments_out, *scores.shape[1:]))
        return self.consensus(scores).squeeze(1)


class _Head3D(BaseHead):
    """Shared constructor of the 3D heads: 3D pooling, dropout, ``fc_cls``."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        spatial_type: str,
        dropout_ratio: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, in_channels, **kwargs)
        self.spatial_type = spatial_type
        self.dropout_ratio = dropout_ratio
        self.dropout = _make_dropout(dropout_ratio)
        self.fc_cls = nn.Linear(in_channels, num_classes)
        self.avg_pool = nn.AdaptiveAvgPool3d((1, 1, 1)) if spatial_type == "avg" else None


@register()
class I3DHead(_Head3D):
    """I3D head: 3D average pooling, dropout, ``fc_cls``; one row per view.

    Args:
        num_classes: Number of classes.
        in_channels: Channels of the input feature.
        spatial_type: ``'avg'`` pools T×H×W; anything else expects pooled features.
        dropout_ratio: Dropout before ``fc_cls`` (identity in eval).
        init_std: Ignored (training only).
        **kwargs: :class:`BaseHead` arguments.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        spatial_type: str = "avg",
        dropout_ratio: float = 0.5,
        init_std: float = 0.01,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, in_channels, spatial_type, dropout_ratio, **kwargs)

    def forward(self, x: Tensor, num_segs: int = 1) -> Tensor:
        """Scores ``(N, num_classes)`` from features ``(N, C, T, H, W)``."""
        if self.avg_pool is not None:
            x = self.avg_pool(x)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc_cls(x.flatten(1))


@register()
class SlowFastHead(_Head3D):
    """SlowFast head: pools both pathways, concatenates ``(fast, slow)``, dropout, ``fc_cls``.

    Args:
        num_classes: Number of classes.
        in_channels: Slow plus fast channels.
        spatial_type: ``'avg'`` (MMAction2 pools unconditionally; other values are rejected).
        dropout_ratio: Dropout before ``fc_cls`` (identity in eval).
        init_std: Ignored (training only).
        **kwargs: :class:`BaseHead` arguments.

    Raises:
        ModelConfigError: If ``spatial_type`` is not ``'avg'``.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        spatial_type: str = "avg",
        dropout_ratio: float = 0.8,
        init_std: float = 0.01,
        **kwargs: Any,
    ) -> None:
        if spatial_type != "avg":
            raise ModelConfigError(f"SlowFastHead.spatial_type: only 'avg' works, got {spatial_type!r}")
        super().__init__(num_classes, in_channels, spatial_type, dropout_ratio, **kwargs)

    def forward(self, x: tuple[Tensor, Tensor], num_segs: int = 1) -> Tensor:
        """Scores ``(N, num_classes)`` from ``(slow, fast)`` features, each ``(N, C_i, T_i, H, W)``."""
        x_slow, x_fast = x
        if self.avg_pool is not None:  # always set: __init__ accepts only 'avg'
            x_slow, x_fast = self.avg_pool(x_slow), self.avg_pool(x_fast)
        pooled = torch.cat((x_fast, x_slow), dim=1)
        if self.dropout is not None:
            pooled = self.dropout(pooled)
        return self.fc_cls(pooled.flatten(1))


@register()
class X3DHead(BaseHead):
    """X3D head: 3D pooling, ``fc1`` (2048 wide), ReLU, dropout, ``fc2``.

    Args:
        num_classes: Number of classes.
        in_channels: Channels of the input feature.
        spatial_type: ``'avg'`` or ``'max'`` pooling over T×H×W.
        dropout_ratio: Dropout before ``fc2`` (identity in eval).
        init_std: Ignored (training only).
        fc1_bias: Whether ``fc1`` has a bias.
        **kwargs: :class:`BaseHead` arguments.

    Raises:
        ModelConfigError: If ``spatial_type`` is neither ``'avg'`` nor ``'max'``.
    """

    mid_channels = 2048

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        spatial_type: str = "avg",
        dropout_ratio: float = 0.5,
        init_std: float = 0.01,
        fc1_bias: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, in_channels, **kwargs)
        pools = {"avg": nn.AdaptiveAvgPool3d, "max": nn.AdaptiveMaxPool3d}
        if spatial_type not in pools:
            raise ModelConfigError(f"X3DHead.spatial_type: expected 'avg' or 'max', got {spatial_type!r}")
        self.spatial_type = spatial_type
        self.dropout_ratio = dropout_ratio
        self.fc1_bias = fc1_bias
        self.fc1 = nn.Linear(in_channels, self.mid_channels, bias=fc1_bias)
        self.fc2 = nn.Linear(self.mid_channels, num_classes)
        self.relu = nn.ReLU()
        self.pool = pools[spatial_type]((1, 1, 1))
        self.dropout = _make_dropout(dropout_ratio)

    def forward(self, x: Tensor, num_segs: int = 1) -> Tensor:
        """Scores ``(N, num_classes)`` from features ``(N, C, T, H, W)``."""
        x = self.relu(self.fc1(self.pool(x).flatten(1)))
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc2(x)


@register()
class TimeSformerHead(BaseHead):
    """Head of the transformer backbones (TimeSformer, VideoMAE ViT): dropout, ``fc_cls``.

    Args:
        num_classes: Number of classes.
        in_channels: Width of the backbone's feature vector.
        init_std: Ignored (training only).
        dropout_ratio: Dropout before ``fc_cls`` (identity in eval).
        **kwargs: :class:`BaseHead` arguments.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        init_std: float = 0.02,
        dropout_ratio: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, in_channels, **kwargs)
        self.dropout_ratio = dropout_ratio
        self.dropout = _make_dropout(dropout_ratio)
        self.fc_cls = nn.Linear(in_channels, num_classes)

    def forward(self, x: Tensor, num_segs: int = 1) -> Tensor:
        """Scores ``(N, num_classes)`` from features ``(N, in_channels)``."""
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc_cls(x)


@register()
class UniFormerHead(TimeSformerHead):
    """UniFormer / UniFormerV2 head: dropout, ``fc_cls`` (as :class:`TimeSformerHead`).

    Args:
        num_classes: Number of classes.
        in_channels: Width of the backbone's feature vector.
        dropout_ratio: Dropout before ``fc_cls`` (identity in eval).
        channel_map: Ignored (MMAction2 uses it to pick classes from a pretrained head while fine-tuning).
        **kwargs: :class:`BaseHead` arguments.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        dropout_ratio: float = 0.0,
        channel_map: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, in_channels, dropout_ratio=dropout_ratio, **kwargs)
