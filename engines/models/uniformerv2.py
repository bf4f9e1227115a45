"""UniFormerV2 backbone (MMAction2's ``uniformerv2.py``): a CLIP ViT armed with video UniBlocks.

Frames (or temporally strided tubelets with ``temporal_downsample``) become patch tokens
of a CLIP visual encoder (``conv1``, ``class_embedding``, ``positional_embedding``,
``ln_pre``). Each of the ``layers`` local UniBlocks (``transformer.resblocks.<i>``) is a
CLIP residual attention block per frame, optionally with a local temporal MHRA
(``lmhra1`` / ``lmhra2``: BN3d, 1x1x1 down, depthwise 3x1x1 temporal conv, 1x1x1 up)
before the attention and MLP. After the blocks listed in ``return_list``, a dynamic
position encoding (``dpe``: depthwise 3x3x3 conv) is added and a global UniBlock
(``dec``: cross-attention from a learned video token to all tokens of all frames)
refines the video token. The output, ``(N, n_dim)``, is ``norm`` of a learned
sigmoid-weighted mix of the video token and the frames' mean class token.

Names follow MMAction2 so its checkpoints load strictly; the attention modules are
``nn.MultiheadAttention`` (``in_proj_weight``, ``out_proj``) as there. Dropout and drop
path are the identity in eval mode. ``clip_pretrained`` / ``pretrained`` (which download
CLIP weights during MMAction2's ``init_weights``) are accepted and ignored: weights come
from the recognizer's checkpoint.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from engines.errors import InputShapeError, ModelConfigError
from engines.models.registry import register
from engines.models.transformer_blocks import QuickGELU, drop_path_or_identity, drop_path_rates


def _static(x: Tensor) -> tuple[int, ...]:
    """The shape as Python ints (the exported graph is static in these sizes), without tracer warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return tuple(int(d) for d in x.shape)


class LocalMHRA(nn.Module):
    """Local temporal relation aggregator: ``pos_embed`` = BN3d, 1x1x1 conv down, depthwise kx1x1, 1x1x1 up.

    Args:
        d_model: Channels.
        dw_reduction: Channel reduction of the depthwise part (``int(d_model // dw_reduction)``).
        pos_kernel_size: Temporal kernel of the depthwise convolution.
    """

    def __init__(self, d_model: int, dw_reduction: float = 1.5, pos_kernel_size: int = 3) -> None:
        super().__init__()
        padding = pos_kernel_size // 2
        reduced = int(d_model // dw_reduction)
        self.pos_embed = nn.Sequential(
            nn.BatchNorm3d(d_model),
            nn.Conv3d(d_model, reduced, kernel_size=1),
            nn.Conv3d(reduced, reduced, (pos_kernel_size, 1, 1), padding=(padding, 0, 0), groups=reduced),
            nn.Conv3d(reduced, d_model, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.pos_embed(x)


def _clip_mlp(d_model: int, d_mlp: int, dropout: float | None = None) -> nn.Sequential:
    """CLIP's MLP: ``c_fc``, QuickGELU, (``dropout``), ``c_proj``."""
    layers: list[tuple[str, nn.Module]] = [("c_fc", nn.Linear(d_model, d_mlp)), ("gelu", QuickGELU())]
    if dropout is not None:
        layers.append(("dropout", nn.Dropout(dropout)))
    layers.append(("c_proj", nn.Linear(d_mlp, d_model)))
    return nn.Sequential(OrderedDict(layers))


class ResidualAttentionBlock(nn.Module):
    """Local UniBlock: optional local MHRA, then CLIP's attention and MLP over the tokens of each frame.

    Tokens are ``(L, N * T, C)`` (sequence first), ``L = 1 + H * W``.

    Args:
        d_model: Token width.
        n_head: Attention heads.
        drop_path: Stochastic depth (identity in eval).
        dw_reduction: Channel reduction of the local MHRA.
        no_lmhra: Leave out the local MHRA.
        double_lmhra: A second local MHRA between attention and MLP.
    """

    def __init__(
        self,
        d_model: int,
        n_head: int,
        drop_path: float = 0.0,
        dw_reduction: float = 1.5,
        no_lmhra: bool = False,
        double_lmhra: bool = True,
    ) -> None:
        super().__init__()
        self.n_head = n_head
        self.drop_path = drop_path_or_identity(drop_path)
        self.no_lmhra = no_lmhra
        self.double_lmhra = double_lmhra
        if not no_lmhra:
            self.lmhra1 = LocalMHRA(d_model, dw_reduction=dw_reduction)
            if double_lmhra:
                self.lmhra2 = LocalMHRA(d_model, dw_reduction=dw_reduction)
        self.attn = nn.MultiheadAttention(d_model, n_head)
        self.ln_1 = nn.LayerNorm(d_model)
        self.mlp = _clip_mlp(d_model, d_model * 4)
        self.ln_2 = nn.LayerNorm(d_model)

    def _lmhra(self, x: Tensor, lmhra: nn.Module, t: int) -> Tensor:
        """Add the local MHRA of the patch tokens (the class token passes unchanged)."""
        tokens = x[1:, :, :]
        length, _, c = _static(tokens)  # the batch stays dynamic: -1 below
        h = w = int(length**0.5)
        tokens = tokens.view(h, w, -1, t, c).permute(2, 4, 3, 0, 1).contiguous()
        tokens = tokens + self.drop_path(lmhra(tokens))
        tokens = tokens.view(-1, c, t, length).permute(3, 0, 2, 1).contiguous().view(length, -1, c)
        return torch.cat([x[:1, :, :], tokens], dim=0)

    def forward(self, x: Tensor, t: int = 8) -> Tensor:
        if not self.no_lmhra:
            x = self._lmhra(x, self.lmhra1, t)
        y = self.ln_1(x)
        x = x + self.drop_path(self.attn(y, y, y, need_weights=False, attn_mask=None)[0])
        if not self.no_lmhra and self.double_lmhra:
            x = self._lmhra(x, self.lmhra2, t)
        return x + self.drop_path(self.mlp(self.ln_2(x)))


class Extractor(nn.Module):
    """Global UniBlock: cross-attention of the video token ``x`` to all tokens ``y``, then an MLP.

    Args:
        d_model: Token width.
        n_head: Attention heads.
        mlp_factor: MLP hidden width over ``d_model`` (rounded).
        dropout: Dropout inside the MLP (identity in eval).
        drop_path: Stochastic depth (identity in eval).
    """

    def __init__(
        self, d_model: int, n_head: int, mlp_factor: float = 4.0, dropout: float = 0.0, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.drop_path = drop_path_or_identity(drop_path)
        self.attn = nn.MultiheadAttention(d_model, n_head)
        self.ln_1 = nn.LayerNorm(d_model)
        self.mlp = _clip_mlp(d_model, round(mlp_factor * d_model), dropout)
        self.ln_2 = nn.LayerNorm(d_model)
        self.ln_3 = nn.LayerNorm(d_model)

    def attention(self, x: Tensor, y: Tensor) -> Tensor:
        """Multi-head attention of queries ``x`` ``(Tx, N, C)`` over ``y`` ``(Ty, N, C)``, as MMAction2 writes it."""
        d = self.ln_1.weight.size(0)
        w, b = self.attn.in_proj_weight, cast(Tensor, self.attn.in_proj_bias)  # built with bias=True
        q = (x @ w[:d].T) + b[:d]
        k = (y @ w[d:-d].T) + b[d:-d]
        v = (y @ w[-d:].T) + b[-d:]
        tx, ty = _static(q)[0], _static(k)[0]
        heads, head_dim = self.attn.num_heads, self.attn.head_dim
        q = q.view(tx, -1, heads, head_dim).permute(1, 2, 0, 3)
        k = k.view(ty, -1, heads, head_dim).permute(1, 2, 0, 3)
        v = v.view(ty, -1, heads, head_dim).permute(1, 2, 0, 3)
        aff = (q @ k.transpose(-2, -1) / (head_dim**0.5)).softmax(dim=-1)
        out = (aff @ v).permute(2, 0, 1, 3).flatten(2)
        return self.attn.out_proj(out)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        x = x + self.drop_path(self.attention(self.ln_1(x), self.ln_3(y)))
        return x + self.drop_path(self.mlp(self.ln_2(x)))


class Transformer(nn.Module):
    """Local UniBlocks, with a DPE + global UniBlock after each block in ``return_list``.

    Args mirror :class:`UniFormerV2`'s (``width``, ``layers``, ``heads``, ``t_size``, ...).
    """

    def __init__(
        self,
        width: int,
        layers: int,
        heads: int,
        backbone_drop_path_rate: float = 0.0,
        t_size: int = 8,
        dw_reduction: float = 1.5,
        no_lmhra: bool = True,
        double_lmhra: bool = False,
        return_list: Sequence[int] = (8, 9, 10, 11),
        n_layers: int = 4,
        n_dim: int = 768,
        n_head: int = 12,
        mlp_factor: float = 4.0,
        drop_path_rate: float = 0.0,
        mlp_dropout: Sequence[float] = (0.5, 0.5, 0.5, 0.5),
    ) -> None:
        super().__init__()
        self.T = t_size
        self.return_list = list(return_list)
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(width, heads, rate, dw_reduction, no_lmhra, double_lmhra)
            for rate in drop_path_rates(backbone_drop_path_rate, layers)
        )
        self.temporal_cls_token = nn.Parameter(torch.zeros(1, 1, n_dim))
        self.dpe = nn.ModuleList(
            nn.Conv3d(n_dim, n_dim, kernel_size=3, stride=1, padding=1, bias=True, groups=n_dim)
            for _ in range(n_layers)
        )
        self.dec = nn.ModuleList(
            Extractor(n_dim, n_head, mlp_factor=mlp_factor, dropout=mlp_dropout[i], drop_path=rate)
            for i, rate in enumerate(drop_path_rates(drop_path_rate, n_layers))
        )
        self.norm = nn.LayerNorm(n_dim)
        self.balance = nn.Parameter(torch.zeros(n_dim))
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        """Video features ``(N, n_dim)`` from tokens ``(L, N * T, C)``."""
        t = self.T
        length, _, c = _static(x)
        h = w = int((length - 1) ** 0.5)
        cls_token = self.temporal_cls_token.repeat(1, x.shape[1] // t, 1)  # traced: the batch stays dynamic
        j = -1
        for i, resblock in enumerate(self.resblocks):
            x = resblock(x, t)
            if i in self.return_list:
                j += 1
                tmp_x = x.view(length, -1, t, c)
                feats = tmp_x[1:].permute(1, 3, 2, 0).reshape(-1, c, t, h, w)
                feats = self.dpe[j](feats).view(-1, c, t, length - 1).permute(3, 0, 2, 1)
                tmp_x = torch.cat([tmp_x[:1], tmp_x[1:] + feats], dim=0)
                tmp_x = tmp_x.permute(2, 0, 1, 3).flatten(0, 1)  # T * L, N, C
                cls_token = self.dec[j](cls_token, tmp_x)
        weight = self.sigmoid(self.balance)
        residual = x.view(length, -1, t, c)[0].mean(1)
        return self.norm((1 - weight) * cls_token[0, :, :] + weight * residual)


@register()
class UniFormerV2(nn.Module):
    """UniFormerV2 with MMAction2's arguments and parameter names.

    Args:
        input_resolution: Frame side the position table is built for.
        patch_size: Patch side.
        width: Token width of the CLIP encoder.
        layers: Local UniBlocks.
        heads: Attention heads of the local UniBlocks.
        backbone_drop_path_rate: Stochastic depth of the local UniBlocks (identity in eval).
        t_size: Frames per clip.
        kernel_size: Temporal kernel of ``conv1`` with ``temporal_downsample``.
        dw_reduction: Channel reduction of the local MHRA.
        temporal_downsample: Halve the frames in ``conv1`` (kernel ``kernel_size``, stride 2).
        no_lmhra: Leave out the local MHRA.
        double_lmhra: Two local MHRAs per block.
        return_list: Indices of the local blocks followed by a global UniBlock.
        n_layers: Global UniBlocks (``len(return_list)``).
        n_dim: Width of the global UniBlocks (the output width; equals ``width``).
        n_head: Attention heads of the global UniBlocks.
        mlp_factor: MLP width factor of the global UniBlocks.
        drop_path_rate: Stochastic depth of the global UniBlocks (identity in eval).
        mlp_dropout: MLP dropout per global UniBlock (identity in eval).
        clip_pretrained: Ignored (MMAction2 downloads CLIP weights at init).
        pretrained: Ignored.
        init_cfg: Ignored.

    Raises:
        ModelConfigError: If ``return_list`` / ``n_layers`` / ``mlp_dropout`` do not fit, or
            the sizes do not divide.
    """

    def __init__(
        self,
        input_resolution: int = 224,
        patch_size: int = 16,
        width: int = 768,
        layers: int = 12,
        heads: int = 12,
        backbone_drop_path_rate: float = 0.0,
        t_size: int = 8,
        kernel_size: int = 3,
        dw_reduction: float = 1.5,
        temporal_downsample: bool = False,
        no_lmhra: bool = True,
        double_lmhra: bool = False,
        return_list: Sequence[int] = (8, 9, 10, 11),
        n_layers: int = 4,
        n_dim: int = 768,
        n_head: int = 12,
        mlp_factor: float = 4.0,
        drop_path_rate: float = 0.0,
        mlp_dropout: Sequence[float] = (0.5, 0.5, 0.5, 0.5),
        clip_pretrained: bool = True,
        pretrained: str | None = None,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        if n_layers != len(return_list):
            raise ModelConfigError(f"UniFormerV2: n_layers={n_layers} must equal len(return_list)={len(return_list)}")
        if len(mlp_dropout) < n_layers:
            raise ModelConfigError(f"UniFormerV2.mlp_dropout: needs {n_layers} values, got {list(mlp_dropout)}")
        bad = [i for i in return_list if not 0 <= i < layers]
        if bad:
            raise ModelConfigError(f"UniFormerV2.return_list: {bad} are not block indices 0..{layers - 1}")
        if n_dim != width:
            raise ModelConfigError(
                f"UniFormerV2: n_dim={n_dim} must equal width={width} (the global blocks read the local tokens)"
            )
        for name, dim, h in (("heads", width, heads), ("n_head", n_dim, n_head)):
            if dim % h:
                raise ModelConfigError(f"UniFormerV2.{name}={h} does not divide the width {dim}")
        if input_resolution < patch_size:
            raise ModelConfigError(f"UniFormerV2: input_resolution={input_resolution} < patch_size={patch_size}")
        self.input_resolution = input_resolution
        self.patch_size = patch_size
        padding = (kernel_size - 1) // 2
        if temporal_downsample:
            self.conv1 = nn.Conv3d(
                3,
                width,
                (kernel_size, patch_size, patch_size),
                (2, patch_size, patch_size),
                (padding, 0, 0),
                bias=False,
            )
            t_size = t_size // 2
        else:
            self.conv1 = nn.Conv3d(3, width, (1, patch_size, patch_size), (1, patch_size, patch_size), bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros((input_resolution // patch_size) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(
            width,
            layers,
            heads,
            dw_reduction=dw_reduction,
            backbone_drop_path_rate=backbone_drop_path_rate,
            t_size=t_size,
            no_lmhra=no_lmhra,
            double_lmhra=double_lmhra,
            return_list=return_list,
            n_layers=n_layers,
            n_dim=n_dim,
            n_head=n_head,
            mlp_factor=mlp_factor,
            drop_path_rate=drop_path_rate,
            mlp_dropout=mlp_dropout,
        )
        self.feat_dim = n_dim

    def forward(self, x: Tensor) -> Tensor:
        """Features ``(N, n_dim)`` of clips ``(N, 3, T, H, W)``.

        Raises:
            InputShapeError: If the clip is not 5-D, or its frames or size differ from the
                ``t_size`` / ``input_resolution`` the model was built for.
        """
        if x.dim() != 5:
            raise InputShapeError(f"UniFormerV2 expects (N, 3, T, H, W) clips, got shape {tuple(x.shape)}")
        x = self.conv1(x)
        _, c, t, h, w = _static(x)
        if t != self.transformer.T:
            raise InputShapeError(
                f"UniFormerV2 was built for t_size frames giving {self.transformer.T} token frames, got {t}; "
                "feed clips of the config's clip_len"
            )
        if h * w + 1 != self.positional_embedding.shape[0] or h != w:
            raise InputShapeError(
                f"UniFormerV2 was built for {self.input_resolution}x{self.input_resolution} frames, "
                f"got a {h}x{w} patch grid; crop frames to input_resolution"
            )
        x = x.permute(0, 2, 3, 4, 1).reshape(-1, h * w, c)
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device)
        x = torch.cat([cls, x], dim=1)
        x = self.ln_pre(x + self.positional_embedding.to(x.dtype))
        return self.transformer(x.permute(1, 0, 2))
