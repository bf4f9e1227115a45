"""Transformer building blocks shared by the video transformers, with MMAction2 / mmcv names.

* :class:`Mlp`: ``fc1`` → activation → dropout → ``fc2`` → dropout (MMAction2's Swin/UniFormer
  ``Mlp`` and MViT's ``MLP`` have this layout and these child names);
* :class:`DropPath`: stochastic depth, identity in eval mode (mmcv's ``DropPath``);
* :func:`build_layer_norm`: an mmcv ``norm_cfg`` of type ``'LN'`` as :class:`torch.nn.LayerNorm`;
* :func:`relative_position_index`: the pair-wise relative position index of the tokens of a
  window (Swin's ``relative_position_index`` buffer, any number of axes);
* :func:`static_shape`: a tensor's sizes as Python ints, also while tracing for ONNX export.

Dropout and drop-path rates are accepted so MMAction2 configs build unchanged; in eval mode
(the only mode the engines run) both are the identity.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from engines.errors import ModelConfigError
from engines.models.layers import build_activation, split_cfg

_LN_KEYS = frozenset({"eps", "elementwise_affine"})
_LN_TRAINING_KEYS = frozenset({"requires_grad"})


def build_layer_norm(cfg: Mapping[str, Any] | None, num_features: int, where: str = "norm_cfg") -> nn.LayerNorm:
    """Build the :class:`torch.nn.LayerNorm` an mmcv ``dict(type='LN', ...)`` gives.

    ``None`` means ``dict(type='LN')`` (eps ``1e-5``). ``requires_grad`` is accepted and ignored.

    Raises:
        ModelConfigError: For another norm type or an unknown key.
    """
    type_name, rest = split_cfg(cfg if cfg is not None else {"type": "LN"}, where)
    if type_name != "LN":
        raise ModelConfigError(f"{where}.type: only 'LN' (LayerNorm) is supported here, got {type_name!r}")
    unknown = sorted(set(rest) - _LN_KEYS - _LN_TRAINING_KEYS)
    if unknown:
        raise ModelConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: "
            f"{', '.join(sorted(_LN_KEYS | _LN_TRAINING_KEYS))}"
        )
    return nn.LayerNorm(num_features, **{k: v for k, v in rest.items() if k in _LN_KEYS})


class DropPath(nn.Module):
    """Stochastic depth per sample (mmcv's ``DropPath``): the identity in eval mode or at rate 0.

    Args:
        drop_prob: Probability of dropping a sample's residual branch while training.
    """

    def __init__(self, drop_prob: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ModelConfigError(f"DropPath.drop_prob: expected a rate in [0, 1), got {drop_prob!r}")
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        return x.div(keep) * (keep + torch.rand(shape, dtype=x.dtype, device=x.device)).floor()


def drop_path_or_identity(rate: float) -> nn.Module:
    """:class:`DropPath` for a positive rate, else :class:`torch.nn.Identity` (as MMAction2 builds it)."""
    return DropPath(rate) if rate > 0.0 else nn.Identity()


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
