"""YOLOX (mmdet 3.x) in plain torch: CSPDarknet backbone, YOLOXPAFPN neck, YOLOXHead.

Module names follow mmdet 3.3 (``mmdet/models/backbones/csp_darknet.py``,
``mmdet/models/necks/yolox_pafpn.py``, ``mmdet/models/dense_heads/yolox_head.py``), so a
model-zoo checkpoint loads with its own keys: ``backbone.stem.conv.conv.weight`` (the Focus
stem), ``backbone.stage4.1.conv2.bn.running_var`` (the SPP bottleneck),
``neck.out_convs.0.conv.weight``, ``bbox_head.multi_level_cls_convs.0.1.conv.weight``,
``bbox_head.multi_level_conv_obj.2.bias``. The building blocks (CSP layer with Darknet
bottlenecks, SPP bottleneck, depthwise-separable convs) and the path aggregation network are
those of :mod:`engines.models.cspnext` and :mod:`engines.models.rtmdet`, with YOLOX's options.

:class:`YOLOX` takes images as mmdet's ``DetDataPreprocessor`` hands them on (YOLOX's configs
have no ``mean`` / ``std``: raw 0-255 BGR, as float32, padded) and returns, for every prior of
every level (level by level, row-major within a level, as mmdet flattens them):

* ``scores (batch, priors, num_classes)``: sigmoid class scores;
* ``objectness (batch, priors)``: sigmoid objectness;
* ``bbox_preds (batch, priors, 4)``: the raw box deltas ``dx, dy, dw, dh``.

Decoding (mmdet's ``YOLOXHead._bbox_decode``: centre ``d_xy * stride + prior``, size
``exp(d_wh) * stride``), score threshold, NMS and rescaling are done in numpy afterwards (see
:mod:`detectors.yolox`): the graph's outputs stay of order one, so the engine's absolute
parity check means the same at any image size, and class scores and objectness stay apart
so that the caller takes mmdet's steps in the same order (best class, then times objectness).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from engines.errors import ModelConfigError
from engines.models.cspnext import (
    CSP_NORM_CFG,
    SWISH_CFG,
    CSPLayer,
    DepthwiseSeparableConvModule,
    SPPBottleneck,
)
from engines.models.layers import ConfigDict, ConvModule
from engines.models.registry import build, register
from engines.models.rtmdet import NEAREST_X2, PAFPN


class Focus(nn.Module):
    """Space-to-depth stem: the four pixel phases side by side as channels (12), then ``conv``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        conv_cfg: ConfigDict | None = None,
        norm_cfg: ConfigDict = CSP_NORM_CFG,
        act_cfg: ConfigDict = SWISH_CFG,
    ) -> None:
        super().__init__()
        self.conv = ConvModule(
            in_channels * 4, out_channels, kernel_size, stride, padding=(kernel_size - 1) // 2,
            conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg,
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # mmdet's order: top-left, bottom-left, top-right, bottom-right
        return self.conv(torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), 1))


#: Per stage: in_channels, out_channels, num_blocks, add_identity, use_spp (before widen / deepen).
DARKNET_ARCH: Mapping[str, tuple[tuple[int, int, int, bool, bool], ...]] = MappingProxyType(
    {
        "P5": ((64, 128, 3, True, False), (128, 256, 9, True, False), (256, 512, 9, True, False),
               (512, 1024, 3, False, True)),
        "P6": ((64, 128, 3, True, False), (128, 256, 9, True, False), (256, 512, 9, True, False),
               (512, 768, 3, True, False), (768, 1024, 3, False, True)),
    }
)  # fmt: skip


@register()
class CSPDarknet(nn.Module):
    """CSP-Darknet (YOLOv5, YOLOX): a Focus stem (``stem``) and stages ``stage1..stageN``.

    A stage is ``Sequential(3×3 s2 conv, [SPPBottleneck on the last stage], CSPLayer)`` with
    Darknet bottlenecks (1×1 then 3×3) and no channel attention.

    Args:
        arch: ``'P5'`` (4 stages) or ``'P6'`` (5 stages).
        deepen_factor: Blocks per CSP layer = ``max(round(n * deepen_factor), 1)``.
        widen_factor: Channels = ``int(c * widen_factor)``.
        out_indices: Which outputs to return (0 is the stem, i the i-th stage).
        use_depthwise: Depthwise-separable 3×3 convs.
        arch_ovewrite: Replace the arch settings (mmdet's spelling).
        spp_kernal_sizes: Max-pool kernels of the SPP bottleneck (mmdet's spelling).
        conv_cfg, norm_cfg, act_cfg: mmcv layer configs.
        frozen_stages, norm_eval, init_cfg: Training-only; ignored.

    Raises:
        ModelConfigError: Unknown ``arch`` or ``out_indices`` out of range.
    """

    def __init__(
        self,
        arch: str = "P5",
        deepen_factor: float = 1.0,
        widen_factor: float = 1.0,
        out_indices: Sequence[int] = (2, 3, 4),
        frozen_stages: int = -1,
        use_depthwise: bool = False,
        arch_ovewrite: Sequence[Sequence[Any]] | None = None,
        spp_kernal_sizes: Sequence[int] = (5, 9, 13),
        conv_cfg: ConfigDict | None = None,
        norm_cfg: ConfigDict = CSP_NORM_CFG,
        act_cfg: ConfigDict = SWISH_CFG,
        norm_eval: bool = False,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        if arch not in DARKNET_ARCH:
            raise ModelConfigError(f"backbone.arch: expected one of {', '.join(DARKNET_ARCH)}, got {arch!r}")
        settings = [tuple(s) for s in arch_ovewrite] if arch_ovewrite else list(DARKNET_ARCH[arch])
        if not set(out_indices) <= set(range(len(settings) + 1)):
            raise ModelConfigError(f"backbone.out_indices: expected indices in 0..{len(settings)}, got {out_indices}")
        self.out_indices = tuple(out_indices)
        common: dict[str, Any] = {"conv_cfg": conv_cfg, "norm_cfg": norm_cfg, "act_cfg": act_cfg}
        self.stem = Focus(3, int(settings[0][0] * widen_factor), kernel_size=3, **common)
        self.layers = ["stem"]
        conv = DepthwiseSeparableConvModule if use_depthwise else ConvModule
        for i, (c_in, c_out, blocks, add_identity, use_spp) in enumerate(settings):
            c_in, c_out = int(c_in * widen_factor), int(c_out * widen_factor)
            stage: list[nn.Module] = [conv(c_in, c_out, 3, stride=2, padding=1, **common)]
            if use_spp:
                stage.append(SPPBottleneck(c_out, c_out, spp_kernal_sizes, **common))
            stage.append(
                CSPLayer(
                    c_out, c_out, num_blocks=max(round(blocks * deepen_factor), 1), add_identity=bool(add_identity),
                    use_depthwise=use_depthwise, **common,
                )
            )  # fmt: skip
            self.add_module(f"stage{i + 1}", nn.Sequential(*stage))
            self.layers.append(f"stage{i + 1}")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = []
        for i, name in enumerate(self.layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


@register()
class YOLOXPAFPN(PAFPN):
    """YOLOX's path aggregation network: CSP layers of Darknet bottlenecks, 1×1 out convs.

    Args:
        in_channels: Channels of the backbone outputs, low to high level.
        out_channels: Channels of every output level.
        num_csp_blocks: Blocks per CSP layer.
        use_depthwise: Depthwise-separable 3×3 convs (downsampling and inside the blocks).
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
        upsample_cfg: ConfigDict = NEAREST_X2,
        conv_cfg: ConfigDict | None = None,
        norm_cfg: ConfigDict = CSP_NORM_CFG,
        act_cfg: ConfigDict = SWISH_CFG,
        init_cfg: Any = None,
    ) -> None:
        csp = {"num_blocks": num_csp_blocks, "add_identity": False, "use_depthwise": use_depthwise}
        common = {"conv_cfg": conv_cfg, "norm_cfg": norm_cfg, "act_cfg": act_cfg}
        super().__init__(in_channels, out_channels, csp, use_depthwise, 1, upsample_cfg, common)


@register()
class YOLOXHead(nn.Module):
    """YOLOX's decoupled head: per level ``stacked_convs`` 3×3 convs for classes and for boxes,
    then 1×1 ``conv_cls``, ``conv_reg`` and ``conv_obj`` (objectness, on the box branch).

    Args:
        num_classes: Classes (sigmoid scores, no background).
        in_channels: Channels of the neck's outputs.
        feat_channels: Channels of the stacked convs.
        stacked_convs: 3×3 convs per branch.
        strides: Level strides (priors: ``MlvlPointGenerator`` with offset 0).
        use_depthwise: Depthwise-separable stacked convs.
        dcn_on_last_conv: Must be false (deformable convs are not supported).
        conv_bias: Bias of the stacked convs; ``'auto'`` (none with a norm) as mmcv.
        conv_cfg, norm_cfg, act_cfg: mmcv layer configs.
        loss_cls: Only ``use_sigmoid`` is read (it must be true); other keys are ignored.
        loss_bbox, loss_obj, loss_l1, train_cfg, test_cfg, init_cfg: Training / post-processing keys; ignored.

    Raises:
        ModelConfigError: For deformable convs, a softmax classifier or bad strides.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        feat_channels: int = 256,
        stacked_convs: int = 2,
        strides: Sequence[int | Sequence[int]] = (8, 16, 32),
        use_depthwise: bool = False,
        dcn_on_last_conv: bool = False,
        conv_bias: bool | str = "auto",
        conv_cfg: ConfigDict | None = None,
        norm_cfg: ConfigDict = CSP_NORM_CFG,
        act_cfg: ConfigDict = SWISH_CFG,
        loss_cls: Mapping[str, Any] | None = None,
        loss_bbox: Any = None,
        loss_obj: Any = None,
        loss_l1: Any = None,
        train_cfg: Any = None,
        test_cfg: Any = None,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        if dcn_on_last_conv:
            raise ModelConfigError("bbox_head.dcn_on_last_conv: deformable convs are not supported (False)")
        if loss_cls is not None and not loss_cls.get("use_sigmoid", True):
            raise ModelConfigError("bbox_head.loss_cls.use_sigmoid: YOLOX scores classes with a sigmoid (True)")
        if use_depthwise and conv_bias != "auto":
            raise ModelConfigError("bbox_head.conv_bias: only 'auto' with use_depthwise=True")
        self.num_classes = num_classes
        self.strides: list[int] = []
        for s in strides:
            pair = (s, s) if isinstance(s, int) else tuple(s)
            if len(pair) != 2 or pair[0] != pair[1]:
                raise ModelConfigError(f"bbox_head.strides: expected square strides, got {s!r}")
            self.strides.append(int(pair[0]))
        common: dict[str, Any] = {"conv_cfg": conv_cfg, "norm_cfg": norm_cfg, "act_cfg": act_cfg}
        if not use_depthwise:
            common["bias"] = conv_bias
        conv = DepthwiseSeparableConvModule if use_depthwise else ConvModule

        def stacked() -> nn.Sequential:
            chans = [in_channels] + [feat_channels] * (stacked_convs - 1)
            return nn.Sequential(*(conv(c, feat_channels, 3, stride=1, padding=1, **common) for c in chans))

        self.multi_level_cls_convs = nn.ModuleList(stacked() for _ in self.strides)
        self.multi_level_reg_convs = nn.ModuleList(stacked() for _ in self.strides)
        self.multi_level_conv_cls = nn.ModuleList(nn.Conv2d(feat_channels, num_classes, 1) for _ in self.strides)
        self.multi_level_conv_reg = nn.ModuleList(nn.Conv2d(feat_channels, 4, 1) for _ in self.strides)
        self.multi_level_conv_obj = nn.ModuleList(nn.Conv2d(feat_channels, 1, 1) for _ in self.strides)

    def forward(
        self, feats: Sequence[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """mmdet's raw head outputs: per level class logits, box deltas and objectness logits."""
        cls_scores, bbox_preds, objectnesses = [], [], []
        for idx, x in enumerate(feats):
            cls_feat = self.multi_level_cls_convs[idx](x)
            reg_feat = self.multi_level_reg_convs[idx](x)
            cls_scores.append(self.multi_level_conv_cls[idx](cls_feat))
            bbox_preds.append(self.multi_level_conv_reg[idx](reg_feat))
            objectnesses.append(self.multi_level_conv_obj[idx](reg_feat))
        return cls_scores, bbox_preds, objectnesses


def _flatten(levels: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[(B, K, H, W), ...] -> (B, sum(H*W), K)``, level by level, row-major inside a level."""
    return torch.cat([x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1]) for x in levels], dim=1)


@register()
class YOLOX(nn.Module):
    """YOLOX: ``backbone`` → ``neck`` → ``bbox_head``; ``forward(images) -> (scores, objectness, bbox_preds)``.

    Args:
        backbone, neck, bbox_head: mmdet configs of the parts.
        data_preprocessor: ``DetDataPreprocessor`` settings (``mean``, ``std``, ``bgr_to_rgb``,
            ``pad_size_divisor``), kept as attributes for the caller's preprocessing; without
            ``mean`` / ``std`` (YOLOX's configs) the pixels go in unnormalised.
        test_cfg: Post-processing settings (``score_thr``, ``nms``), kept as :attr:`test_cfg`.
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
        self.mean = tuple(float(v) for v in pre.get("mean") or (0.0, 0.0, 0.0))
        self.std = tuple(float(v) for v in pre.get("std") or (1.0, 1.0, 1.0))
        self.bgr_to_rgb = bool(pre.get("bgr_to_rgb", pre.get("rgb_to_bgr", False)))
        self.pad_size_divisor = int(pre.get("pad_size_divisor", 1))
        self.test_cfg = dict(test_cfg or {})

    @property
    def strides(self) -> list[int]:
        return list(self.bbox_head.strides)  # type: ignore[arg-type]

    @property
    def num_classes(self) -> int:
        return int(self.bbox_head.num_classes)  # type: ignore[arg-type]

    def head_outputs(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """mmdet's raw outputs (``model._forward``): per-level class, box and objectness logits."""
        return self.bbox_head(self.neck(self.backbone(images)))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cls_scores, bbox_preds, objectnesses = self.head_outputs(images)
        return _flatten(cls_scores).sigmoid(), _flatten(objectnesses)[..., 0].sigmoid(), _flatten(bbox_preds)
