"""RTMPose (SimCC top-down pose) in plain torch, with mmpose 1.x's parameter names.

* :class:`RTMCCHead` — mmpose's head: a large-kernel conv (``final_layer``) turns the last
  backbone feature map into one map per keypoint, ``mlp`` (:class:`ScaleNorm` + ``Linear``)
  makes each flattened map a token, one Gated Attention Unit (``gau``,
  :class:`RTMCCBlock`) mixes the keypoint tokens, and ``cls_x`` / ``cls_y`` classify each
  token's x and y position into ``input_size × simcc_split_ratio`` bins.
* :class:`TopdownPoseEstimator` — backbone (mmdet's ``CSPNeXt`` for RTMPose) + head; its
  ``forward(inputs)`` takes normalised crops ``(N, 3, H, W)`` and returns
  ``(simcc_x, simcc_y)``, averaged with the horizontally flipped crops when the config's
  ``test_cfg.flip_test`` is set (as mmpose's test path does).

A model built from an mmpose config (``model = dict(type='TopdownPoseEstimator', ...)``)
has exactly the state-dict keys of mmpose's (``backbone.…``, ``head.final_layer.…``,
``head.mlp.0.g``, ``head.mlp.1.weight``, ``head.gau.…``, ``head.cls_x.weight``, …), so
model-zoo checkpoints load strictly. Only inference is implemented: training-only keys
(``loss``, ``init_cfg``, ``train_cfg``, drop path) are accepted and ignored. Decoding and
the crop geometry live in :mod:`detectors.topdown` (numpy).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from engines.errors import ModelConfigError
from engines.models.registry import build, register

#: mmpose's COCO-17 ``flip_indices`` (left/right keypoints swapped), used by flip test.
COCO_FLIP_INDICES: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

_GAU_DEFAULTS: Mapping[str, Any] = {
    "hidden_dims": 256,
    "s": 128,
    "expansion_factor": 2,
    "dropout_rate": 0.0,
    "drop_path": 0.0,
    "act_fn": "ReLU",
    "use_rel_bias": False,
    "pos_enc": False,
}


class ScaleNorm(nn.Module):
    """``x / (‖x‖ · dim^-½) · g`` over the last axis (mmpose's ``ScaleNorm``; parameter ``g``)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.scale = dim**-0.5
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x: Tensor) -> Tensor:
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True) * self.scale
        return x / norm.clamp(min=self.eps) * self.g


class Scale(nn.Module):
    """Element-wise learned scale (mmpose's ``Scale``; parameter ``scale``)."""

    def __init__(self, dim: int, init_value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(init_value * torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class RTMCCBlock(nn.Module):
    """mmpose's Gated Attention Unit over the keypoint tokens (self-attention only).

    ``x → ScaleNorm → uv = act(Linear)`` split into ``u, v`` (``e`` wide each) and a shared
    base (``s`` wide) that two per-channel affine maps (``gamma``, ``beta``) make into ``q``
    and ``k``; ``kernel = relu(q kᵀ / √s)²``; out = ``o(u · kernel v)``, plus the input
    scaled by ``res_scale`` when input and output widths agree.

    Relative position bias and rotary position encoding (mmpose's ``use_rel_bias`` /
    ``pos_enc``, unused by every RTMPose config) and cross-attention are not implemented:
    they are refused, never silently dropped.

    Raises:
        ModelConfigError: For an unsupported option or activation.
    """

    def __init__(
        self,
        num_token: int,
        in_token_dims: int,
        out_token_dims: int,
        expansion_factor: float = 2,
        s: int = 128,
        eps: float = 1e-5,
        dropout_rate: float = 0.0,
        drop_path: float = 0.0,
        attn_type: str = "self-attn",
        act_fn: str = "SiLU",
        bias: bool = False,
        use_rel_bias: bool = True,
        pos_enc: bool = False,
    ) -> None:
        super().__init__()
        if attn_type != "self-attn":
            raise ModelConfigError(f"gau attn_type: only 'self-attn' is supported, got {attn_type!r}")
        if use_rel_bias or pos_enc:
            raise ModelConfigError(
                "gau_cfg: use_rel_bias=True / pos_enc=True are not supported (RTMPose configs set both False)"
            )
        if act_fn not in ("SiLU", "ReLU"):
            raise ModelConfigError(f"gau_cfg.act_fn: expected 'SiLU' or 'ReLU', got {act_fn!r}")
        del dropout_rate, drop_path  # training only
        self.s = s
        self.num_token = num_token
        self.e = int(in_token_dims * expansion_factor)
        self.o = nn.Linear(self.e, out_token_dims, bias=bias)
        self.uv = nn.Linear(in_token_dims, 2 * self.e + self.s, bias=bias)
        self.gamma = nn.Parameter(torch.rand((2, self.s)))
        self.beta = nn.Parameter(torch.rand((2, self.s)))
        self.ln = ScaleNorm(in_token_dims, eps=eps)
        self.act_fn: nn.Module = nn.SiLU() if act_fn == "SiLU" else nn.ReLU()
        self.shortcut = in_token_dims == out_token_dims
        if self.shortcut:
            self.res_scale = Scale(in_token_dims)
        self.sqrt_s = math.sqrt(s)

    def _attend(self, x: Tensor) -> Tensor:
        uv = self.act_fn(self.uv(self.ln(x)))
        u, v, base = torch.split(uv, [self.e, self.e, self.s], dim=2)
        base = base.unsqueeze(2) * self.gamma[None, None, :] + self.beta  # (B, K, 2, s)
        q, k = torch.unbind(base, dim=2)
        kernel = torch.square(torch.relu(torch.bmm(q, k.permute(0, 2, 1)) / self.sqrt_s))
        return self.o(u * torch.bmm(kernel, v))

    def forward(self, x: Tensor) -> Tensor:
        out = self._attend(x)
        return self.res_scale(x) + out if self.shortcut else out


@register()
class RTMCCHead(nn.Module):
    """mmpose's ``RTMCCHead``: SimCC x / y logits per keypoint from the last feature map.

    Args:
        in_channels: Channels of the selected backbone feature map.
        out_channels: Keypoints (17 for COCO).
        input_size: Model input ``(w, h)``.
        in_featuremap_size: Feature map ``(w, h)`` (input / 32 for CSPNeXt).
        simcc_split_ratio: Bins per input pixel.
        final_layer_kernel_size: Kernel of ``final_layer`` (7 in RTMPose).
        gau_cfg: ``hidden_dims``, ``s``, ``expansion_factor``, ``act_fn`` (+ training keys).
        input_transform: Only ``'select'``.
        input_index: Which backbone output to use (an int).
        align_corners, loss, decoder, init_cfg: Accepted, unused at inference (the decoder
            is read by :mod:`detectors.topdown` from the config).

    Raises:
        ModelConfigError: For an option this implementation does not support.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        input_size: Sequence[int],
        in_featuremap_size: Sequence[int],
        simcc_split_ratio: float = 2.0,
        final_layer_kernel_size: int = 1,
        gau_cfg: Mapping[str, Any] | None = None,
        input_transform: str = "select",
        input_index: int = -1,
        align_corners: bool = False,
        loss: Any = None,
        decoder: Any = None,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        if not isinstance(in_channels, int):
            raise ModelConfigError(f"head.in_channels: expected an int (one feature map), got {in_channels!r}")
        if input_transform != "select" or not isinstance(input_index, int):
            raise ModelConfigError(
                f"head: only input_transform='select' with an int input_index is supported, "
                f"got {input_transform!r} / {input_index!r}"
            )
        gau = {**_GAU_DEFAULTS, **dict(gau_cfg or {})}
        unknown = sorted(set(gau) - set(_GAU_DEFAULTS))
        if unknown:
            raise ModelConfigError(f"head.gau_cfg: unknown key(s) {unknown}; valid keys: {sorted(_GAU_DEFAULTS)}")
        self.input_index = input_index
        self.input_size = tuple(int(v) for v in input_size)
        self.simcc_split_ratio = float(simcc_split_ratio)
        flatten_dims = int(in_featuremap_size[0]) * int(in_featuremap_size[1])
        hidden = int(gau["hidden_dims"])
        self.final_layer = nn.Conv2d(
            in_channels, out_channels, kernel_size=final_layer_kernel_size, stride=1,
            padding=final_layer_kernel_size // 2,
        )  # fmt: skip
        self.mlp = nn.Sequential(ScaleNorm(flatten_dims), nn.Linear(flatten_dims, hidden, bias=False))
        self.gau = RTMCCBlock(
            out_channels, hidden, hidden, s=int(gau["s"]), expansion_factor=gau["expansion_factor"],
            dropout_rate=gau["dropout_rate"], drop_path=gau["drop_path"], act_fn=str(gau["act_fn"]),
            use_rel_bias=bool(gau["use_rel_bias"]), pos_enc=bool(gau["pos_enc"]),
        )  # fmt: skip
        self.cls_x = nn.Linear(hidden, int(self.input_size[0] * self.simcc_split_ratio), bias=False)
        self.cls_y = nn.Linear(hidden, int(self.input_size[1] * self.simcc_split_ratio), bias=False)

    def forward(self, feats: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        x = self.final_layer(feats[self.input_index])
        x = self.gau(self.mlp(torch.flatten(x, 2)))
        return self.cls_x(x), self.cls_y(x)


def _without_scope(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """An mmpose sub-config without mmengine's ``_scope_`` (``_scope_='mmdet'`` on CSPNeXt)
    and ``init_cfg`` (pretrained-weight URLs, a training matter)."""
    return {k: v for k, v in cfg.items() if k not in ("_scope_", "init_cfg")}


@register()
class TopdownPoseEstimator(nn.Module):
    """mmpose's ``TopdownPoseEstimator`` at inference: ``(simcc_x, simcc_y)`` of normalised crops.

    Args:
        backbone: Backbone config (``_scope_`` / ``init_cfg`` ignored).
        head: Head config (``RTMCCHead``).
        neck: Must be ``None`` (RTMPose has none).
        test_cfg: ``flip_test`` averages each crop's outputs with those of its mirror image
            (keypoints' left/right swapped by ``flip_indices``, x bins reversed), as mmpose does.
        flip_indices: Keypoint order of the mirrored image; default COCO-17's (mmpose takes
            them from the dataset's metainfo).
        data_preprocessor, train_cfg, init_cfg, metainfo: Accepted; normalisation happens
            before the model (:mod:`detectors.topdown`).

    Raises:
        ModelConfigError: For a neck, a head without SimCC outputs, or flip test without
            flip indices for the head's number of keypoints.
    """

    def __init__(
        self,
        backbone: Mapping[str, Any],
        head: Mapping[str, Any],
        neck: Mapping[str, Any] | None = None,
        train_cfg: Any = None,
        test_cfg: Mapping[str, Any] | None = None,
        data_preprocessor: Any = None,
        init_cfg: Any = None,
        metainfo: Any = None,
        flip_indices: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if neck is not None:
            raise ModelConfigError("model.neck: top-down pose models with a neck are not supported")
        self.backbone = build(_without_scope(backbone), where="model.backbone")
        self.head = build(_without_scope(head), where="model.head")
        self.flip_test = bool((test_cfg or {}).get("flip_test", False))
        keypoints = int(head.get("out_channels", 0))
        indices = tuple(flip_indices) if flip_indices is not None else None
        if indices is None and keypoints == len(COCO_FLIP_INDICES):
            indices = COCO_FLIP_INDICES
        if self.flip_test and (indices is None or sorted(indices) != list(range(keypoints))):
            raise ModelConfigError(
                f"model.test_cfg.flip_test: needs the flip_indices of the {keypoints} keypoints (known for "
                "COCO-17); pass model.flip_indices or set model.test_cfg.flip_test=False"
            )
        self.register_buffer(
            "flip_index", torch.tensor(indices or range(keypoints), dtype=torch.long), persistent=False
        )

    def forward(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        if not self.flip_test:
            simcc_x, simcc_y = self.head(self.backbone(inputs))
            return simcc_x, simcc_y
        n = inputs.shape[0]
        both_x, both_y = self.head(self.backbone(torch.cat([inputs, inputs.flip(-1)], dim=0)))
        flip_x = both_x[n:].index_select(1, self.flip_index).flip(-1)
        flip_y = both_y[n:].index_select(1, self.flip_index)
        return (both_x[:n] + flip_x) * 0.5, (both_y[:n] + flip_y) * 0.5
