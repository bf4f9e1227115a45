"""MViTv2 (Li et al., CVPR 2022) with MMAction2 1.x parameter names, and its ``MViTHead``.

The layout follows ``mmaction.models.backbones.MViT`` so that the ``backbone.*`` keys of
MMAction2 model-zoo checkpoints load with ``strict=True``:

* ``patch_embed.projection``: a strided Conv3d (``patch_cfg``), tokens ``(B, T*H*W, C)``;
* ``cls_token`` (and ``pos_embed`` with ``use_abs_pos_embed``);
* ``blocks.<i>``: :class:`MultiScaleBlock` (``norm1``, ``attn``, ``norm2``, ``mlp``, ``proj``
  where the width changes). The attention pools queries, keys and values with depthwise
  Conv3d (``attn.pool_q/k/v`` + LayerNorm ``attn.norm_q/k/v``), adds the decomposed
  relative positional embeddings ``attn.rel_pos_t/h/w`` and, with ``residual_pooling``,
  the pooled query; a block that downscales max-pools its skip path;
* ``norm<s>``: a LayerNorm per output scale (``out_scales``, default the last).

In-place updates of MMAction2's attention (``attn[..., 1:, 1:] += rel``, ``x[..., 1:, :] += q``)
are written as adds of zero-padded tensors and concatenations, which give the same numbers
and export to ONNX. Sizes that depend only on the clip size are read as constants
(:func:`~engines.models.transformer_blocks.static_shape`), so only the batch axis of an
exported graph is dynamic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engines.errors import ModelConfigError
from engines.models.heads import BaseHead, _make_dropout
from engines.models.layers import triple
from engines.models.registry import register
from engines.models.transformer_blocks import (
    Mlp,
    build_layer_norm,
    drop_path_or_identity,
    drop_path_rates,
    static_shape,
)

Size3 = tuple[int, int, int]

#: MMAction2's ``MViT.arch_zoo``.
ARCH_ZOO: dict[str, dict[str, Any]] = {
    "tiny": {"embed_dims": 96, "num_layers": 10, "num_heads": 1, "downscale_indices": [1, 3, 8]},
    "small": {"embed_dims": 96, "num_layers": 16, "num_heads": 1, "downscale_indices": [1, 3, 14]},
    "base": {"embed_dims": 96, "num_layers": 24, "num_heads": 1, "downscale_indices": [2, 5, 21]},
    "large": {"embed_dims": 144, "num_layers": 48, "num_heads": 2, "downscale_indices": [2, 8, 44]},
}
_ARCH_KEYS = frozenset({"embed_dims", "num_layers", "num_heads", "downscale_indices"})
_PATCH_KEYS = frozenset({"kernel_size", "stride", "padding", "dilation", "bias", "norm_cfg", "conv_type"})


def rel_pos_index(q_size: int, k_size: int) -> np.ndarray:
    """Row of the resized relative-position table for every (query, key) pair, ``(q_size, k_size)``.

    MMAction2's ``resize_decomposed_rel_pos`` computes these coordinates in float32 and
    truncates them; so does this function (so the gather indices are the same).
    """
    q_ratio = np.float32(max(k_size / q_size, 1.0))
    k_ratio = np.float32(max(q_size / k_size, 1.0))
    q_coords = np.arange(q_size, dtype=np.float32)[:, None] * q_ratio
    k_coords = np.arange(k_size, dtype=np.float32)[None, :] * k_ratio
    coords = (q_coords - k_coords) + np.float32((k_size - 1) * float(k_ratio))
    return coords.astype(np.int64)


def resized_rel_pos(rel_pos: Tensor, q_size: int, k_size: int) -> Tensor:
    """The relative positional embedding of every (query, key) pair along one axis, ``(q, k, C)``.

    A table of another length than ``2 * max(q, k) - 1`` is linearly resized first.
    """
    length = 2 * max(q_size, k_size) - 1
    if static_shape(rel_pos)[0] != length:
        rel_pos = F.interpolate(rel_pos.transpose(0, 1).unsqueeze(0), size=length, mode="linear")
        rel_pos = rel_pos.squeeze(0).transpose(0, 1)
    return rel_pos[torch.from_numpy(rel_pos_index(q_size, k_size))]


def attention_pool(
    x: Tensor, pool: nn.Module, in_size: Size3, with_cls_token: bool, norm: nn.Module | None = None
) -> tuple[Tensor, Size3]:
    """Pool the tokens ``(B, heads, L, C)`` (or ``(B, L, C)``) of a ``T×H×W`` grid, keeping the class token.

    Returns:
        The pooled tokens in the input's layout, and the pooled grid size.
    """
    squeeze = x.dim() == 3
    if squeeze:
        x = x.unsqueeze(1)
    _, heads, _, c = static_shape(x)
    if with_cls_token:
        cls_tok, x = x[:, :, :1, :], x[:, :, 1:, :]
    x = pool(x.reshape(-1, *in_size, c).permute(0, 4, 1, 2, 3))
    out = static_shape(x)
    out_size: Size3 = (out[2], out[3], out[4])
    x = x.reshape(-1, heads, c, out[2] * out[3] * out[4]).transpose(2, 3)
    if with_cls_token:
        x = torch.cat((cls_tok, x), dim=2)
    if norm is not None:
        x = norm(x)
    return (x.squeeze(1) if squeeze else x), out_size


class MultiScaleAttention(nn.Module):
    """Pooling attention with decomposed relative positional embeddings (MViTv2).

    Args:
        in_dims: Input token width.
        out_dims: Output token width.
        num_heads: Attention heads.
        qkv_bias: Bias on ``qkv``.
        norm_cfg: LayerNorm config of the pooled q/k/v.
        pool_kernel: Kernel of the q/k/v pooling convs.
        stride_q: Stride of the query pooling.
        stride_kv: Stride of the key/value pooling.
        rel_pos_embed: Add the relative positional embeddings ``rel_pos_t/h/w``.
        residual_pooling: Add the pooled query to the attention output.
        input_size: ``(T, H, W)`` token grid the tables are sized for (needed with ``rel_pos_embed``).
        rel_pos_zero_init: Training-only; ignored.
        with_cls_token: The first token is a class token.

    Raises:
        ModelConfigError: If ``rel_pos_embed`` is set without a square ``input_size``.
    """

    def __init__(
        self,
        in_dims: int,
        out_dims: int,
        num_heads: int,
        qkv_bias: bool = True,
        norm_cfg: Mapping[str, Any] | None = None,
        pool_kernel: Size3 = (3, 3, 3),
        stride_q: Sequence[int] = (1, 1, 1),
        stride_kv: Sequence[int] = (1, 1, 1),
        rel_pos_embed: bool = True,
        residual_pooling: bool = True,
        input_size: Sequence[int] | None = None,
        rel_pos_zero_init: bool = False,
        with_cls_token: bool = True,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.with_cls_token = with_cls_token
        self.in_dims = in_dims
        self.out_dims = out_dims
        head_dim = out_dims // num_heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(in_dims, out_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(out_dims, out_dims)
        padding = triple([k // 2 for k in pool_kernel], "MViT.pool_kernel")

        def pooling(stride: Sequence[int]) -> tuple[nn.Conv3d, nn.LayerNorm]:
            strides = triple(list(stride), "MViT stride")
            conv = nn.Conv3d(
                head_dim, head_dim, pool_kernel, stride=strides, padding=padding, groups=head_dim, bias=False
            )
            return conv, build_layer_norm(norm_cfg, head_dim)

        self.pool_q, self.norm_q = pooling(stride_q)
        self.pool_k, self.norm_k = pooling(stride_kv)
        self.pool_v, self.norm_v = pooling(stride_kv)
        self.residual_pooling = residual_pooling
        self.rel_pos_embed = rel_pos_embed
        if rel_pos_embed:
            if input_size is None or input_size[1] != input_size[2]:
                raise ModelConfigError(
                    f"MViT: rel_pos_embed needs a square token grid, got input_size {input_size!r}; "
                    "set spatial_size to the (square) crop size"
                )
            size = input_size[1]
            rel_dim = 2 * max(size // stride_q[1], size // stride_kv[1]) - 1
            self.rel_pos_h = nn.Parameter(torch.zeros(rel_dim, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(rel_dim, head_dim))
            self.rel_pos_t = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))

    def _rel_pos(self, q: Tensor, q_shape: Size3, k_shape: Size3) -> Tensor:
        """The decomposed relative positional term ``(B, heads, Nq, Nk)`` of the grid tokens."""
        start = 1 if self.with_cls_token else 0
        _, heads, _, c = static_shape(q)
        rt = resized_rel_pos(self.rel_pos_t, q_shape[0], k_shape[0])
        rh = resized_rel_pos(self.rel_pos_h, q_shape[1], k_shape[1])
        rw = resized_rel_pos(self.rel_pos_w, q_shape[2], k_shape[2])
        r_q = q[:, :, start:].reshape(-1, heads, *q_shape, c)
        rel_t = torch.einsum("bythwc,tkc->bythwk", r_q, rt)
        rel_h = torch.einsum("bythwc,hkc->bythwk", r_q, rh)
        rel_w = torch.einsum("bythwc,wkc->bythwk", r_q, rw)
        rel = (
            rel_t[:, :, :, :, :, :, None, None]
            + rel_h[:, :, :, :, :, None, :, None]
            + rel_w[:, :, :, :, :, None, None, :]
        )
        nq = q_shape[0] * q_shape[1] * q_shape[2]
        nk = k_shape[0] * k_shape[1] * k_shape[2]
        return rel.reshape(-1, heads, nq, nk)

    def forward(self, x: Tensor, in_size: Size3) -> tuple[Tensor, Size3]:
        """Attend over ``(B, N, C)`` tokens of an ``in_size`` grid; returns the tokens and the query grid."""
        _, n, _ = static_shape(x)
        qkv = self.qkv(x).reshape(-1, n, 3, self.num_heads, self.out_dims // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        cls = self.with_cls_token
        q, q_shape = attention_pool(q, self.pool_q, in_size, cls, self.norm_q)
        k, k_shape = attention_pool(k, self.pool_k, in_size, cls, self.norm_k)
        v, _ = attention_pool(v, self.pool_v, in_size, cls, self.norm_v)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        if self.rel_pos_embed:
            rel = self._rel_pos(q, q_shape, k_shape)
            if cls:  # MMAction2 adds it to the grid tokens only
                rel = F.pad(rel, (1, 0, 1, 0))
            attn = attn + rel
        x = attn.softmax(dim=-1) @ v
        if self.residual_pooling:
            x = torch.cat((x[:, :, :1], x[:, :, 1:] + q[:, :, 1:]), dim=2) if cls else x + q
        x = x.transpose(1, 2).reshape(-1, static_shape(x)[2], self.out_dims)
        return self.proj(x), q_shape


class MultiScaleBlock(nn.Module):
    """LayerNorm → pooling attention (+ pooled skip) → LayerNorm → MLP, with residuals.

    Args:
        in_dims: Input token width.
        out_dims: Output token width.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width over its input width.
        qkv_bias: Bias on ``qkv``.
        drop_path: Stochastic depth rate (identity in eval).
        norm_cfg: LayerNorm config.
        act_cfg: MLP activation.
        qkv_pool_kernel: Kernel of the q/k/v pooling.
        stride_q: Query pooling stride (> 1 downscales the block).
        stride_kv: Key/value pooling stride.
        rel_pos_embed: See :class:`MultiScaleAttention`.
        residual_pooling: See :class:`MultiScaleAttention`.
        with_cls_token: The first token is a class token.
        dim_mul_in_attention: Widen in the attention (else in the MLP).
        input_size: ``(T, H, W)`` token grid at init.
        rel_pos_zero_init: Training-only; ignored.
    """

    def __init__(
        self,
        in_dims: int,
        out_dims: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        norm_cfg: Mapping[str, Any] | None = None,
        act_cfg: Mapping[str, Any] | None = None,
        qkv_pool_kernel: Size3 = (3, 3, 3),
        stride_q: Sequence[int] = (1, 1, 1),
        stride_kv: Sequence[int] = (1, 1, 1),
        rel_pos_embed: bool = True,
        residual_pooling: bool = True,
        with_cls_token: bool = True,
        dim_mul_in_attention: bool = True,
        input_size: Size3 | None = None,
        rel_pos_zero_init: bool = False,
    ) -> None:
        super().__init__()
        self.with_cls_token = with_cls_token
        self.in_dims = in_dims
        self.out_dims = out_dims
        self.dim_mul_in_attention = dim_mul_in_attention
        self.norm1 = build_layer_norm(norm_cfg, in_dims)
        attn_dims = out_dims if dim_mul_in_attention else in_dims
        self.attn = MultiScaleAttention(
            in_dims,
            attn_dims,
            num_heads,
            qkv_bias=qkv_bias,
            norm_cfg=norm_cfg,
            pool_kernel=qkv_pool_kernel,
            stride_q=stride_q,
            stride_kv=stride_kv,
            rel_pos_embed=rel_pos_embed,
            residual_pooling=residual_pooling,
            input_size=input_size,
            with_cls_token=with_cls_token,
        )
        self.drop_path = drop_path_or_identity(drop_path)
        self.norm2 = build_layer_norm(norm_cfg, attn_dims)
        self.mlp = Mlp(attn_dims, int(attn_dims * mlp_ratio), out_dims, act_cfg=act_cfg)
        self.proj = nn.Linear(in_dims, out_dims) if in_dims != out_dims else None
        self.pool_skip: nn.MaxPool3d | None = None
        self.init_out_size: Size3 | None = input_size
        if int(np.prod(stride_q)) > 1:
            kernel = tuple(s + 1 if s > 1 else s for s in stride_q)
            self.pool_skip = nn.MaxPool3d(kernel, tuple(stride_q), tuple(k // 2 for k in kernel), ceil_mode=False)
            if input_size is not None:
                self.init_out_size = (
                    input_size[0] // stride_q[0],
                    input_size[1] // stride_q[1],
                    input_size[2] // stride_q[2],
                )

    def forward(self, x: Tensor, in_size: Size3) -> tuple[Tensor, Size3]:
        x_norm = self.norm1(x)
        x_attn, out_size = self.attn(x_norm, in_size)
        skip = self.proj(x_norm) if self.dim_mul_in_attention and self.proj is not None else x
        if self.pool_skip is not None:
            skip, _ = attention_pool(skip, self.pool_skip, in_size, self.with_cls_token)
        x = skip + self.drop_path(x_attn)
        x_norm = self.norm2(x)
        x_mlp = self.mlp(x_norm)
        skip = self.proj(x_norm) if not self.dim_mul_in_attention and self.proj is not None else x
        return skip + self.drop_path(x_mlp), out_size


class PatchEmbed3D(nn.Module):
    """Strided Conv3d (``projection``) turning a clip into ``(B, T*H*W, C)`` tokens, optional LayerNorm."""

    def __init__(
        self,
        in_channels: int,
        embed_dims: int,
        kernel_size: Sequence[int] | int = (3, 7, 7),
        stride: Sequence[int] | int | None = (2, 4, 4),
        padding: Sequence[int] | int = (1, 3, 3),
        dilation: Sequence[int] | int = 1,
        bias: bool = True,
        norm_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(padding, str):
            # MMAction2 builds adaptive padding for strings but its forward fails on 5-D clips.
            raise ModelConfigError(
                f"MViT.patch_cfg.padding: only explicit (t, h, w) padding works, got {padding!r} "
                "(MMAction2's adaptive padding fails on clips)"
            )
        kernel = triple(kernel_size, "MViT.patch_cfg.kernel_size")
        strides = kernel if stride is None else triple(stride, "MViT.patch_cfg.stride")
        self.projection = nn.Conv3d(
            in_channels,
            embed_dims,
            kernel,
            stride=strides,
            padding=triple(padding, "MViT.patch_cfg.padding"),
            dilation=triple(dilation, "MViT.patch_cfg.dilation"),
            bias=bias,
        )
        self.norm = build_layer_norm(norm_cfg, embed_dims) if norm_cfg is not None else None

    def out_size(self, size: Size3) -> Size3:
        """Token grid of a ``(T, H, W)`` clip."""
        conv = self.projection
        dilation = triple(conv.dilation, "dilation")
        padding = triple(conv.padding, "padding")  # type: ignore[arg-type]  # ints here, never a string
        dims = [
            (s + 2 * p - d * (k - 1) - 1) // st + 1
            for s, p, d, k, st in zip(size, padding, dilation, conv.kernel_size, conv.stride, strict=True)
        ]
        return (dims[0], dims[1], dims[2])

    def forward(self, x: Tensor) -> tuple[Tensor, Size3]:
        x = self.projection(x)
        _, _, t, h, w = static_shape(x)
        x = x.flatten(2).transpose(1, 2)
        if self.norm is not None:
            x = self.norm(x)
        return x, (t, h, w)


def _arch_settings(arch: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(arch, str):
        settings = ARCH_ZOO.get(arch.lower())
        if settings is None:
            raise ModelConfigError(f"MViT.arch: unknown arch {arch!r}; valid archs: {', '.join(ARCH_ZOO)}")
        return dict(settings)
    if not isinstance(arch, Mapping) or not _ARCH_KEYS <= set(arch):
        raise ModelConfigError(
            f"MViT.arch: a custom arch is a dict with the keys {', '.join(sorted(_ARCH_KEYS))} "
            f"(and optionally dim_mul_indices), got {arch!r}"
        )
    return dict(arch)


@register()
class MViT(nn.Module):
    """MViTv2 backbone: ``(N, C, T, H, W)`` clips → per output scale ``[patch tokens, class token]``.

    The output is a tuple with one entry per ``out_scales`` index: ``[patch (N, C', T', H', W'),
    cls (N, C')]`` with ``output_cls_token``, else the patch map alone; :class:`MViTHead`
    scores the last one.

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'``, ``'large'`` or a dict with ``embed_dims``,
            ``num_layers``, ``num_heads``, ``downscale_indices`` (and optionally ``dim_mul_indices``).
        spatial_size: Crop size the positional tables are sized for.
        temporal_size: Clip length the positional tables are sized for.
        in_channels: Input channels.
        pretrained: Training-only; ignored.
        pretrained_type: Training-only; ignored.
        out_scales: Output scale index or indices (negative counts from the end).
        drop_path_rate: Largest stochastic depth rate (identity in eval).
        use_abs_pos_embed: Add a learned absolute position embedding (``pos_embed``), resized to the clip.
        interpolate_mode: Resize mode of ``pos_embed``.
        pool_kernel: Kernel of the q/k/v pooling.
        dim_mul: Width multiplier at ``dim_mul_indices``.
        head_mul: Head multiplier at the downscale / width layers.
        adaptive_kv_stride: Key/value pooling stride of the first layer (halved at each downscale).
        rel_pos_embed: Decomposed relative positional embeddings.
        residual_pooling: Residual pooled query in the attention.
        dim_mul_in_attention: Widen in the attention (else in the MLP).
        with_cls_token: Prepend a class token.
        output_cls_token: Output the class token (needs ``with_cls_token``).
        rel_pos_zero_init: Training-only; ignored.
        mlp_ratio: MLP hidden width over its input width.
        qkv_bias: Bias on ``qkv``.
        norm_cfg: LayerNorm config (default ``dict(type='LN', eps=1e-6)``).
        patch_cfg: Patch embedding ``kernel_size`` / ``stride`` / ``padding`` (and ``dilation``, ``bias``,
            ``norm_cfg``).
        init_cfg: Ignored (weights come from checkpoints).

    Raises:
        ModelConfigError: For an unknown arch or out-of-range values.
    """

    num_extra_tokens = 1

    def __init__(
        self,
        arch: str | Mapping[str, Any] = "base",
        spatial_size: int = 224,
        temporal_size: int = 16,
        in_channels: int = 3,
        pretrained: str | None = None,
        pretrained_type: str | None = None,
        out_scales: int | Sequence[int] = -1,
        drop_path_rate: float = 0.0,
        use_abs_pos_embed: bool = False,
        interpolate_mode: str = "trilinear",
        pool_kernel: Sequence[int] = (3, 3, 3),
        dim_mul: int = 2,
        head_mul: int = 2,
        adaptive_kv_stride: Sequence[int] = (1, 8, 8),
        rel_pos_embed: bool = True,
        residual_pooling: bool = True,
        dim_mul_in_attention: bool = True,
        with_cls_token: bool = True,
        output_cls_token: bool = True,
        rel_pos_zero_init: bool = False,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_cfg: Mapping[str, Any] | None = None,
        patch_cfg: Mapping[str, Any] | None = None,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        settings = _arch_settings(arch)
        self.embed_dims = int(settings["embed_dims"])
        self.num_layers = int(settings["num_layers"])
        self.num_heads = int(settings["num_heads"])
        self.downscale_indices = [int(i) for i in settings["downscale_indices"]]
        self.dim_mul_indices = [int(i) for i in settings.get("dim_mul_indices", self.downscale_indices)]
        self.num_scales = len(self.downscale_indices) + 1
        self.stage_indices = {index - 1: i for i, index in enumerate(self.downscale_indices)}
        self.stage_indices[self.num_layers - 1] = self.num_scales - 1
        scales = [out_scales] if isinstance(out_scales, int) else list(out_scales)
        resolved = [s + self.num_scales if s < 0 else s for s in scales]
        if not all(0 <= s < self.num_scales for s in resolved):
            raise ModelConfigError(f"MViT.out_scales: expected indices below {self.num_scales}, got {out_scales!r}")
        self.out_scales = sorted(resolved)
        if output_cls_token and not with_cls_token:
            raise ModelConfigError("MViT: output_cls_token=True needs with_cls_token=True")
        if interpolate_mode not in ("nearest", "linear", "bilinear", "bicubic", "trilinear"):
            raise ModelConfigError(f"MViT.interpolate_mode: unknown mode {interpolate_mode!r}")
        patch = dict(patch_cfg) if patch_cfg is not None else {}
        unknown = sorted(set(patch) - _PATCH_KEYS)
        if unknown:
            raise ModelConfigError(
                f"MViT.patch_cfg: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"valid keys: {', '.join(sorted(_PATCH_KEYS))}"
            )
        if patch.pop("conv_type", "Conv3d") != "Conv3d":
            raise ModelConfigError("MViT.patch_cfg.conv_type: only 'Conv3d' is supported")
        patch = {"kernel_size": (3, 7, 7), "stride": (2, 4, 4), "padding": (1, 3, 3), **patch}
        norm_cfg = norm_cfg if norm_cfg is not None else {"type": "LN", "eps": 1e-6}
        self.with_cls_token = with_cls_token
        self.output_cls_token = output_cls_token
        self.use_abs_pos_embed = use_abs_pos_embed
        self.interpolate_mode = interpolate_mode

        self.patch_embed = PatchEmbed3D(in_channels, self.embed_dims, **patch)
        self.patch_resolution = self.patch_embed.out_size((temporal_size, spatial_size, spatial_size))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))
        if use_abs_pos_embed:
            num_patches = int(np.prod(self.patch_resolution))
            self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + self.num_extra_tokens, self.embed_dims))

        rates = drop_path_rates(drop_path_rate, self.num_layers)
        kernel = triple(list(pool_kernel), "MViT.pool_kernel")
        self.blocks = nn.ModuleList()
        dims = [self.embed_dims]
        heads = self.num_heads
        stride_kv = list(adaptive_kv_stride)
        input_size: Size3 | None = self.patch_resolution
        for i in range(self.num_layers):
            if i in self.downscale_indices or i in self.dim_mul_indices:
                heads *= head_mul
            if i in self.downscale_indices:
                stride_q = [1, 2, 2]
                stride_kv = [max(s // 2, 1) for s in stride_kv]
            else:
                stride_q = [1, 1, 1]
            if dim_mul_in_attention and i in self.dim_mul_indices:
                out_dims = dims[-1] * dim_mul
            elif not dim_mul_in_attention and i + 1 in self.dim_mul_indices:
                out_dims = dims[-1] * dim_mul
            else:
                out_dims = dims[-1]
            block = MultiScaleBlock(
                dims[-1],
                out_dims,
                heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                drop_path=rates[i],
                norm_cfg=norm_cfg,
                qkv_pool_kernel=(kernel[0], kernel[1], kernel[2]),
                stride_q=stride_q,
                stride_kv=stride_kv,
                rel_pos_embed=rel_pos_embed,
                residual_pooling=residual_pooling,
                with_cls_token=with_cls_token,
                dim_mul_in_attention=dim_mul_in_attention,
                input_size=input_size,
            )
            self.blocks.append(block)
            input_size = block.init_out_size
            dims.append(out_dims)
            stage = self.stage_indices.get(i)
            if stage is not None and stage in self.out_scales:
                self.add_module(f"norm{stage}", build_layer_norm(norm_cfg, out_dims))

    def _pos_embed(self, size: Size3) -> Tensor:
        """``pos_embed`` resized from the init token grid to ``size`` (MMAction2's ``resize_pos_embed``)."""
        if size == self.patch_resolution:
            return self.pos_embed
        c = static_shape(self.pos_embed)[2]
        extra = self.pos_embed[:, : self.num_extra_tokens]
        grid = self.pos_embed[:, self.num_extra_tokens :].reshape(1, *self.patch_resolution, c).permute(0, 4, 1, 2, 3)
        grid = F.interpolate(grid, size=size, align_corners=False, mode=self.interpolate_mode)
        return torch.cat((extra, grid.flatten(2).transpose(1, 2)), dim=1)

    def forward(self, x: Tensor) -> tuple[Any, ...]:
        """Features of ``(N, C, T, H, W)`` clips, one entry per output scale (see the class docstring)."""
        x, size = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        if self.use_abs_pos_embed:
            x = x + self._pos_embed(size)
        if not self.with_cls_token:
            x = x[:, 1:]
        outs: list[Any] = []
        for i, block in enumerate(self.blocks):
            x, size = block(x, size)
            stage = self.stage_indices.get(i)
            if stage is None or stage not in self.out_scales:
                continue
            x = getattr(self, f"norm{stage}")(x)
            tokens = x.transpose(1, 2)
            c = static_shape(tokens)[1]
            if self.with_cls_token:
                patch_token = tokens[:, :, 1:].reshape(-1, c, *size)
                outs.append([patch_token, tokens[:, :, 0]] if self.output_cls_token else patch_token)
            else:
                outs.append(tokens.reshape(-1, c, *size))
        return tuple(outs)


@register()
class MViTHead(BaseHead):
    """MViT head: the last scale's class token (or mean patch token), dropout, ``fc_cls``.

    Args:
        num_classes: Number of classes.
        in_channels: Channels of the input feature.
        dropout_ratio: Dropout before ``fc_cls`` (identity in eval).
        init_std: Ignored (training only).
        init_scale: Ignored (training only).
        with_cls_token: Score the class token; else the mean of the patch tokens.
        **kwargs: :class:`BaseHead` arguments.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        dropout_ratio: float = 0.5,
        init_std: float = 0.02,
        init_scale: float = 1.0,
        with_cls_token: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, in_channels, **kwargs)
        self.dropout_ratio = dropout_ratio
        self.with_cls_token = with_cls_token
        self.dropout = _make_dropout(dropout_ratio)
        self.fc_cls = nn.Linear(in_channels, num_classes)

    def forward(self, x: Sequence[Any], num_segs: int = 1) -> Tensor:
        """Scores ``(N, num_classes)`` from :class:`MViT`'s output."""
        last = x[-1]
        feat = last[1] if self.with_cls_token else last.mean(dim=(2, 3, 4))
        if self.dropout is not None:
            feat = self.dropout(feat)
        return self.fc_cls(feat)
