"""TRN's head (Temporal Relation Network, Zhou et al. 2018) with MMAction2 1.x names: ``TRNHead``.

The head pools each frame's feature, projects it to ``hidden_dim`` (``fc_cls``) and feeds the
``num_segments`` frame vectors of a clip to a relation module (``consensus``):

* ``relation_type='TRN'``: :class:`RelationModule`, one MLP over all frames in order;
* ``relation_type='TRNMultiScale'``: :class:`RelationModuleMultiScale`, one MLP per scale
  ``k = num_segments .. 2`` applied to ordered ``k``-frame subsets, the scores summed.

**Random relations at test time.** MMAction2's multi-scale module does not use every
``k``-frame subset: at each forward, training *and* test, it draws ``min(3, C(n, k))``
distinct subsets per scale ``k < n`` with ``np.random.choice`` (only the full-length scale is
fixed). Its scores therefore change from run to run on the same input; no fixed model can
equal them. Here the default is deterministic and is the *expected value* of MMAction2's
scores over its draw: per scale, ``draws × mean`` of the MLP over all subsets (linearity of
expectation; every subset is equally likely to be drawn). :meth:`RelationModuleMultiScale.fix_relations`
instead fixes one draw, which reproduces MMAction2's scores exactly for the same draw (the
parity tests seed NumPy and replay MMAction2's calls). For ``n = 8`` segments the mean mode
runs the MLPs on 246 subsets instead of 16 (the per-frame backbone dominates either way).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from engines.errors import ModelConfigError
from engines.models.heads import BaseHead, _make_dropout, clips_of_segments
from engines.models.registry import register

RELATION_TYPES = ("TRN", "TRNMultiScale")
#: Subsets MMAction2 draws per scale (``max_subsample``).
MAX_SUBSAMPLE = 3


class RelationModule(nn.Module):
    """Single-scale relation: ``classifier`` = ReLU, Linear(n·hidden → 512), ReLU, Linear(512 → classes).

    Args:
        hidden_dim: Width of each frame vector.
        num_segments: Frames per clip.
        num_classes: Number of classes.
    """

    def __init__(self, hidden_dim: int, num_segments: int, num_classes: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.num_segments = num_segments
        self.num_classes = num_classes
        bottleneck_dim = 512
        self.classifier = nn.Sequential(
            nn.ReLU(),
            nn.Linear(num_segments * hidden_dim, bottleneck_dim),
            nn.ReLU(),
            nn.Linear(bottleneck_dim, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Scores ``(B, classes)`` for frame vectors ``(B, num_segments, hidden_dim)``."""
        return self.classifier(x.reshape(x.shape[0], -1))


class RelationModuleMultiScale(nn.Module):
    """Multi-scale relation; ``fc_fusion_scales[i]`` scores the ``num_segments - i``-frame subsets.

    Each ``fc_fusion_scales[i]`` is ReLU, Linear(k·hidden → 256), ReLU, Linear(256 → classes).
    See the module docstring for how subsets are chosen (:attr:`relation_draws`).

    Args:
        hidden_dim: Width of each frame vector.
        num_segments: Frames per clip (at least 2).
        num_classes: Number of classes.

    Attributes:
        scales: Subset sizes, ``num_segments`` down to 2.
        relations_scales: Per scale, every ordered subset (``itertools.combinations``), as MMAction2.
        subsample_scales: Per scale, how many subsets MMAction2 draws.
        relation_draws: ``None`` (expected value over MMAction2's draw), or per scale after the
            first the indices into ``relations_scales`` to use, in order.
    """

    def __init__(self, hidden_dim: int, num_segments: int, num_classes: int) -> None:
        super().__init__()
        if num_segments < 2:
            raise ModelConfigError(f"TRNHead.num_segments: the multi-scale relation needs >= 2, got {num_segments}")
        self.hidden_dim = hidden_dim
        self.num_segments = num_segments
        self.num_classes = num_classes
        self.scales = list(range(num_segments, 1, -1))
        self.relations_scales = [list(itertools.combinations(range(num_segments), k)) for k in self.scales]
        self.subsample_scales = [min(MAX_SUBSAMPLE, len(r)) for r in self.relations_scales]
        bottleneck_dim = 256
        self.fc_fusion_scales = nn.ModuleList(
            nn.Sequential(
                nn.ReLU(), nn.Linear(k * hidden_dim, bottleneck_dim), nn.ReLU(), nn.Linear(bottleneck_dim, num_classes)
            )
            for k in self.scales
        )
        for i, relations in enumerate(self.relations_scales):
            # frame indices of every subset, (subsets, k): a constant gather in exported graphs
            self.register_buffer(f"_subsets{i}", torch.tensor(relations, dtype=torch.long), persistent=False)
        self.relation_draws: list[list[int]] | None = None

    def fix_relations(self, draws: Sequence[Sequence[int]] | None) -> None:
        """Use the given subsets per scale (as MMAction2's ``np.random.choice`` drew them), or ``None`` for the mean.

        Args:
            draws: One sequence per scale after the first (``len(scales) - 1``), each of
                ``subsample_scales[i]`` distinct indices into ``relations_scales[i]``.

        Raises:
            ValueError: If the draws do not fit the scales.
        """
        if draws is None:
            self.relation_draws = None
            return
        fixed = [[int(j) for j in d] for d in draws]
        if len(fixed) != len(self.scales) - 1:
            raise ValueError(f"relation draws: expected {len(self.scales) - 1} scales, got {len(fixed)}")
        for i, d in enumerate(fixed, start=1):
            size = len(self.relations_scales[i])
            if len(d) != self.subsample_scales[i] or len(set(d)) != len(d) or not all(0 <= j < size for j in d):
                raise ValueError(
                    f"relation draws for scale {self.scales[i]}: expected {self.subsample_scales[i]} distinct "
                    f"indices below {size}, got {d}"
                )
        self.relation_draws = fixed

    def _subsets(self, i: int) -> Tensor:
        subsets = self._buffers[f"_subsets{i}"]
        assert subsets is not None
        return subsets

    def forward(self, x: Tensor) -> Tensor:
        """Scores ``(B, classes)`` for frame vectors ``(B, num_segments, hidden_dim)``."""
        batch = x.shape[0]
        scores = self.fc_fusion_scales[0](x.reshape(batch, -1))  # the one full-length subset
        for i in range(1, len(self.scales)):
            k, fusion = self.scales[i], self.fc_fusion_scales[i]
            if self.relation_draws is not None:
                for j in self.relation_draws[i - 1]:
                    frames = self.relations_scales[i][j]
                    scores = scores + fusion(x[:, list(frames)].reshape(batch, k * self.hidden_dim))
            else:
                subsets = self._subsets(i)
                relations = x[:, subsets].reshape(batch, subsets.shape[0], k * self.hidden_dim)
                scores = scores + fusion(relations).mean(dim=1) * self.subsample_scales[i]
        return scores


@register()
class TRNHead(BaseHead):
    """TRN head: spatial average, dropout, ``fc_cls`` (to ``hidden_dim``), relation module ``consensus``.

    Views per sample must be a multiple of ``num_segments``; each group of ``num_segments``
    frames is one clip, scored on its own (then folded by ``average_clips``), as in MMAction2.

    Args:
        num_classes: Number of classes.
        in_channels: Channels of the backbone feature.
        num_segments: Frames per clip.
        loss_cls: Ignored (training only).
        spatial_type: ``'avg'`` pools H×W; anything else expects pooled features.
        relation_type: ``'TRNMultiScale'`` or ``'TRN'``.
        hidden_dim: Width of the per-frame projection.
        dropout_ratio: Dropout before ``fc_cls`` (identity in eval).
        init_std: Ignored (training only).
        **kwargs: :class:`~engines.models.heads.BaseHead` arguments.

    Raises:
        ModelConfigError: For an unknown ``relation_type`` or bad sizes.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        num_segments: int = 8,
        loss_cls: Mapping[str, Any] | None = None,
        spatial_type: str = "avg",
        relation_type: str = "TRNMultiScale",
        hidden_dim: int = 256,
        dropout_ratio: float = 0.8,
        init_std: float = 0.001,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, in_channels, loss_cls=loss_cls, **kwargs)
        if not isinstance(num_segments, int) or num_segments <= 0:
            raise ModelConfigError(f"TRNHead.num_segments: expected a positive int, got {num_segments!r}")
        if relation_type not in RELATION_TYPES:
            raise ModelConfigError(f"TRNHead.relation_type: expected 'TRN' or 'TRNMultiScale', got {relation_type!r}")
        self.num_segments = num_segments
        self.spatial_type = spatial_type
        self.relation_type = relation_type
        self.hidden_dim = hidden_dim
        self.dropout_ratio = dropout_ratio
        self.consensus: RelationModule | RelationModuleMultiScale
        if relation_type == "TRN":
            self.consensus = RelationModule(hidden_dim, num_segments, num_classes)
        else:
            self.consensus = RelationModuleMultiScale(hidden_dim, num_segments, num_classes)
        self.dropout = _make_dropout(dropout_ratio)
        self.fc_cls = nn.Linear(in_channels, hidden_dim)
        self.avg_pool = nn.AdaptiveAvgPool2d(1) if spatial_type == "avg" else None

    def clips_per_sample(self, num_views: int) -> int:
        return clips_of_segments(num_views, self.num_segments, "TRN")

    def forward(self, x: Tensor, num_segs: int = 1) -> Tensor:
        """Scores ``(N * clips, num_classes)``; ``num_segs`` is unused, as in MMAction2."""
        if self.avg_pool is not None:
            x = self.avg_pool(x)
        x = torch.flatten(x, 1)
        if self.dropout is not None:
            x = self.dropout(x)
        frames = self.fc_cls(x)
        return self.consensus(frames.reshape((-1, self.num_segments, *frames.shape[1:])))
