"""RTMDet (mmdet 3.x) in plain torch: CSPNeXt backbone, CSPNeXtPAFPN neck, RTMDetSepBNHead.

Module names follow mmdet 3.3 (``mmdet/models/necks/cspnext_pafpn.py``,
``mmdet/models/dense_heads/rtmdet_head.py``), so a model-zoo checkpoint loads with its own
keys: ``neck.reduce_layers.0.conv.weight``, ``neck.top_down_blocks.0.main_conv...``,
``bbox_head.cls_convs.0.0.conv.weight``, ``bbox_head.rtm_cls.2.bias``, ``bbox_head.rtm_reg.0.weight``.
With ``share_conv`` the 3×3 convs of every level are the first level's (as in mmdet, the
checkpoint then holds the same tensor under each level's key; the batch norms stay per level).

:class:`RTMDet` takes images already normalised (``(x - mean) / std``, BGR or RGB as the
config's ``data_preprocessor`` says, padded to the network size) and returns, for every
prior of every level (level by level, row-major within a level as mmdet flattens them):

* ``scores (batch, priors, num_classes)``: sigmoid class scores;
* ``distances (batch, priors, 4)``: left, top, right, bottom distances in input pixels
  (already times the stride; ``exp`` first when ``exp_on_reg``).

Decoding, score threshold, top-k, NMS and rescaling are done in numpy afterwards (see
:mod:`detectors.rtmdet`), so the compiled graph has fixed-size outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, cast

import torch
from torch import nn

from engines.errors import ModelConfigError
from engines.models.cspnext import CSP_NORM_CFG, SILU_CFG, SWISH_CFG, CSPLayer, DepthwiseSeparableConvModule
from engines.models.layers import ConfigDict, ConvModule
from engines.models.registry import build, register

NEAREST_X2: ConfigDict = MappingProxyType({"scale_factor": 2, "mode": "nearest"})


class PAFPN(nn.Module):
    """Path aggregation network of the CSP family (mmdet's ``CSPNeXtPAFPN`` and ``YOLOXPAFPN``).

    Top-down (``reduce_layers`` 1×1 convs, upsample, ``top_down_blocks`` CSP layers), then
    bottom-up (``downsamples`` 3×3 stride-2 convs, ``bottom_up_blocks``), then ``out_convs``.
    Subclasses choose the CSP layers' options, the downsampling conv and the out convs' kernel.

    Args:
        in_channels: Channels of the backbone outputs, low to high level.
        out_channels: Channels of every output level.
        csp: Keyword arguments of every :class:`~engines.models.cspnext.CSPLayer`.
        use_depthwise: Depthwise-separable downsampling convs.
        out_kernel: Kernel of the out convs (3 for CSPNeXt, 1 for YOLOX).
        upsample_cfg: ``nn.Upsample`` arguments.
        common: ``conv_cfg`` / ``norm_cfg`` / ``act_cfg`` of every conv.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int,
        csp: Mapping[str, Any],
        use_depthwise: bool,
        out_kernel: int,
        upsample_cfg: ConfigDict,
        common: Mapping[str, Any],
    ) -> None:
        super().__init__()
        self.in_channels = list(in_channels)
        self.upsample = nn.Upsample(**dict(upsample_cfg))
        self.reduce_layers = nn.ModuleList()
        self.top_down_blocks = nn.ModuleList()
        for idx in range(len(in_channels) - 1, 0, -1):
            self.reduce_layers.append(ConvModule(in_channels[idx], in_channels[idx - 1], 1, **common))
            self.top_down_blocks.append(CSPLayer(in_channels[idx - 1] * 2, in_channels[idx - 1], **csp, **common))
        down = DepthwiseSeparableConvModule if use_depthwise else ConvModule
        self.downsamples = nn.ModuleList()
        self.bottom_up_blocks = nn.ModuleList()
        for idx in range(len(in_channels) - 1):
            self.downsamples.append(down(in_channels[idx], in_channels[idx], 3, stride=2, padding=1, **common))
            self.bottom_up_blocks.append(CSPLayer(in_channels[idx] * 2, in_channels[idx + 1], **csp, **common))
        self.out_convs = nn.ModuleList(
            ConvModule(c, out_channels, out_kernel, padding=out_kernel // 2, **common) for c in in_channels
        )

    def forward(self, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        n = len(self.in_channels)
        inner = [inputs[-1]]
        for idx in range(n - 1, 0, -1):
            high = self.reduce_layers[n - 1 - idx](inner[0])
            inner[0] = high
            inner.insert(0, self.top_down_blocks[n - 1 - idx](torch.cat([self.upsample(high), inputs[idx - 1]], 1)))
        outs = [inner[0]]
        for idx in range(n - 1):
            down = self.downsamples[idx](outs[-1])
            outs.append(self.bottom_up_blocks[idx](torch.cat([down, inner[idx + 1]], 1)))
        return tuple(conv(x) for conv, x in zip(self.out_convs, outs, strict=True))


@register()
class CSPNeXtPAFPN(PAFPN):
    """Path aggregation network with CSPNeXt blocks (top-down, then bottom-up, then 3×3 out convs).

    Args:
        in_channels: Channels of the backbone outputs, low to high level.
        out_channels: Channels of every output level.
        num_csp_blocks: Blocks per CSP layer.
        use_depthwise: Depthwise-separable downsampling convs.
        expand_ratio: CSP layers' hidden channel ratio.
        upsample_cfg: ``nn.Upsample`` arguments.
        conv_cfg, norm_cfg, act_cfg: mmcv layer configs.
        init_cfg: Ignored.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int,
        num_csp_blocks: int = 3,
        use_depthwise: bool = False,
        expand_ratio: float = 0.5,
        upsample_cfg: ConfigDict = NEAREST_X2,
        conv_cfg: ConfigDict | None = None,
        norm_cfg: ConfigDict = CSP_NORM_CFG,
        act_cfg: ConfigDict = SWISH_CFG,
        init_cfg: Any = None,
    ) -> None:
        csp = {"num_blocks": num_csp_blocks, "add_identity": False, "use_lk_block": True, "expand_ratio": expand_ratio}
        common = {"conv_cfg": conv_cfg, "norm_cfg": norm_cfg, "act_cfg": act_cfg}
        super().__init__(in_channels, out_channels, csp, use_depthwise, 3, upsample_cfg, common)


def _strides(anchor_generator: Mapping[str, Any] | None) -> list[int]:
    gen = dict(anchor_generator or {"type": "MlvlPointGenerator", "offset": 0, "strides": [8, 16, 32]})
    if gen.get("type", "MlvlPointGenerator") != "MlvlPointGenerator" or gen.get("offset", 0.5) != 0:
        raise ModelConfigError(
            f"bbox_head.anchor_generator: expected dict(type='MlvlPointGenerator', offset=0, strides=...), got {gen!r}"
        )
    strides = []
    for s in gen.get("strides", ()):
        pair = (s, s) if isinstance(s, int) else tuple(s)
        if len(pair) != 2 or pair[0] != pair[1]:
            raise ModelConfigError(f"bbox_head.anchor_generator.strides: expected square strides, got {s!r}")
        strides.append(int(pair[0]))
    if not strides:
        raise ModelConfigError("bbox_head.anchor_generator.strides: expected at least one stride")
    return strides


@register()
class RTMDetSepBNHead(nn.Module):
    """RTMDet's head: per level ``stacked_convs`` 3×3 convs for classes and for boxes, then 1×1 predictions.

    Args:
        num_classes: Classes (sigmoid scores, no background).
        in_channels: Channels of the neck's outputs.
        feat_channels: Channels of the stacked convs.
        stacked_convs: 3×3 convs per branch.
        share_conv: Share the stacked convs' weights across levels (batch norms stay separate).
        use_depthwise: Depthwise-separable stacked convs.
        pred_kernel_size: Kernel of ``rtm_cls`` / ``rtm_reg`` (/ ``rtm_obj``).
        exp_on_reg: ``exp`` on the box regression before scaling by the stride (RTMDet-m/l/x).
        with_objectness: Add an objectness branch (``rtm_obj``); scores become the geometric
            mean of class and objectness probabilities.
        anchor_generator: ``MlvlPointGenerator`` with ``offset=0``; gives the level strides.
        conv_cfg, norm_cfg, act_cfg: mmcv layer configs.
        loss_cls: Only ``use_sigmoid`` is read (it must be true); other keys are ignored.
        bbox_coder, loss_bbox, train_cfg, test_cfg, init_cfg: Training / post-processing keys; ignored here.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        feat_channels: int = 256,
        stacked_convs: int = 4,
        share_conv: bool = True,
        use_depthwise: bool = False,
        pred_kernel_size: int = 1,
        exp_on_reg: bool = False,
        with_objectness: bool = True,
        anchor_generator: Mapping[str, Any] | None = None,
        conv_cfg: ConfigDict | None = None,
        norm_cfg: ConfigDict = CSP_NORM_CFG,
        act_cfg: ConfigDict = SILU_CFG,
        loss_cls: Mapping[str, Any] | None = None,
        bbox_coder: Any = None,
        loss_bbox: Any = None,
        train_cfg: Any = None,
        test_cfg: Any = None,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        if loss_cls is not None and not loss_cls.get("use_sigmoid", True):
            raise ModelConfigError("bbox_head.loss_cls.use_sigmoid: RTMDet heads score classes with a sigmoid (True)")
        self.num_classes = num_classes
        self.strides = _strides(anchor_generator)
        self.exp_on_reg = exp_on_reg
        self.with_objectness = with_objectness
        conv = DepthwiseSeparableConvModule if use_depthwise else ConvModule
        common: dict[str, Any] = {"conv_cfg": conv_cfg, "norm_cfg": norm_cfg, "act_cfg": act_cfg}
        pad = pred_kernel_size // 2
        self.cls_convs = nn.ModuleList()
        self.reg_convs = nn.ModuleList()
        self.rtm_cls = nn.ModuleList()
        self.rtm_reg = nn.ModuleList()
        if with_objectness:
            self.rtm_obj = nn.ModuleList()
        for _ in self.strides:
            chans = [in_channels] + [feat_channels] * (stacked_convs - 1)
            self.cls_convs.append(
                nn.ModuleList(conv(c, feat_channels, 3, stride=1, padding=1, **common) for c in chans)
            )
            self.reg_convs.append(
                nn.ModuleList(conv(c, feat_channels, 3, stride=1, padding=1, **common) for c in chans)
            )
            self.rtm_cls.append(nn.Conv2d(feat_channels, num_classes, pred_kernel_size, padding=pad))
            self.rtm_reg.append(nn.Conv2d(feat_channels, 4, pred_kernel_size, padding=pad))
            if with_objectness:
                self.rtm_obj.append(nn.Conv2d(feat_channels, 1, pred_kernel_size, padding=pad))
        if share_conv:
            for n in range(len(self.strides)):
                for i in range(stacked_convs):
                    for convs in (self.cls_convs, self.reg_convs):
                        cast(nn.ModuleList, convs[n])[i].conv = cast(nn.ModuleList, convs[0])[i].conv

    def forward(self, feats: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """mmdet's raw head outputs: per level class logits ``(B, C, H, W)`` and distances ``(B, 4, H, W)``."""
        cls_scores, bbox_preds = [], []
        for idx, (x, stride) in enumerate(zip(feats, self.strides, strict=True)):
            cls_feat, reg_feat = x, x
            cls_convs, reg_convs = cast(nn.ModuleList, self.cls_convs[idx]), cast(nn.ModuleList, self.reg_convs[idx])
            for layer in cls_convs:
                cls_feat = layer(cls_feat)
            cls_score = self.rtm_cls[idx](cls_feat)
            for layer in reg_convs:
                reg_feat = layer(reg_feat)
            reg = self.rtm_reg[idx](reg_feat)
            bbox_preds.append((reg.exp() if self.exp_on_reg else reg) * stride)
            if self.with_objectness:
                # mmdet: inverse_sigmoid(sqrt(sigmoid(cls) * sigmoid(obj))), eps 1e-5 on both sides
                prob = (cls_score.sigmoid() * self.rtm_obj[idx](reg_feat).sigmoid()).sqrt().clamp(0, 1)
                cls_score = torch.log(prob.clamp(min=1e-5) / (1 - prob).clamp(min=1e-5))
            cls_scores.append(cls_score)
        return cls_scores, bbox_preds


def _flatten(levels: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[(B, K, H, W), ...] -> (B, sum(H*W), K)``, level by level, row-major inside a level."""
    return torch.cat([x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1]) for x in levels], dim=1)


@register()
class RTMDet(nn.Module):
    """RTMDet: ``backbone`` → ``neck`` → ``bbox_head``; ``forward(images) -> (scores, distances)``.

    Args:
        backbone, neck, bbox_head: mmdet configs of the parts.
        data_preprocessor: ``DetDataPreprocessor`` settings (``mean``, ``std``, ``bgr_to_rgb``),
            kept as :attr:`mean` / :attr:`std` / :attr:`bgr_to_rgb` for the caller's preprocessing.
        test_cfg: Post-processing settings (``score_thr``, ``nms_pre``, ``nms``, ``max_per_img``),
            kept as :attr:`test_cfg`.
        train_cfg, init_cfg: Ignored.
    """

    def __init__(
        self,
        backbone: Mapping[str, Any],
        neck: Mapping[str, Any],
        bbox_head: Mapping[str, Any],
        data_preprocessor: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
        train_cfg: Any = None,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        self.backbone = build(backbone, where="model.backbone")
        self.neck = build(neck, where="model.neck")
        self.bbox_head = build(bbox_head, where="model.bbox_head")
        pre = dict(data_preprocessor or {})
        self.mean = tuple(float(v) for v in pre.get("mean", (0.0, 0.0, 0.0)))
        self.std = tuple(float(v) for v in pre.get("std", (1.0, 1.0, 1.0)))
        self.bgr_to_rgb = bool(pre.get("bgr_to_rgb", pre.get("rgb_to_bgr", False)))
        self.test_cfg = dict(test_cfg or {})

    @property
    def strides(self) -> list[int]:
        return list(self.bbox_head.strides)  # type: ignore[arg-type]

    @property
    def num_classes(self) -> int:
        return int(self.bbox_head.num_classes)  # type: ignore[arg-type]

    def head_outputs(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """mmdet's raw outputs (``model._forward``): per-level class logits and box distances."""
        return self.bbox_head(self.neck(self.backbone(images)))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cls_scores, bbox_preds = self.head_outputs(images)
        return _flatten(cls_scores).sigmoid(), _flatten(bbox_preds)
