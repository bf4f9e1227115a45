"""TimeSformer backbone (MMAction2's ``timesformer.py``), without mmcv's transformer builders.

Each frame is cut into ``patch_size`` patches (``patch_embed.projection``, a ``Conv2d``); a
class token and a spatial position embedding are added per frame and, unless
``attention_type='space_only'``, a temporal embedding per patch position. Then
``num_transformer_layers`` layers (``transformer_layers.layers.<i>``, mmcv's
``BaseTransformerLayer`` layout) of one of:

* ``'divided_space_time'``: temporal attention over the frames of each patch position
  (``attentions.0``: its own ``norm``, ``attn``, zero-initialised ``temporal_fc``), spatial
  attention over the patches of each frame (``attentions.1``), an FFN with its own norm
  (``ffns.0.norm``);
* ``'joint_space_time'``: pre-norm attention over all tokens of the clip (``norms.0``,
  ``attentions.0.attn``) and a pre-norm FFN (``norms.1``, ``ffns.0``);
* ``'space_only'``: the same layer over the tokens of each frame; the frames are averaged
  at the end.

The output is ``norm(x)[:, 0]``, the class token, ``(N, embed_dims)``. Attention modules
are ``nn.MultiheadAttention`` called as MMAction2 / mmcv call them, so the checkpoint keys
(``in_proj_weight``, ``out_proj``) and the arithmetic are theirs. Dropout and drop path
are the identity in eval mode; ``pretrained`` (ImageNet ViT weights loaded by MMAction2's
``init_weights``) is ignored: weights come from the recognizer's checkpoint.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from engines.errors import InputShapeError, ModelConfigError
from engines.models.registry import register
from engines.models.transformer_blocks import (
    FFN,
    PatchEmbed,
    build_layer_norm,
    drop_path_or_identity,
    drop_path_rates,
)

ATTENTION_TYPES = ("divided_space_time", "space_only", "joint_space_time")
#: MMAction2 builds its default layers with these stochastic-depth rates (``linspace(0, 0.1)``).
_DROP_PATH_RATE = 0.1
_LN = {"type": "LN", "eps": 1e-6}


def _static(x: Tensor) -> tuple[int, ...]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return tuple(int(d) for d in x.shape)


class DividedTemporalAttentionWithNorm(nn.Module):
    """Pre-norm attention over the ``num_frames`` frames of each patch position, then ``temporal_fc``.

    The class token passes unchanged. Input and output ``(N, 1 + P * T, C)``, patches major.
    """

    def __init__(self, embed_dims: int, num_heads: int, num_frames: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.norm = nn.LayerNorm(embed_dims, eps=1e-6)
        self.attn = nn.MultiheadAttention(embed_dims, num_heads)
        self.proj_drop = nn.Dropout(0.0)
        self.dropout_layer = drop_path_or_identity(drop_path)
        self.temporal_fc = nn.Linear(embed_dims, embed_dims)

    def forward(self, query: Tensor) -> Tensor:
        init_cls_token = query[:, 0, :].unsqueeze(1)
        identity = query_t = query[:, 1:, :]
        _, pt, m = _static(query_t)
        t = self.num_frames
        query_t = self.norm(query_t.reshape(-1, t, m)).permute(1, 0, 2)
        res = self.attn(query_t, query_t, query_t)[0].permute(1, 0, 2)
        res = self.temporal_fc(self.dropout_layer(self.proj_drop(res.contiguous())))
        return torch.cat((init_cls_token, identity + res.reshape(-1, pt, m)), 1)


class DividedSpatialAttentionWithNorm(nn.Module):
    """Pre-norm attention over the patches of each frame, each frame with its copy of the class token.

    The class token's update is the mean over the frames. Input and output ``(N, 1 + P * T, C)``.
    """

    def __init__(self, embed_dims: int, num_heads: int, num_frames: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.norm = nn.LayerNorm(embed_dims, eps=1e-6)
        self.attn = nn.MultiheadAttention(embed_dims, num_heads)
        self.proj_drop = nn.Dropout(0.0)
        self.dropout_layer = drop_path_or_identity(drop_path)

    def forward(self, query: Tensor) -> Tensor:
        identity = query
        init_cls_token = query[:, 0, :].unsqueeze(1)
        query_s = query[:, 1:, :]
        _, pt, m = _static(query_s)
        t = self.num_frames
        p = pt // t
        cls_token = init_cls_token.repeat(1, t, 1).reshape(-1, m).unsqueeze(1)
        query_s = query_s.reshape(-1, p, t, m).permute(0, 2, 1, 3).reshape(-1, p, m)  # b (p t) m -> (b t) p m
        query_s = self.norm(torch.cat((cls_token, query_s), 1)).permute(1, 0, 2)
        res = self.attn(query_s, query_s, query_s)[0].permute(1, 0, 2)
        res = self.dropout_layer(self.proj_drop(res.contiguous()))
        cls_token = torch.mean(res[:, 0, :].reshape(-1, t, m), 1, True)
        res = res[:, 1:, :].reshape(-1, t, p, m).permute(0, 2, 1, 3).reshape(-1, p * t, m)  # (b t) p m -> b (p t) m
        return identity + torch.cat((cls_token, res), 1)


class MultiheadAttention(nn.Module):
    """mmcv's batch-first ``MultiheadAttention`` wrapper: ``identity + attn(x)``, the module named ``attn``."""

    def __init__(self, embed_dims: int, num_heads: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(embed_dims, num_heads)
        self.proj_drop = nn.Dropout(0.0)
        self.dropout_layer = drop_path_or_identity(drop_path)

    def forward(self, query: Tensor, identity: Tensor) -> Tensor:
        q = query.transpose(0, 1)
        out = self.attn(query=q, key=q, value=q, attn_mask=None, key_padding_mask=None)[0].transpose(0, 1)
        return identity + self.dropout_layer(self.proj_drop(out))


class FFNWithNorm(FFN):
    """MMAction2's ``FFNWithNorm``: ``x + FFN(norm(x))``."""

    def __init__(self, embed_dims: int, feedforward_channels: int, drop_path: float = 0.0) -> None:
        super().__init__(embed_dims, feedforward_channels, act_cfg={"type": "GELU"}, drop_path=drop_path)
        self.norm = nn.LayerNorm(embed_dims, eps=1e-6)

    def forward(self, x: Tensor, identity: Tensor | None = None) -> Tensor:
        return super().forward(self.norm(x), x)


class TransformerLayer(nn.Module):
    """One layer in mmcv's ``BaseTransformerLayer`` layout (``attentions``, ``ffns``, ``norms``).

    Args:
        embed_dims: Token width.
        num_heads: Attention heads.
        num_frames: Frames per clip.
        divided: Divided space-time attention; otherwise a pre-norm joint (or per-frame) layer.
        drop_path: Stochastic depth (identity in eval).
    """

    def __init__(self, embed_dims: int, num_heads: int, num_frames: int, divided: bool, drop_path: float) -> None:
        super().__init__()
        self.divided = divided
        self.attentions = nn.ModuleList()
        hidden = embed_dims * 4
        if divided:
            self.attentions.append(DividedTemporalAttentionWithNorm(embed_dims, num_heads, num_frames, drop_path))
            self.attentions.append(DividedSpatialAttentionWithNorm(embed_dims, num_heads, num_frames, drop_path))
            self.ffns = nn.ModuleList([FFNWithNorm(embed_dims, hidden, drop_path)])
        else:
            self.attentions.append(MultiheadAttention(embed_dims, num_heads, drop_path))
            self.ffns = nn.ModuleList([FFN(embed_dims, hidden, act_cfg={"type": "GELU"}, drop_path=drop_path)])
        # mmcv registers attentions, ffns, then norms (none for the divided layer); same key order here.
        self.norms = nn.ModuleList(nn.LayerNorm(embed_dims, eps=1e-6) for _ in range(0 if divided else 2))

    def forward(self, x: Tensor) -> Tensor:
        if self.divided:
            for attention in self.attentions:
                x = attention(x)
            return self.ffns[0](x)
        x = self.attentions[0](self.norms[0](x), identity=x)
        return self.ffns[0](self.norms[1](x), identity=x)


class TransformerLayerSequence(nn.Module):
    """The ``layers`` list of mmcv's ``TransformerLayerSequence``, applied in order."""

    def __init__(self, layers: list[TransformerLayer]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


@register()
class TimeSformer(nn.Module):
    """TimeSformer with MMAction2's arguments and parameter names.

    Args:
        num_frames: Frames per clip.
        img_size: Frame side.
        patch_size: Patch side.
        pretrained: Ignored (weights come from checkpoints).
        embed_dims: Token width.
        num_heads: Attention heads.
        num_transformer_layers: Layers.
        in_channels: Input channels.
        dropout_ratio: Dropout after the embeddings (identity in eval).
        transformer_layers: Must be ``None`` (MMAction2's default layers; custom mmcv layer
            configs are not supported).
        attention_type: ``'divided_space_time'``, ``'space_only'`` or ``'joint_space_time'``.
        norm_cfg: Final layer norm, ``dict(type='LN', eps=1e-6)``.

    Raises:
        ModelConfigError: For an unknown ``attention_type``, custom ``transformer_layers``,
            or sizes that do not fit.
    """

    def __init__(
        self,
        num_frames: int,
        img_size: int,
        patch_size: int,
        pretrained: str | None = None,
        embed_dims: int = 768,
        num_heads: int = 12,
        num_transformer_layers: int = 12,
        in_channels: int = 3,
        dropout_ratio: float = 0.0,
        transformer_layers: Mapping[str, Any] | list[Any] | None = None,
        attention_type: str = "divided_space_time",
        norm_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if attention_type not in ATTENTION_TYPES:
            raise ModelConfigError(
                f"TimeSformer.attention_type: expected one of {ATTENTION_TYPES}, got {attention_type!r}"
            )
        if transformer_layers is not None:
            raise ModelConfigError(
                "TimeSformer.transformer_layers: custom mmcv layer configs are not supported; "
                "leave it None for MMAction2's layers of attention_type"
            )
        if not isinstance(img_size, int) or not isinstance(patch_size, int) or img_size % patch_size:
            raise ModelConfigError(
                f"TimeSformer: img_size={img_size!r} must be a multiple of patch_size={patch_size!r}"
            )
        if embed_dims % num_heads:
            raise ModelConfigError(f"TimeSformer: num_heads={num_heads} does not divide embed_dims={embed_dims}")
        self.num_frames = num_frames
        self.img_size = img_size
        self.embed_dims = embed_dims
        self.attention_type = attention_type
        self.patch_embed = PatchEmbed(in_channels, embed_dims, (patch_size, patch_size))
        num_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dims))
        self.drop_after_pos = nn.Dropout(p=dropout_ratio)
        self.time_embed: nn.Parameter | None = None
        if attention_type != "space_only":
            self.time_embed = nn.Parameter(torch.zeros(1, num_frames, embed_dims))
            self.drop_after_time = nn.Dropout(p=dropout_ratio)
        self.norm = build_layer_norm(norm_cfg or _LN, embed_dims, "TimeSformer.norm_cfg")
        divided = attention_type == "divided_space_time"
        self.transformer_layers = TransformerLayerSequence(
            [
                TransformerLayer(embed_dims, num_heads, num_frames, divided, rate)
                for rate in drop_path_rates(_DROP_PATH_RATE, num_transformer_layers)
            ]
        )
        self.feat_dim = embed_dims

    def forward(self, x: Tensor) -> Tensor:
        """Class-token features ``(N, embed_dims)`` of clips ``(N, C, T, H, W)``.

        Raises:
            InputShapeError: If the clip is not 5-D or differs from ``num_frames`` / ``img_size``.
        """
        if x.dim() != 5:
            raise InputShapeError(f"TimeSformer expects (N, C, T, H, W) clips, got shape {tuple(x.shape)}")
        _, c, t, h, w = _static(x)
        if t != self.num_frames or (h, w) != (self.img_size, self.img_size):
            raise InputShapeError(
                f"TimeSformer was built for {self.num_frames} frames of {self.img_size}x{self.img_size}, "
                f"got {t} frames of {h}x{w}; feed the config's clip_len and crop size"
            )
        batches = x.shape[0]
        x = self.patch_embed(x.transpose(1, 2).reshape(-1, c, h, w))  # (b t) p m
        _, p, m = _static(x)
        x = torch.cat((self.cls_token.expand(x.size(0), -1, -1), x), dim=1)
        x = self.drop_after_pos(x + self.pos_embed)
        if self.time_embed is not None:
            cls_tokens = x[:batches, 0, :].unsqueeze(1)
            x = x[:, 1:, :].reshape(-1, t, p, m).permute(0, 2, 1, 3).reshape(-1, t, m)  # (b t) p m -> (b p) t m
            x = self.drop_after_time(x + self.time_embed)
            x = torch.cat((cls_tokens, x.reshape(-1, p * t, m)), dim=1)  # (b p) t m -> b (p t) m
        x = self.transformer_layers(x)
        if self.attention_type == "space_only":
            x = torch.mean(x.view(-1, self.num_frames, *x.shape[-2:]), 1)
        return self.norm(x)[:, 0]
