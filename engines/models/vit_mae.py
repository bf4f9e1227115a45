"""VideoMAE / VideoMAE V2 ViT backbone (MMAction2's ``VisionTransformer`` in ``vit_mae.py``).

Tubelet patches (a ``Conv3d`` of ``tubelet_size x patch_size x patch_size``) become tokens,
a sine-cosine (default) or learned position embedding is added, then ``depth`` pre-norm
blocks of :class:`~engines.models.transformer_blocks.QVBiasAttention` and an mmcv
:class:`~engines.models.transformer_blocks.FFN`. With ``use_mean_pooling`` (the zoo's
choice) the output is ``fc_norm(mean over tokens)``, shape ``(N, embed_dims)``; otherwise
``norm(x)[:, 0]``. Parameter and buffer names are MMAction2's (``patch_embed.projection``,
``pos_embed``, ``blocks.<i>.attn.q_bias``, ``blocks.<i>.mlp.layers.0.0``, ``fc_norm``), so
its checkpoints load strictly. Dropout and drop path are the identity in eval mode.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engines.errors import InputShapeError, ModelConfigError
from engines.models.registry import register
from engines.models.transformer_blocks import (
    FFN,
    PatchEmbed,
    QVBiasAttention,
    build_layer_norm,
    drop_path_or_identity,
    drop_path_rates,
    sinusoid_encoding,
)

_DEFAULT_NORM = {"type": "LN", "eps": 1e-6}


class Block(nn.Module):
    """Pre-norm ViT block: ``x + attn(norm1(x))``, ``x + mlp(norm2(x))``, optional layer scale.

    Args:
        embed_dims: Token width.
        num_heads: Attention heads.
        mlp_ratio: Hidden width of the MLP over ``embed_dims``.
        qkv_bias: Learn query and value biases.
        qk_scale: Query scale override.
        drop_rate: Dropout after attention and MLP (identity in eval).
        attn_drop_rate: Dropout on attention weights (identity in eval).
        drop_path_rate: Stochastic depth (identity in eval).
        init_values: A float > 0 adds the layer-scale parameters ``gamma_1`` / ``gamma_2``
            (MMAction2 tests ``type(init_values) == float``, so an int adds none).
        norm_cfg: Layer-norm config.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        init_values: float = 0.0,
        norm_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        norm_cfg = norm_cfg or _DEFAULT_NORM
        self.norm1 = build_layer_norm(norm_cfg, embed_dims, "VisionTransformer.norm_cfg")
        self.attn = QVBiasAttention(embed_dims, num_heads, qkv_bias, qk_scale, attn_drop_rate, drop_rate)
        self.drop_path = drop_path_or_identity(drop_path_rate)
        self.norm2 = build_layer_norm(norm_cfg, embed_dims, "VisionTransformer.norm_cfg")
        self.mlp = FFN(
            embed_dims, int(embed_dims * mlp_ratio), act_cfg={"type": "GELU"}, ffn_drop=drop_rate, add_identity=False
        )
        self.gamma_1: nn.Parameter | None = None
        self.gamma_2: nn.Parameter | None = None
        if type(init_values) is float and init_values > 0:
            self.gamma_1 = nn.Parameter(init_values * torch.ones(embed_dims))
            self.gamma_2 = nn.Parameter(init_values * torch.ones(embed_dims))

    def forward(self, x: Tensor) -> Tensor:
        if self.gamma_1 is not None and self.gamma_2 is not None:
            x = x + self.drop_path(self.gamma_1 * self.attn(self.norm1(x)))
            return x + self.drop_path(self.gamma_2 * self.mlp(self.norm2(x)))
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


@register()
class VisionTransformer(nn.Module):
    """VideoMAE's video ViT with MMAction2's arguments and parameter names.

    Args:
        img_size: Side of the square input the position table is built for.
        patch_size: Spatial patch side.
        in_channels: Input channels.
        embed_dims: Token width.
        depth: Number of blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width over ``embed_dims``.
        qkv_bias: Learn query and value biases.
        qk_scale: Query scale override.
        drop_rate: Dropout rate (identity in eval).
        attn_drop_rate: Attention dropout rate (identity in eval).
        drop_path_rate: Largest stochastic-depth rate (identity in eval).
        norm_cfg: Layer-norm config, ``dict(type='LN', eps=1e-6)``.
        init_values: Layer-scale init (a float > 0 adds ``gamma_1`` / ``gamma_2``).
        use_learnable_pos_emb: A learned ``pos_embed`` parameter instead of the sine-cosine buffer.
        num_frames: Frames per clip the position table is built for.
        tubelet_size: Frames per patch.
        use_mean_pooling: Output ``fc_norm(mean of tokens)``; otherwise ``norm(x)[:, 0]``.
        pretrained: Ignored (weights come from checkpoints).
        return_feat_map: Return the token map ``(N, C, T', H', W')`` instead of a vector.
        init_cfg: Ignored.

    Raises:
        ModelConfigError: For sizes that do not fit together or a non-LN ``norm_cfg``.
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_channels: int = 3,
        embed_dims: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_cfg: Mapping[str, Any] | None = None,
        init_values: float = 0.0,
        use_learnable_pos_emb: bool = False,
        num_frames: int = 16,
        tubelet_size: int = 2,
        use_mean_pooling: bool = True,
        pretrained: str | None = None,
        return_feat_map: bool = False,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        for name, value in (
            ("img_size", img_size),
            ("patch_size", patch_size),
            ("num_frames", num_frames),
            ("tubelet_size", tubelet_size),
        ):
            if not isinstance(value, int) or value <= 0:
                raise ModelConfigError(f"VisionTransformer.{name}: expected a positive int, got {value!r}")
        if img_size < patch_size or num_frames < tubelet_size:
            raise ModelConfigError(
                f"VisionTransformer: img_size={img_size} / num_frames={num_frames} give no patches "
                f"of {tubelet_size}x{patch_size}x{patch_size}"
            )
        norm_cfg = norm_cfg or _DEFAULT_NORM
        self.embed_dims = embed_dims
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        self.num_frames = num_frames
        self.patch_embed = PatchEmbed(in_channels, embed_dims, (tubelet_size, patch_size, patch_size))
        grid = img_size // patch_size
        self.grid_size = (grid, grid)
        num_patches = grid * grid * (num_frames // tubelet_size)
        self.pos_embed: Tensor
        if use_learnable_pos_emb:
            self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, embed_dims))
        else:
            self.register_buffer("pos_embed", sinusoid_encoding(num_patches, embed_dims))
        self.pos_drop = nn.Dropout(p=drop_rate)
        self.blocks = nn.ModuleList(
            Block(
                embed_dims,
                num_heads,
                mlp_ratio,
                qkv_bias,
                qk_scale,
                drop_rate,
                attn_drop_rate,
                rate,
                init_values,
                norm_cfg,
            )
            for rate in drop_path_rates(drop_path_rate, depth)
        )
        self.fc_norm: nn.LayerNorm | None
        if use_mean_pooling:
            self.norm: nn.Module = nn.Identity()
            self.fc_norm = build_layer_norm(norm_cfg, embed_dims, "VisionTransformer.norm_cfg")
        else:
            self.norm = build_layer_norm(norm_cfg, embed_dims, "VisionTransformer.norm_cfg")
            self.fc_norm = None
        self.return_feat_map = return_feat_map
        self.feat_dim = embed_dims

    def _position_embedding(self, h: int, w: int) -> Tensor:
        """The table for an ``h x w`` patch grid: bicubic resize when it differs from the built one."""
        if (h, w) == self.grid_size:
            return self.pos_embed
        table = self.pos_embed.reshape(-1, *self.grid_size, self.embed_dims).permute(0, 3, 1, 2)
        table = F.interpolate(table, size=(h, w), mode="bicubic", align_corners=False)
        return table.permute(0, 2, 3, 1).flatten(1, 2).reshape(1, -1, self.embed_dims)

    def forward(self, x: Tensor) -> Tensor:
        """Features of clips ``(N, C, T, H, W)``: ``(N, embed_dims)``, or a map with ``return_feat_map``.

        Raises:
            InputShapeError: If the clip is not 5-D or its frame count does not fit ``num_frames``.
        """
        if x.dim() != 5:
            raise InputShapeError(f"VisionTransformer expects (N, C, T, H, W) clips, got shape {tuple(x.shape)}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            t, h, w = int(x.shape[2]), int(x.shape[3]), int(x.shape[4])
        if t // self.tubelet_size != self.num_frames // self.tubelet_size:
            raise InputShapeError(
                f"VisionTransformer was built for num_frames={self.num_frames} (tubelet_size={self.tubelet_size}), "
                f"got clips of {t} frames"
            )
        h //= self.patch_size
        w //= self.patch_size
        x = self.patch_embed(x)
        x = self.pos_drop(x + self._position_embedding(h, w))
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        if self.return_feat_map:
            return x.reshape(x.shape[0], -1, h, w, self.embed_dims).permute(0, 4, 1, 2, 3)
        if self.fc_norm is not None:
            return self.fc_norm(x.mean(1))
        return x[:, 0]
