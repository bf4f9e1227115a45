"""Spatio-temporal action detection (AVA): MMAction2 1.x's ``FastRCNN`` test path in plain torch.

MMAction2 builds its AVA detectors from mmdet's ``FastRCNN`` (backbone + RoI head; the person
boxes come from an outside detector as *proposals*) with its own RoI-head parts:

* :class:`SingleRoIExtractor3D`: joins the pathways of a SlowFast backbone (nearest
  resampling to the longest one in time), pools time, and cuts each box out of every
  remaining frame with mmcv's ``RoIAlign`` (:mod:`engines.models.roi_align`);
* :class:`ACRNHead` (optional ``shared_head``): relates each actor to the whole clip;
* :class:`BBoxHeadAVA`: temporal and spatial pooling and ``fc_cls``, one logit per class;
* :class:`AVARoIHead`: the three together, as mmdet's ``StandardRoIHead._bbox_forward``.

:class:`FastRCNN` ``(inputs, rois) -> scores`` is ``model.predict``'s
``pred_instances.scores``: sigmoid (multi-label) or softmax probabilities ``(K, num_classes)``
for ``rois`` ``(K, 5)`` = batch index, x1, y1, x2, y2 in input pixels. Column 0 is the
background class of the AVA configs (``background_class=True``); it is never trained, and
MMAction2's demo skips it (its label map starts at 1).

Submodule names are MMAction2's, so model-zoo checkpoints (``backbone.*``,
``roi_head.bbox_head.fc_cls.*``, ``roi_head.shared_head.*``) load as they are. Types may
carry mmengine's scope prefix (``'mmaction.ResNet3dSlowOnly'``), as the model zoo writes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engines.errors import ModelConfigError
from engines.models.layers import BN3D_CFG, CONV3D_CFG, RELU_CFG, ConfigDict, ConvModule
from engines.models.registry import build, register
from engines.models.roi_align import RoIAlign, adaptive_avg_pool2d, pair

#: mmengine scopes a model-zoo config may put before a type name.
SCOPES = ("mmaction.", "mmdet.", "mmengine.")


def unscoped(cfg: ConfigDict, where: str) -> dict[str, Any]:
    """``cfg`` with the scope prefix (``mmaction.`` / ``mmdet.``) taken off its ``type``.

    Raises:
        ModelConfigError: If ``cfg`` is not a dict with a ``type``.
    """
    if not isinstance(cfg, Mapping) or "type" not in cfg:
        raise ModelConfigError(f"{where}: expected a dict with a 'type' key, got {cfg!r}")
    out = {k: v for k, v in cfg.items() if k != "_scope_"}
    name = str(cfg["type"])
    for scope in SCOPES:
        if name.startswith(scope):
            name = name[len(scope) :]
    out["type"] = name
    return out


def _choice(value: str, valid: Sequence[str], where: str) -> str:
    if value not in valid:
        raise ModelConfigError(f"{where}: expected one of {', '.join(map(repr, valid))}, got {value!r}")
    return value


def _nearest_frames(length: int, target: int) -> list[int]:
    """Source frames of ``F.interpolate(mode='nearest')`` from ``length`` to ``target`` frames.

    torch picks ``min(floor(i * scale), length - 1)`` with ``scale = length / target`` in float32.
    """
    scale = np.float32(length) / np.float32(target)
    return [min(int(np.floor(np.float32(i) * scale)), length - 1) for i in range(target)]


@register()
class SingleRoIExtractor3D(nn.Module):
    """RoI features of a 3D feature map (or of SlowFast's two), as MMAction2's ``SingleRoIExtractor3D``.

    Args:
        roi_layer_type: Only ``'RoIAlign'`` (every MMAction2 AVA config).
        featmap_stride: Input pixels per feature pixel (the RoIAlign's ``1 / spatial_scale``).
        output_size: RoI feature size ``(h, w)`` or one int.
        sampling_ratio: RoIAlign samples per bin and axis; ``0`` is adaptive.
        pool_mode: RoIAlign pooling; only ``'avg'``.
        aligned: RoIAlign's half-pixel alignment.
        with_temporal_pool: Pool time to one frame before RoIAlign.
        temporal_pool_mode: ``'avg'`` or ``'max'``.
        with_global: Concatenate each box's features with the whole frame's, pooled to ``output_size``.

    Raises:
        ModelConfigError: For an unsupported layer type, pooling mode or size.
    """

    def __init__(
        self,
        roi_layer_type: str = "RoIAlign",
        featmap_stride: int = 16,
        output_size: int | Sequence[int] = 16,
        sampling_ratio: int = 0,
        pool_mode: str = "avg",
        aligned: bool = True,
        with_temporal_pool: bool = True,
        temporal_pool_mode: str = "avg",
        with_global: bool = False,
    ) -> None:
        super().__init__()
        if roi_layer_type != "RoIAlign":
            raise ModelConfigError(
                f"SingleRoIExtractor3D.roi_layer_type: only 'RoIAlign' is supported, got {roi_layer_type!r}"
            )
        if not isinstance(featmap_stride, int) or featmap_stride <= 0:
            raise ModelConfigError(
                f"SingleRoIExtractor3D.featmap_stride: expected a positive int, got {featmap_stride!r}"
            )
        self.roi_layer_type = roi_layer_type
        self.featmap_stride = featmap_stride
        self.spatial_scale = 1.0 / featmap_stride
        self.output_size = pair(output_size, "SingleRoIExtractor3D.output_size")
        self.with_temporal_pool = with_temporal_pool
        self.temporal_pool_mode = _choice(temporal_pool_mode, ("avg", "max"), "SingleRoIExtractor3D.temporal_pool_mode")
        self.with_global = with_global
        self.roi_layer = RoIAlign(
            self.output_size, self.spatial_scale, sampling_ratio=sampling_ratio, pool_mode=pool_mode, aligned=aligned
        )

    def _joined(self, feat: Tensor | Sequence[Tensor]) -> Tensor:
        """The pathways resampled to the longest in time (nearest), time-pooled, concatenated on channels."""
        feats = [feat] if isinstance(feat, Tensor) else list(feat)
        if len(feats) >= 2:
            longest = max(int(x.shape[2]) for x in feats)
            size = feats[0].shape[3:]
            resampled = []
            for x in feats:
                if tuple(x.shape[3:]) != tuple(size):
                    x = F.interpolate(x, (longest, *size))
                elif x.shape[2] != longest:
                    x = x[:, :, _nearest_frames(int(x.shape[2]), longest)]
                resampled.append(x)
            feats = resampled
        if self.with_temporal_pool:
            if self.temporal_pool_mode == "avg":
                feats = [x.mean(dim=2, keepdim=True) for x in feats]
            else:
                feats = [x.amax(dim=2, keepdim=True) for x in feats]
        return torch.cat(feats, dim=1)

    def forward(self, feat: Tensor | Sequence[Tensor], rois: Tensor) -> tuple[Tensor, Tensor]:
        """RoI features ``(K, C', T', oh, ow)`` and the joined clip features ``(N, C, T', H, W)``.

        ``C' = 2C`` with ``with_global``. Every frame ``t`` is RoI-aligned on its own, as in
        MMAction2; here the frames ride along the channel axis in one RoIAlign.
        """
        joined = self._joined(feat)
        n, c, t, h, w = joined.shape
        frames = joined.reshape(n, c * t, h, w)
        oh, ow = self.output_size
        roi_feats = self.roi_layer(frames, rois).reshape(-1, c, t, oh, ow)
        if self.with_global:
            whole = adaptive_avg_pool2d(frames, self.output_size).reshape(n, c, t, oh, ow)
            whole = whole[rois[:, 0].to(torch.int64)]
            roi_feats = torch.cat([roi_feats, whole], dim=1)
        return roi_feats, joined


@register()
class ACRNHead(nn.Module):
    """ACRN shared head (Actor-Centric Relation Network): tile each actor over the clip, two convs.

    Args:
        in_channels: Channels after concatenating the actor and clip features.
        out_channels: Output channels.
        stride: Spatial stride of ``conv2``.
        num_convs: 3x3 convs in all (``conv2`` plus ``num_convs - 1`` in ``convs``).
        conv_cfg: Conv type (3D).
        norm_cfg: Norm type.
        act_cfg: Activation type.

    Raises:
        ModelConfigError: For ``num_convs < 1`` or unsupported layer configs.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        num_convs: int = 1,
        conv_cfg: ConfigDict = CONV3D_CFG,
        norm_cfg: ConfigDict = BN3D_CFG,
        act_cfg: ConfigDict = RELU_CFG,
    ) -> None:
        super().__init__()
        if not isinstance(num_convs, int) or num_convs < 1:
            raise ModelConfigError(f"ACRNHead.num_convs: expected an int >= 1, got {num_convs!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.num_convs = num_convs
        common: dict[str, Any] = dict(bias=False, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.conv1 = ConvModule(in_channels, out_channels, kernel_size=1, stride=1, padding=0, **common)
        self.conv2 = ConvModule(
            out_channels, out_channels, kernel_size=(1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), **common
        )
        self.convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, kernel_size=(1, 3, 3), padding=(0, 1, 1), **common)
            for _ in range(num_convs - 1)
        )

    def forward(self, x: Tensor, feat: Tensor, rois: Tensor) -> Tensor:
        """``(K, out_channels, T, H', W')`` from RoI features ``x``, clip features ``feat`` and ``rois``."""
        actor = x.amax(dim=(2, 3, 4), keepdim=True)  # AdaptiveMaxPool3d(1)
        context = feat[rois[:, 0].to(torch.int64)]
        tiled = actor.expand(-1, -1, -1, context.shape[3], context.shape[4])
        out = self.conv2(self.conv1(torch.cat([tiled, context], dim=1)))
        for conv in self.convs:
            out = conv(out)
        return out


@register()
class BBoxHeadAVA(nn.Module):
    """AVA box head: temporal and spatial pooling, ``fc_cls``; MMAction2's ``BBoxHeadAVA`` at test time.

    Args:
        background_class: Class 0 is background (not trained; MMAction2's demo skips it).
        temporal_pool_type: ``'avg'`` or ``'max'``.
        spatial_pool_type: ``'avg'`` or ``'max'``.
        in_channels: Input channels.
        focal_gamma: Training only; ignored.
        focal_alpha: Training only; ignored.
        num_classes: Classes, background included.
        dropout_ratio: Dropout (identity at test time).
        dropout_before_pool: Where the dropout sits (identity at test time).
        topk: Training metrics only; checked as MMAction2 does (ints below ``num_classes``).
        multilabel: Sigmoid scores (``True``) or softmax.
        mlp_head: ``fc_cls`` is ``Linear, ReLU, Linear`` instead of one ``Linear``.

    Raises:
        ModelConfigError: For unknown pooling types, bad sizes or ``topk``.
    """

    def __init__(
        self,
        background_class: bool,
        temporal_pool_type: str = "avg",
        spatial_pool_type: str = "max",
        in_channels: int = 2048,
        focal_gamma: float = 0.0,
        focal_alpha: float = 1.0,
        num_classes: int = 81,
        dropout_ratio: float = 0,
        dropout_before_pool: bool = True,
        topk: int | Sequence[int] | None = (3, 5),
        multilabel: bool = True,
        mlp_head: bool = False,
    ) -> None:
        super().__init__()
        self.temporal_pool_type = _choice(temporal_pool_type, ("avg", "max"), "BBoxHeadAVA.temporal_pool_type")
        self.spatial_pool_type = _choice(spatial_pool_type, ("avg", "max"), "BBoxHeadAVA.spatial_pool_type")
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ModelConfigError(f"BBoxHeadAVA.{name}: expected a positive int, got {value!r}")
        ks = () if topk is None else (topk,) if isinstance(topk, int) else tuple(topk)
        if not all(isinstance(k, int) and 0 < k < num_classes for k in ks):
            raise ModelConfigError(
                f"BBoxHeadAVA.topk: expected ints between 1 and num_classes - 1 = {num_classes - 1}, got {topk!r}"
            )
        self.background_class = bool(background_class)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.multilabel = bool(multilabel)
        self.dropout_ratio = dropout_ratio
        self.topk = ks
        self.fc_cls: nn.Module
        if mlp_head:
            self.fc_cls = nn.Sequential(
                nn.Linear(in_channels, in_channels), nn.ReLU(), nn.Linear(in_channels, num_classes)
            )
        else:
            self.fc_cls = nn.Linear(in_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(K, num_classes)`` from RoI features ``(K, C, T, H, W)``."""
        x = x.mean(dim=2, keepdim=True) if self.temporal_pool_type == "avg" else x.amax(dim=2, keepdim=True)
        x = x.mean(dim=(3, 4), keepdim=True) if self.spatial_pool_type == "avg" else x.amax(dim=(3, 4), keepdim=True)
        return self.fc_cls(x.flatten(1))

    def scores(self, logits: Tensor) -> Tensor:
        """What ``predict_by_feat`` stores as ``scores``: sigmoid (multi-label) or softmax."""
        return logits.sigmoid() if self.multilabel else logits.softmax(dim=-1)


@register()
class AVARoIHead(nn.Module):
    """RoI extractor, optional shared head and box head: mmdet's ``StandardRoIHead`` as ``AVARoIHead`` uses it.

    Args:
        bbox_roi_extractor: Config of a :class:`SingleRoIExtractor3D`.
        bbox_head: Config of a :class:`BBoxHeadAVA`.
        shared_head: Optional config of an :class:`ACRNHead`.
        mask_roi_extractor: Must be ``None`` (no masks in action detection).
        mask_head: Must be ``None``.
        train_cfg: Training only; ignored.
        test_cfg: mmdet's ``test_cfg.rcnn`` (e.g. ``action_thr``), kept for the runner.
        init_cfg: Training only; ignored.

    Raises:
        ModelConfigError: For a mask branch or bad sub-configs.
    """

    def __init__(
        self,
        bbox_roi_extractor: ConfigDict,
        bbox_head: ConfigDict,
        shared_head: ConfigDict | None = None,
        mask_roi_extractor: ConfigDict | None = None,
        mask_head: ConfigDict | None = None,
        train_cfg: Any = None,
        test_cfg: Mapping[str, Any] | None = None,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        if mask_roi_extractor is not None or mask_head is not None:
            raise ModelConfigError("AVARoIHead: mask_roi_extractor / mask_head are not supported; remove them")
        self.bbox_roi_extractor = build(unscoped(bbox_roi_extractor, "roi_head.bbox_roi_extractor"),
                                        where="roi_head.bbox_roi_extractor")  # fmt: skip
        self.shared_head = (
            build(unscoped(shared_head, "roi_head.shared_head"), where="roi_head.shared_head")
            if shared_head is not None
            else None
        )
        head = build(unscoped(bbox_head, "roi_head.bbox_head"), where="roi_head.bbox_head")
        if not isinstance(head, BBoxHeadAVA):
            raise ModelConfigError(f"roi_head.bbox_head.type: expected 'BBoxHeadAVA', got {bbox_head.get('type')!r}")
        self.bbox_head = head
        self.test_cfg = dict(test_cfg) if isinstance(test_cfg, Mapping) else None

    def forward(self, x: Tensor | Sequence[Tensor], rois: Tensor) -> Tensor:
        """Logits ``(K, num_classes)`` for ``rois`` ``(K, 5)`` on backbone features ``x``."""
        roi_feats, clip_feats = self.bbox_roi_extractor(x, rois)
        if self.shared_head is not None:
            roi_feats = self.shared_head(roi_feats, clip_feats, rois)
        return self.bbox_head(roi_feats)


@register()
class FastRCNN(nn.Module):
    """MMAction2's AVA detector (mmdet ``FastRCNN``): backbone + :class:`AVARoIHead` on given person boxes.

    ``forward(inputs, rois)`` takes the data preprocessor's output ``(N, 3, T, H, W)``
    (normalised RGB) and ``rois`` ``(K, 5)`` (batch index, x1, y1, x2, y2 in input pixels) and
    returns ``model.predict``'s ``pred_instances.scores`` ``(K, num_classes)``.

    Args:
        backbone: Backbone config (``ResNet3dSlowOnly``, ``ResNet3dSlowFast``, ...; scope prefix allowed).
        roi_head: :class:`AVARoIHead` config.
        train_cfg: Training only; ignored.
        test_cfg: ``dict(rcnn=...)``; ``rcnn`` goes to the RoI head (``action_thr``).
        neck: Must be ``None``.
        rpn_head: Must be ``None`` (proposals come from a person detector).
        data_preprocessor: ``ActionDataPreprocessor`` config: ``mean``, ``std``, ``format_shape='NCTHW'``.
        init_cfg: Training only; ignored.
        _scope_: mmengine's default scope; ignored.

    Raises:
        ModelConfigError: For a neck, an RPN, a non-``NCTHW`` preprocessor or bad sub-configs.
    """

    input_format = "NCTHW"

    def __init__(
        self,
        backbone: ConfigDict,
        roi_head: ConfigDict,
        train_cfg: Any = None,
        test_cfg: Mapping[str, Any] | None = None,
        neck: ConfigDict | None = None,
        rpn_head: ConfigDict | None = None,
        data_preprocessor: ConfigDict | None = None,
        init_cfg: Any = None,
        _scope_: str | None = None,
    ) -> None:
        super().__init__()
        if neck is not None or rpn_head is not None:
            raise ModelConfigError("FastRCNN: neck / rpn_head are not supported (boxes come from a person detector)")
        rcnn = test_cfg.get("rcnn") if isinstance(test_cfg, Mapping) else None
        pre = dict(data_preprocessor or {})
        fmt = pre.get("format_shape", "NCTHW")
        if fmt != "NCTHW":
            raise ModelConfigError(f"FastRCNN.data_preprocessor.format_shape: expected 'NCTHW', got {fmt!r}")
        self.mean = [float(v) for v in pre.get("mean", (0.0, 0.0, 0.0))]
        self.std = [float(v) for v in pre.get("std", (1.0, 1.0, 1.0))]
        if len(self.mean) != 3 or len(self.std) != 3 or not all(s > 0 for s in self.std):
            raise ModelConfigError(
                f"FastRCNN.data_preprocessor: expected 3 means and 3 positive stds, got {self.mean} / {self.std}"
            )
        self.backbone = build(unscoped(backbone, "model.backbone"), where="model.backbone")
        head_cfg = unscoped(roi_head, "model.roi_head")
        head_cfg.setdefault("test_cfg", rcnn)
        head = build(head_cfg, where="model.roi_head")
        if not isinstance(head, AVARoIHead):
            raise ModelConfigError(f"model.roi_head.type: expected 'AVARoIHead', got {roi_head.get('type')!r}")
        self.roi_head = head

    @property
    def num_classes(self) -> int:
        """Score columns, background included."""
        return self.roi_head.bbox_head.num_classes

    @property
    def background_class(self) -> bool:
        """Whether column 0 is the (untrained) background class."""
        return self.roi_head.bbox_head.background_class

    @property
    def multilabel(self) -> bool:
        """Sigmoid (multi-label) scores rather than softmax."""
        return self.roi_head.bbox_head.multilabel

    @property
    def action_thr(self) -> float | None:
        """``test_cfg.rcnn.action_thr`` when the config sets it."""
        rcnn = self.roi_head.test_cfg
        thr = rcnn.get("action_thr") if rcnn else None
        return None if thr is None else float(thr)

    def forward(self, inputs: Tensor, rois: Tensor) -> Tensor:
        """Scores ``(K, num_classes)`` for ``rois`` ``(K, 5)`` on a normalised clip ``(N, 3, T, H, W)``."""
        return self.roi_head.bbox_head.scores(self.roi_head(self.backbone(inputs), rois))
