"""Transformer building blocks shared by the video transformers, with mmcv / MMAction2 names.

Each block keeps the submodule names its MMAction2 counterpart has, so model-zoo
checkpoints load as they are:

* :class:`FFN`: mmcv's ``FFN`` (``layers.0.0`` first linear, ``layers.1`` second linear).
* :class:`QVBiasAttention`: VideoMAE's ``Attention`` (``qkv`` without bias, separate
  ``q_bias`` / ``v_bias``, ``proj``); the key bias is zero.
* :class:`PatchEmbed`: a strided convolution named ``projection`` (2D per frame, or 3D
  tubelets), flattened to tokens.
* :class:`DropPath`: stochastic depth; the identity in eval mode (the only mode inference
  uses), like mmcv's ``DropPath``.
* :class:`QuickGELU`: CLIP's ``x * sigmoid(1.702 x)``.
* :class:`Mlp`: ``fc1`` → activation → dropout → ``fc2`` → dropout (the ``Mlp`` of MMAction2's
  Swin and UniFormer, and MViT's ``MLP``, which has no dropout).
* :func:`relative_position_index`: the pair-wise relative position index of the tokens of a
  window (Swin's ``relative_position_index`` buffer, any number of axes).
* :func:`static_shape`: a tensor's sizes as Python ints, also while tracing for ONNX export.

Attention over ``nn.MultiheadAttention`` (TimeSformer, UniFormerV2) uses torch's module
directly: its ``in_proj_weight`` / ``in_proj_bias`` / ``out_proj`` names are the ones
MMAction2 stores.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engines.errors import ModelConfigError
from engines.models.layers import build_activation, split_cfg

_LN_TYPES = ("LN", "LayerNorm")


def build_layer_norm(cfg: Mapping[str, Any] | None, num_features: int, where: str = "norm_cfg") -> nn.LayerNorm:
    """A ``LayerNorm`` from an mmcv ``norm_cfg`` such as ``dict(type='LN', eps=1e-6)``.

    ``requires_grad`` is accepted and ignored (training only).

    Raises:
        ModelConfigError: For another norm type or an unknown key.
    """
    type_name, rest = split_cfg(cfg or {"type": "LN"}, where)
    if type_name not in _LN_TYPES:
        raise ModelConfigError(f"{where}.type: transformers here take a layer norm ('LN'), got {type_name!r}")
    rest.pop("requires_grad", None)
    unknown = sorted(set(rest) - {"eps", "elementwise_affine"})
    if unknown:
        raise ModelConfigError(f"{where}: unknown key(s) {unknown}; valid keys: eps, elementwise_affine")
    return nn.LayerNorm(num_features, **rest)


def drop_path_rates(rate: float, depth: int) -> list[float]:
    """The linearly increasing stochastic-depth rates MMAction2 gives ``depth`` blocks (``linspace(0, rate)``).

    Plain Python, so models build on the ``meta`` device too (the rates only matter in training).
    """
    if depth <= 1:
        return [0.0] * depth
    return [rate * i / (depth - 1) for i in range(depth)]


class DropPath(nn.Module):
    """Stochastic depth per sample (mmcv's ``DropPath``); the identity in eval mode.

    Args:
        drop_prob: Probability of dropping the residual branch of a sample in training.
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ModelConfigError(f"DropPath.drop_prob: expected a value in [0, 1), got {drop_prob!r}")
        self.drop_prob = float(drop_prob)

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


def drop_path_or_identity(drop_prob: float) -> nn.Module:
    """``DropPath(drop_prob)``, or ``nn.Identity`` for a zero rate (both have no state)."""
    return DropPath(drop_prob) if drop_prob > 0 else nn.Identity()


def dropout_layer_prob(cfg: Mapping[str, Any] | None, where: str) -> float:
    """The drop probability of an mmcv ``dropout_layer`` config (``DropPath`` or ``Dropout``); 0 for ``None``.

    Raises:
        ModelConfigError: For another dropout type.
    """
    if not cfg:
        return 0.0
    type_name, rest = split_cfg(cfg, where)
    if type_name not in ("DropPath", "Dropout"):
        raise ModelConfigError(f"{where}.type: expected 'DropPath' or 'Dropout', got {type_name!r}")
    return float(rest.get("drop_prob", 0.1 if type_name == "DropPath" else 0.5))


class QuickGELU(nn.Module):
    """CLIP's GELU approximation ``x * sigmoid(1.702 * x)``."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class FFN(nn.Module):
    """mmcv's ``FFN``: ``num_fcs`` linear layers with an activation, optionally added to the input.

    Args:
        embed_dims: Input and output width.
        feedforward_channels: Hidden width.
        num_fcs: Number of linear layers (at least 2).
        act_cfg: Activation after each hidden linear layer (mmcv ``act_cfg``).
        ffn_drop: Dropout after each linear layer (identity in eval).
        drop_path: Stochastic depth on the output when ``add_identity`` (identity in eval).
        add_identity: Add the input (or ``identity``) to the output.
    """

    def __init__(
        self,
        embed_dims: int,
        feedforward_channels: int,
        num_fcs: int = 2,
        act_cfg: Mapping[str, Any] | None = None,
        ffn_drop: float = 0.0,
        drop_path: float = 0.0,
        add_identity: bool = True,
    ) -> None:
        super().__init__()
        if num_fcs < 2:
            raise ModelConfigError(f"FFN.num_fcs: expected at least 2, got {num_fcs}")
        self.embed_dims = embed_dims
        layers: list[nn.Module] = []
        in_channels = embed_dims
        for _ in range(num_fcs - 1):
            layers.append(
                nn.Sequential(
                    nn.Linear(in_channels, feedforward_channels),
                    build_activation(act_cfg or {"type": "ReLU"}),
                    nn.Dropout(ffn_drop),
                )
            )
            in_channels = feedforward_channels
        layers.append(nn.Linear(feedforward_channels, embed_dims))
        layers.append(nn.Dropout(ffn_drop))
        self.layers = nn.Sequential(*layers)
        self.dropout_layer = drop_path_or_identity(drop_path)
        self.add_identity = add_identity

    def forward(self, x: Tensor, identity: Tensor | None = None) -> Tensor:
        out = self.layers(x)
        if not self.add_identity:
            return self.dropout_layer(out)
        return (x if identity is None else identity) + self.dropout_layer(out)


class QVBiasAttention(nn.Module):
    """Multi-head self-attention with separate query and value biases (VideoMAE's ``Attention``).

    Args:
        embed_dims: Token width.
        num_heads: Attention heads.
        qkv_bias: Learn ``q_bias`` and ``v_bias`` (the key bias is always zero).
        qk_scale: Scale of the query; default ``head_dims ** -0.5``.
        attn_drop_rate: Dropout on the attention weights (identity in eval).
        drop_rate: Dropout after ``proj`` (identity in eval).
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop_rate: float = 0.0,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ModelConfigError(f"num_heads={num_heads} does not divide embed_dims={embed_dims}")
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.scale = qk_scale or (embed_dims // num_heads) ** -0.5
        self.q_bias: nn.Parameter | None = None
        self.v_bias: nn.Parameter | None = None
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(embed_dims))
            self.v_bias = nn.Parameter(torch.zeros(embed_dims))
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=False)
        self.attn_drop = nn.Dropout(attn_drop_rate)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(drop_rate)

    def forward(self, x: Tensor) -> Tensor:
        """Attend over the tokens of ``x`` ``(B, N, C)``; returns ``(B, N, C)``."""
        b, n, _ = x.shape
        if self.q_bias is not None and self.v_bias is not None:
            bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
            qkv = F.linear(x, self.qkv.weight, bias)
        else:
            qkv = self.qkv(x)
        qkv = qkv.reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(b, n, -1)
        return self.proj_drop(self.proj(x))


class PatchEmbed(nn.Module):
    """Non-overlapping patches to tokens: a strided convolution named ``projection``, then flatten.

    Args:
        in_channels: Input channels.
        embed_dims: Token width.
        kernel_size: Patch size, ``(h, w)`` for 2D or ``(t, h, w)`` for 3D (tubelets).
        bias: Whether the convolution has a bias.
    """

    def __init__(
        self,
        in_channels: int,
        embed_dims: int,
        kernel_size: tuple[int, int] | tuple[int, int, int],
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.projection: nn.Conv2d | nn.Conv3d
        if len(kernel_size) == 3:
            self.projection = nn.Conv3d(in_channels, embed_dims, kernel_size, stride=kernel_size, bias=bias)
        else:
            self.projection = nn.Conv2d(in_channels, embed_dims, kernel_size, stride=kernel_size, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, [T,] H, W)`` -> tokens ``(B, L, embed_dims)``."""
        return self.projection(x).flatten(2).transpose(1, 2)


def sinusoid_encoding(n_position: int, embed_dims: int) -> Tensor:
    """The fixed sine-cosine position table ``(1, n_position, embed_dims)`` of VideoMAE (computed in float64)."""
    vec = torch.arange(embed_dims, dtype=torch.float64)
    vec = torch.pow(10000, -((vec - vec % 2) / embed_dims)).view(1, -1)
    table = torch.arange(n_position).view(-1, 1) * vec
    table[:, 0::2].sin_()
    table[:, 1::2].cos_()
    return table.to(torch.float32).unsqueeze(0)


class Mlp(nn.Module):
    """Two linear layers with an activation between: ``fc1`` → act → drop → ``fc2`` → drop.

    Args:
        in_features: Input width.
        hidden_features: Hidden width (default: ``in_features``).
        out_features: Output width (default: ``in_features``).
        act_cfg: mmcv activation config (default GELU, exact erf form).
        drop: Dropout rate after each layer (identity in eval).
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act_cfg: Mapping[str, Any] | None = None,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = build_activation(act_cfg if act_cfg is not None else {"type": "GELU"})
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def relative_position_index(window: Sequence[int]) -> Tensor:
    """Index into a relative position bias table for every pair of tokens of a window.

    The table has ``prod(2 * w - 1)`` rows, one per relative offset; tokens are numbered
    in row-major order over the window's axes (e.g. ``(d, h, w)``). Offsets are shifted to
    start at 0 and flattened row-major, exactly as Swin (2D and 3D) builds its
    ``relative_position_index`` buffer, so checkpoints' buffers compare equal.

    Args:
        window: The window size per axis.

    Returns:
        An int64 tensor of shape ``(prod(window), prod(window))``.
    """
    sizes = [int(w) for w in window]
    grids = torch.meshgrid(*[torch.arange(w) for w in sizes], indexing="ij")
    coords = torch.stack(grids).flatten(1)  # axes, tokens
    offsets = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # tokens, tokens, axes
    offsets = offsets + torch.tensor([w - 1 for w in sizes])
    strides = [math.prod(2 * w - 1 for w in sizes[i + 1 :]) for i in range(len(sizes))]
    return (offsets * torch.tensor(strides)).sum(-1)


def static_shape(x: Tensor) -> tuple[int, ...]:
    """``x.shape`` as Python ints, which an ONNX trace records as constants.

    The video transformers' window sizes, token grids and reshapes depend only on the clip
    size, which an exported graph fixes; reading them as constants keeps the graph free of
    shape arithmetic (thousands of ``Shape``/``Gather`` nodes otherwise). Only the batch axis
    stays dynamic, so callers never use ``shape[0]`` (they reshape with ``-1`` there).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return tuple(int(d) for d in x.shape)
