"""Video Swin Transformer (Liu et al., CVPR 2022) with MMAction2 1.x parameter names.

The layout follows ``mmaction.models.backbones.SwinTransformer3D`` so that the
``backbone.*`` keys of MMAction2 model-zoo checkpoints load with ``strict=True``:

* ``patch_embed``: a Conv3d over ``patch_size`` patches (``proj``) and a LayerNorm (``norm``);
* ``layers.<i>``: stages of :class:`SwinTransformerBlock3D` (``blocks.<j>``: ``norm1``,
  ``attn`` (``qkv``, ``proj``, ``relative_position_bias_table`` and the persistent
  ``relative_position_index`` buffer), ``norm2``, ``mlp.fc1``/``mlp.fc2``); every other
  block shifts its windows by half a window; all stages but the last end in
  :class:`PatchMerging` (``downsample.norm``, ``downsample.reduction``);
* ``norm<i>``: a LayerNorm per output stage (``out_indices``, default the last).

Shapes are fixed once a clip size is chosen: the window partition, the cyclic shift
(``torch.roll``) and the attention mask of the shifted windows depend only on ``T×H×W``,
so an exported graph keeps only the batch axis dynamic. The shifted-window masks and the
gathered relative position biases are then constants of the graph: Swin-T at 32×224×224
exports to about 310 MB of ONNX (about 110 MB of it weights).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engines.errors import ModelConfigError
from engines.models.layers import ntuple
from engines.models.registry import register
from engines.models.transformer_blocks import (
    Mlp,
    build_layer_norm,
    drop_path_or_identity,
    drop_path_rates,
    relative_position_index,
    static_shape,
)

Size3 = tuple[int, int, int]

#: MMAction2's ``SwinTransformer3D.arch_zoo``.
_ARCHS: dict[tuple[str, ...], tuple[int, list[int], list[int]]] = {
    ("t", "tiny"): (96, [2, 2, 6, 2], [3, 6, 12, 24]),
    ("s", "small"): (96, [2, 2, 18, 2], [3, 6, 12, 24]),
    ("b", "base"): (128, [2, 2, 18, 2], [4, 8, 16, 32]),
    ("l", "large"): (192, [2, 2, 18, 2], [6, 12, 24, 48]),
}
ARCH_ZOO: dict[str, dict[str, Any]] = {
    name: {"embed_dims": dims, "depths": depths, "num_heads": heads}
    for names, (dims, depths, heads) in _ARCHS.items()
    for name in names
}
_ARCH_KEYS = frozenset({"embed_dims", "depths", "num_heads"})
#: The score MMAction2 adds to attention between tokens of different regions of a shifted window.
MASK_VALUE = -100.0


def window_partition(x: Tensor, window: Size3) -> Tensor:
    """``(B, D, H, W, C)`` → ``(B * windows, wd * wh * ww, C)``; D, H, W must be multiples of the window."""
    _, d, h, w, c = static_shape(x)
    x = x.reshape(-1, d // window[0], window[0], h // window[1], window[1], w // window[2], window[2], c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, math.prod(window), c)


def window_reverse(windows: Tensor, window: Size3, d: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`window_partition`: ``(B * windows, wd, wh, ww, C)`` → ``(B, D, H, W, C)``."""
    c = static_shape(windows)[-1]
    x = windows.reshape(-1, d // window[0], h // window[1], w // window[2], *window, c)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(-1, d, h, w, c)


def window_and_shift(size: Size3, window: Sequence[int], shift: Sequence[int]) -> tuple[Size3, Size3]:
    """The window and shift used for a feature map of ``size``: an axis no longer than its window
    gets one window the size of the axis and no shift (MMAction2's ``get_window_size``)."""
    use_window = [min(s, w) for s, w in zip(size, window, strict=True)]
    use_shift = [0 if s <= w else sh for s, w, sh in zip(size, window, shift, strict=True)]
    return (use_window[0], use_window[1], use_window[2]), (use_shift[0], use_shift[1], use_shift[2])


@lru_cache(maxsize=32)
def _window_regions(size: Size3, window: Size3, shift: Size3) -> np.ndarray:
    """Region id of every token of every shifted window, ``(windows, N)`` (computed once per size)."""
    regions = np.zeros(size, dtype=np.float32)
    count = 0
    slices = [(slice(-w), slice(-w, -s), slice(-s, None)) for w, s in zip(window, shift, strict=True)]
    for sd in slices[0]:
        for sh in slices[1]:
            for sw in slices[2]:
                regions[sd, sh, sw] = count
                count += 1
    d, h, w = size
    blocks = regions.reshape(d // window[0], window[0], h // window[1], window[1], w // window[2], window[2])
    return blocks.transpose(0, 2, 4, 1, 3, 5).reshape(-1, math.prod(window))


def shifted_window_mask(size: Size3, window: Size3, shift: Size3) -> Tensor:
    """Attention mask ``(windows, N, N)`` of the cyclically shifted windows of a ``size`` map.

    After the shift, a window can hold tokens from up to 8 regions that were not neighbours;
    pairs from different regions get :data:`MASK_VALUE`, pairs from one region 0 (as
    MMAction2's ``compute_mask``, including its region slicing when a shift is 0). Built with
    numpy, so an ONNX trace holds it as one constant.
    """
    ids = _window_regions(size, window, shift)
    mask = np.where(ids[:, None, :] != ids[:, :, None], np.float32(MASK_VALUE), np.float32(0.0))
    return torch.from_numpy(mask)


class WindowAttention3D(nn.Module):
    """Multi-head self-attention inside a window, with a learned relative position bias.

    Args:
        embed_dims: Token width.
        window_size: ``(wd, wh, ww)``.
        num_heads: Attention heads.
        qkv_bias: Bias on the ``qkv`` projection.
        qk_scale: Query scale (default ``head_dim ** -0.5``).
        attn_drop: Dropout on attention weights (identity in eval).
        proj_drop: Dropout after ``proj`` (identity in eval).
    """

    def __init__(
        self,
        embed_dims: int,
        window_size: Size3,
        num_heads: int,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.embed_dims = embed_dims
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = qk_scale or (embed_dims // num_heads) ** -0.5
        self.relative_position_index: Tensor
        table_rows = math.prod(2 * w - 1 for w in window_size)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table_rows, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Attend within each window: ``x`` is ``(B * windows, N, C)``; ``mask`` is ``(windows, N, N)``."""
        _, n, c = static_shape(x)
        qkv = self.qkv(x).reshape(-1, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        # A window clipped to a smaller map reuses the top-left N x N of the index, as MMAction2 does.
        index = self.relative_position_index[:n, :n].reshape(-1)
        bias = self.relative_position_bias_table[index].reshape(n, n, -1).permute(2, 0, 1)
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            windows = static_shape(mask)[0]
            attn = attn.reshape(-1, windows, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.reshape(-1, self.num_heads, n, n)
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(-1, n, c)
        return self.proj_drop(self.proj(x))


class SwinTransformerBlock3D(nn.Module):
    """LayerNorm → (shifted) window attention → residual; LayerNorm → MLP → residual.

    Args:
        embed_dims: Token width.
        num_heads: Attention heads.
        window_size: ``(wd, wh, ww)``.
        shift_size: Cyclic shift per axis, each in ``[0, window)``.
        mlp_ratio: MLP hidden width over ``embed_dims``.
        qkv_bias: Bias on ``qkv``.
        qk_scale: Query scale override.
        drop: Dropout rate (identity in eval).
        attn_drop: Attention dropout rate (identity in eval).
        drop_path: Stochastic depth rate (identity in eval).
        act_cfg: MLP activation.
        norm_cfg: LayerNorm config.

    Raises:
        ModelConfigError: If a shift is not in ``[0, window)``.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        window_size: Size3 = (8, 7, 7),
        shift_size: Size3 = (0, 0, 0),
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.1,
        act_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not all(0 <= s < w for s, w in zip(shift_size, window_size, strict=True)):
            raise ModelConfigError(f"SwinTransformer3D: shift {shift_size} must lie in [0, window {window_size})")
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = build_layer_norm(norm_cfg, embed_dims)
        self.attn = WindowAttention3D(embed_dims, window_size, num_heads, qkv_bias, qk_scale, attn_drop, drop)
        self.drop_path = drop_path_or_identity(drop_path)
        self.norm2 = build_layer_norm(norm_cfg, embed_dims)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), act_cfg=act_cfg, drop=drop)

    def _attend(self, x: Tensor, mask: Tensor) -> Tensor:
        _, d, h, w, c = static_shape(x)
        window, shift = window_and_shift((d, h, w), self.window_size, self.shift_size)
        x = self.norm1(x)
        pads = [(window[i] - size % window[i]) % window[i] for i, size in enumerate((d, h, w))]
        x = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
        _, dp, hp, wp, _ = static_shape(x)
        shifted = any(s > 0 for s in shift)
        if shifted:
            x = torch.roll(x, shifts=(-shift[0], -shift[1], -shift[2]), dims=(1, 2, 3))
        windows = self.attn(window_partition(x, window), mask=mask if shifted else None)
        x = window_reverse(windows.reshape(-1, *window, c), window, dp, hp, wp)
        if shifted:
            x = torch.roll(x, shifts=shift, dims=(1, 2, 3))
        if any(pads):
            x = x[:, :d, :h, :w, :]
        return x

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x``: ``(B, D, H, W, C)``; ``mask``: the layer's shifted-window mask."""
        x = x + self.drop_path(self._attend(x, mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Concatenate each 2×2 spatial neighbourhood (padding odd sizes), LayerNorm, halve the width.

    ``(B, D, H, W, C)`` → ``(B, D, ceil(H/2), ceil(W/2), 2C)``.
    """

    def __init__(self, embed_dims: int, norm_cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.embed_dims = embed_dims
        self.out_embed_dims = 2 * embed_dims
        self.reduction = nn.Linear(4 * embed_dims, 2 * embed_dims, bias=False)
        self.norm = build_layer_norm(norm_cfg, 4 * embed_dims)

    def forward(self, x: Tensor) -> Tensor:
        _, _, h, w, _ = static_shape(x)
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        parts = [x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]]
        return self.reduction(self.norm(torch.cat(parts, -1)))


class BasicLayer(nn.Module):
    """One stage: ``depth`` blocks alternating plain and shifted windows, then an optional :class:`PatchMerging`.

    Args:
        embed_dims: Token width.
        depth: Blocks in the stage.
        num_heads: Attention heads.
        window_size: ``(wd, wh, ww)``; the shifted blocks shift by ``window // 2``.
        drop_paths: Stochastic depth rate per block.
        downsample: Whether the stage ends in a :class:`PatchMerging`.
        **block_kwargs: :class:`SwinTransformerBlock3D` arguments.
    """

    def __init__(
        self,
        embed_dims: int,
        depth: int,
        num_heads: int,
        window_size: Size3,
        drop_paths: Sequence[float],
        downsample: bool,
        **block_kwargs: Any,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size: Size3 = (window_size[0] // 2, window_size[1] // 2, window_size[2] // 2)
        self.blocks = nn.ModuleList(
            SwinTransformerBlock3D(
                embed_dims,
                num_heads,
                window_size=window_size,
                shift_size=(0, 0, 0) if i % 2 == 0 else self.shift_size,
                drop_path=drop_paths[i],
                **block_kwargs,
            )
            for i in range(depth)
        )
        norm_cfg = block_kwargs.get("norm_cfg")
        self.downsample: PatchMerging | None = PatchMerging(embed_dims, norm_cfg) if downsample else None
        self.out_embed_dims = 2 * embed_dims if downsample else embed_dims

    def forward(self, x: Tensor, do_downsample: bool = True) -> Tensor:
        """``(B, C, D, H, W)`` → ``(B, D, H, W, C')`` (channels last, merged if ``do_downsample``)."""
        _, _, d, h, w = static_shape(x)
        window, shift = window_and_shift((d, h, w), self.window_size, self.shift_size)
        padded = (math.ceil(d / window[0]) * window[0], math.ceil(h / window[1]) * window[1])
        size = (*padded, math.ceil(w / window[2]) * window[2])
        mask = shifted_window_mask(size, window, shift).to(device=x.device, dtype=x.dtype)
        x = x.permute(0, 2, 3, 4, 1)
        for block in self.blocks:
            x = block(x, mask)
        if self.downsample is not None and do_downsample:
            x = self.downsample(x)
        return x


class PatchEmbed3D(nn.Module):
    """Conv3d over non-overlapping ``patch_size`` patches (padding the clip up), then an optional LayerNorm."""

    def __init__(
        self,
        patch_size: Size3,
        in_channels: int,
        embed_dims: int,
        norm_cfg: Mapping[str, Any] | None,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.embed_dims = embed_dims
        self.proj = nn.Conv3d(in_channels, embed_dims, kernel_size=patch_size, stride=patch_size)
        self.norm = build_layer_norm(norm_cfg, embed_dims) if norm_cfg is not None else None

    def forward(self, x: Tensor) -> Tensor:
        _, _, d, h, w = static_shape(x)
        pt, ph, pw = self.patch_size
        pads = ((pt - d % pt) % pt, (ph - h % ph) % ph, (pw - w % pw) % pw)
        if any(pads):
            x = F.pad(x, (0, pads[2], 0, pads[1], 0, pads[0]))
        x = self.proj(x)
        if self.norm is not None:
            _, _, dp, hp, wp = static_shape(x)
            x = self.norm(x.flatten(2).transpose(1, 2))
            x = x.transpose(1, 2).reshape(-1, self.embed_dims, dp, hp, wp)
        return x


def _arch_settings(arch: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(arch, str):
        settings = ARCH_ZOO.get(arch.lower())
        if settings is None:
            raise ModelConfigError(f"SwinTransformer3D.arch: unknown arch {arch!r}; valid archs: {', '.join(ARCH_ZOO)}")
        return dict(settings)
    if not isinstance(arch, Mapping) or set(arch) != _ARCH_KEYS:
        raise ModelConfigError(
            f"SwinTransformer3D.arch: a custom arch is a dict with exactly the keys "
            f"{', '.join(sorted(_ARCH_KEYS))}, got {arch!r}"
        )
    return dict(arch)


@register()
class SwinTransformer3D(nn.Module):
    """Video Swin Transformer backbone: ``(N, C, T, H, W)`` clips → ``(N, C', T/2, H/32, W/32)`` features.

    With ``patch_size=(2, 4, 4)`` and 4 stages the output is 2× shorter in T and 32× smaller
    in H and W; ``C'`` is ``8 * embed_dims`` (768 for tiny/small, 1024 base, 1536 large).
    Several ``out_indices`` give a tuple of feature maps.

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'``, ``'large'`` (or ``'t'``/``'s'``/``'b'``/``'l'``), or
            a dict with ``embed_dims``, ``depths`` and ``num_heads``.
        pretrained: Training-only (2D weights inflated at init); ignored.
        pretrained2d: Training-only; ignored.
        patch_size: ``(t, h, w)`` patch of the embedding conv.
        in_channels: Input channels.
        window_size: ``(wd, wh, ww)`` attention window (in tokens).
        mlp_ratio: MLP hidden width over token width.
        qkv_bias: Bias on the ``qkv`` projections.
        qk_scale: Query scale override (default ``head_dim ** -0.5``).
        drop_rate: Dropout rate (identity in eval).
        attn_drop_rate: Attention dropout rate (identity in eval).
        drop_path_rate: Largest stochastic depth rate (identity in eval).
        act_cfg: MLP activation (default GELU).
        norm_cfg: LayerNorm config (default ``dict(type='LN')``).
        patch_norm: LayerNorm after the patch embedding.
        frozen_stages: Training-only; ignored.
        with_cp: Training-only; ignored.
        out_indices: Stages whose (normalised) output is returned.
        out_after_downsample: Return a stage's output after its patch merging.
        init_cfg: Ignored (weights come from checkpoints).

    Raises:
        ModelConfigError: For an unknown arch or out-of-range values.
    """

    def __init__(
        self,
        arch: str | Mapping[str, Any],
        pretrained: str | None = None,
        pretrained2d: bool = True,
        patch_size: int | Sequence[int] = (2, 4, 4),
        in_channels: int = 3,
        window_size: Sequence[int] = (8, 7, 7),
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        act_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = None,
        patch_norm: bool = True,
        frozen_stages: int = -1,
        with_cp: bool = False,
        out_indices: Sequence[int] = (3,),
        out_after_downsample: bool = False,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        settings = _arch_settings(arch)
        self.embed_dims = int(settings["embed_dims"])
        self.depths = [int(d) for d in settings["depths"]]
        self.num_heads = [int(h) for h in settings["num_heads"]]
        if len(self.depths) != len(self.num_heads):
            raise ModelConfigError(
                f"SwinTransformer3D.arch: depths {self.depths} and num_heads {self.num_heads} differ in length"
            )
        self.num_layers = len(self.depths)
        if not 1 <= self.num_layers <= 4:
            raise ModelConfigError(f"SwinTransformer3D.arch: expected 1 to 4 stages, got {self.num_layers}")
        self.out_indices = tuple(int(i) for i in out_indices)
        if not self.out_indices or not all(0 <= i < self.num_layers for i in self.out_indices):
            raise ModelConfigError(
                f"SwinTransformer3D.out_indices: expected stage indices in [0, {self.num_layers}), got {out_indices!r}"
            )
        window = ntuple(window_size, 3, "SwinTransformer3D.window_size")
        patch = ntuple(patch_size, 3, "SwinTransformer3D.patch_size")
        self.window_size: Size3 = (window[0], window[1], window[2])
        self.patch_size: Size3 = (patch[0], patch[1], patch[2])
        self.out_after_downsample = out_after_downsample
        norm_cfg = norm_cfg if norm_cfg is not None else {"type": "LN"}
        self.patch_embed = PatchEmbed3D(self.patch_size, in_channels, self.embed_dims, norm_cfg if patch_norm else None)
        self.pos_drop = nn.Dropout(drop_rate)

        total = sum(self.depths)
        rates = drop_path_rates(drop_path_rate, total)
        self.layers = nn.ModuleList()
        dims = [self.embed_dims]
        for i, (depth, heads) in enumerate(zip(self.depths, self.num_heads, strict=True)):
            layer = BasicLayer(
                dims[-1],
                depth,
                heads,
                self.window_size,
                drop_paths=rates[:depth],
                downsample=i < self.num_layers - 1,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop=drop_rate,
                attn_drop=attn_drop_rate,
                act_cfg=act_cfg,
                norm_cfg=norm_cfg,
            )
            rates = rates[depth:]
            self.layers.append(layer)
            dims.append(layer.out_embed_dims)
        self.num_features = dims[1:] if out_after_downsample else dims[:-1]
        for i in self.out_indices:
            self.add_module(f"norm{i}", build_layer_norm(norm_cfg, self.num_features[i]))

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:
        """Features of ``(N, C, T, H, W)`` clips: one ``(N, C', T', H', W')`` map, or a tuple for several outputs."""
        x = self.pos_drop(self.patch_embed(x))
        outs = []
        for i, module in enumerate(self.layers):
            layer = cast(BasicLayer, module)
            x = layer(x, do_downsample=self.out_after_downsample)  # channels last
            if i in self.out_indices:
                outs.append(getattr(self, f"norm{i}")(x).permute(0, 4, 1, 2, 3).contiguous())
            if layer.downsample is not None and not self.out_after_downsample:
                x = layer.downsample(x)
            if i < self.num_layers - 1:
                x = x.permute(0, 4, 1, 2, 3)
        return outs[0] if len(outs) == 1 else tuple(outs)
