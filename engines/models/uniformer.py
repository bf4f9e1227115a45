"""UniFormer V1 (Li et al., ICLR 2022) with MMAction2 1.x parameter names.

The layout follows ``mmaction.models.backbones.UniFormer`` so that the ``backbone.*`` keys
of MMAction2 model-zoo checkpoints load with ``strict=True``:

* ``patch_embed1`` … ``patch_embed4``: strided Conv3d (``proj``; the first also halves T with a
  3-frame kernel) then a LayerNorm over the channels (``norm``);
* ``blocks1``, ``blocks2``: :class:`CBlock`, the local relation aggregator: a depthwise 3×3×3
  position conv (``pos_embed``), BatchNorm → 1×1×1 conv → depthwise 5×5×5 conv (``attn``) →
  1×1×1 conv, and a 1×1×1-conv MLP (``mlp.fc1``/``mlp.fc2``) after a second BatchNorm;
* ``blocks3``, ``blocks4``: :class:`SABlock`, the global relation aggregator: the same
  position conv, then multi-head self-attention over all ``T×H×W`` tokens and an MLP, each
  after a LayerNorm;
* ``norm``: a final BatchNorm3d.

The output is the ``(N, C, T/2, H/32, W/32)`` feature map that MMAction2's ``I3DHead`` pools.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from engines.errors import ModelConfigError
from engines.models.registry import register
from engines.models.transformer_blocks import Mlp, drop_path_or_identity, drop_path_rates, static_shape


def _conv(inp: int, oup: int, kernel: tuple[int, int, int], stride: int = 1, groups: int = 1) -> nn.Conv3d:
    """A Conv3d padded to keep the size (odd kernels) at stride 1."""
    padding = (kernel[0] // 2, kernel[1] // 2, kernel[2] // 2)
    return nn.Conv3d(inp, oup, kernel, stride, padding, groups=groups)


class CMlp(nn.Module):
    """MLP of 1×1×1 convs over ``(B, C, T, H, W)``: ``fc1`` → GELU → drop → ``fc2`` → drop."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv3d(in_features, hidden_features, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv3d(hidden_features, in_features, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class CBlock(nn.Module):
    """Local UniFormer block: convolutional relation aggregation in a 5×5×5 neighbourhood.

    Args:
        dim: Channels.
        mlp_ratio: MLP hidden width over ``dim``.
        drop: Dropout rate (identity in eval).
        drop_path: Stochastic depth rate (identity in eval).
    """

    def __init__(self, dim: int, mlp_ratio: float = 4.0, drop: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.pos_embed = _conv(dim, dim, (3, 3, 3), groups=dim)
        self.norm1 = nn.BatchNorm3d(dim)
        self.conv1 = nn.Conv3d(dim, dim, 1)
        self.conv2 = nn.Conv3d(dim, dim, 1)
        self.attn = _conv(dim, dim, (5, 5, 5), groups=dim)
        self.drop_path = drop_path_or_identity(drop_path)
        self.norm2 = nn.BatchNorm3d(dim)
        self.mlp = CMlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.pos_embed(x)
        x = x + self.drop_path(self.conv2(self.attn(self.conv1(self.norm1(x)))))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Attention(nn.Module):
    """Multi-head self-attention over ``(B, N, C)`` tokens (scores scaled after ``q @ k``, as MMAction2)."""

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        _, n, c = static_shape(x)
        qkv = self.qkv(x).reshape(-1, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = self.attn_drop(((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(-1, n, c)
        return self.proj_drop(self.proj(x))


class SABlock(nn.Module):
    """Global UniFormer block: position conv, then self-attention over all tokens and an MLP.

    Args:
        dim: Channels.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width over ``dim``.
        qkv_bias: Bias on ``qkv``.
        qk_scale: Score scale override (default ``head_dim ** -0.5``).
        drop: Dropout rate (identity in eval).
        attn_drop: Attention dropout rate (identity in eval).
        drop_path: Stochastic depth rate (identity in eval).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.pos_embed = _conv(dim, dim, (3, 3, 3), groups=dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, qkv_bias, qk_scale, attn_drop, drop)
        self.drop_path = drop_path_or_identity(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.pos_embed(x)
        _, c, t, h, w = static_shape(x)
        x = x.flatten(2).transpose(1, 2)
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x.transpose(1, 2).reshape(-1, c, t, h, w)


class PatchEmbed(nn.Module):
    """Strided Conv3d (``proj``) then a LayerNorm over the channels (``norm``).

    Args:
        patch_size: Spatial kernel and stride.
        in_chans: Input channels.
        embed_dim: Output channels.
        temporal: Also halve T with a 3-frame kernel (MMAction2's ``SpeicalPatchEmbed``).
    """

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int, temporal: bool = False) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.norm = nn.LayerNorm(embed_dim)
        if temporal:
            self.proj = nn.Conv3d(
                in_chans, embed_dim, (3, patch_size, patch_size), (2, patch_size, patch_size), (1, 0, 0)
            )
        else:
            self.proj = nn.Conv3d(in_chans, embed_dim, (1, patch_size, patch_size), (1, patch_size, patch_size))

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj(x)
        _, c, t, h, w = static_shape(x)
        x = self.norm(x.flatten(2).transpose(1, 2))
        return x.reshape(-1, t, h, w, c).permute(0, 4, 1, 2, 3).contiguous()


@register()
class UniFormer(nn.Module):
    """UniFormer V1 backbone: ``(N, C, T, H, W)`` clips → ``(N, embed_dim[-1], T/2, H/32, W/32)`` features.

    Args:
        depth: Blocks per stage (two local, two global stages).
        img_size: Training crop size; only informative.
        in_chans: Input channels.
        embed_dim: Channels per stage.
        head_dim: Channels per attention head (heads = ``embed_dim[i] // head_dim``).
        mlp_ratio: MLP hidden width over the stage width.
        qkv_bias: Bias on ``qkv``.
        qk_scale: Score scale override.
        drop_rate: Dropout rate (identity in eval).
        attn_drop_rate: Attention dropout rate (identity in eval).
        drop_path_rate: Largest stochastic depth rate (identity in eval).
        pretrained2d: Training-only (2D weights inflated at init); ignored.
        pretrained: Training-only; ignored.
        init_cfg: Ignored (weights come from checkpoints).

    Raises:
        ModelConfigError: If ``depth`` / ``embed_dim`` do not have 4 entries or a width is not a
            multiple of ``head_dim`` in the attention stages.
    """

    def __init__(
        self,
        depth: Sequence[int] = (5, 8, 20, 7),
        img_size: int = 224,
        in_chans: int = 3,
        embed_dim: Sequence[int] = (64, 128, 320, 512),
        head_dim: int = 64,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        pretrained2d: bool = True,
        pretrained: str | None = None,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        depth, dims = [int(d) for d in depth], [int(d) for d in embed_dim]
        if len(depth) != 4 or len(dims) != 4:
            raise ModelConfigError(
                f"UniFormer: depth and embed_dim need 4 entries (one per stage), got {depth} and {dims}"
            )
        if any(dim < head_dim for dim in dims[2:]):
            raise ModelConfigError(
                f"UniFormer: the attention stages need embed_dim >= head_dim={head_dim}, got {dims[2:]}"
            )
        self.depth = depth
        self.embed_dim = dims
        self.patch_embed1 = PatchEmbed(4, in_chans, dims[0], temporal=True)
        self.patch_embed2 = PatchEmbed(2, dims[0], dims[1])
        self.patch_embed3 = PatchEmbed(2, dims[1], dims[2])
        self.patch_embed4 = PatchEmbed(2, dims[2], dims[3])
        self.pos_drop = nn.Dropout(p=drop_rate)
        total = sum(depth)
        rates = drop_path_rates(drop_path_rate, total)
        starts = [sum(depth[:i]) for i in range(4)]
        self.blocks1 = nn.ModuleList(
            CBlock(dims[0], mlp_ratio, drop_rate, rates[starts[0] + i]) for i in range(depth[0])
        )
        self.blocks2 = nn.ModuleList(
            CBlock(dims[1], mlp_ratio, drop_rate, rates[starts[1] + i]) for i in range(depth[1])
        )
        self.blocks3 = nn.ModuleList(
            SABlock(
                dims[2],
                dims[2] // head_dim,
                mlp_ratio,
                qkv_bias,
                qk_scale,
                drop_rate,
                attn_drop_rate,
                rates[starts[2] + i],
            )
            for i in range(depth[2])
        )
        self.blocks4 = nn.ModuleList(
            SABlock(
                dims[3],
                dims[3] // head_dim,
                mlp_ratio,
                qkv_bias,
                qk_scale,
                drop_rate,
                attn_drop_rate,
                rates[starts[3] + i],
            )
            for i in range(depth[3])
        )
        self.norm = nn.BatchNorm3d(dims[3])

    def forward(self, x: Tensor) -> Tensor:
        """Features of ``(N, C, T, H, W)`` clips."""
        x = self.pos_drop(self.patch_embed1(x))
        stages = (
            (None, self.blocks1),
            (self.patch_embed2, self.blocks2),
            (self.patch_embed3, self.blocks3),
            (self.patch_embed4, self.blocks4),
        )
        for embed, blocks in stages:
            if embed is not None:
                x = embed(x)
            for block in blocks:
                x = block(x)
        out: Tensor = self.norm(x)
        return out
