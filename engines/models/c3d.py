"""C3D backbone (Tran et al., ICCV 2015) with MMAction2 1.x parameter names.

Eight 3×3×3 convs (``conv1a`` … ``conv5b``, mmcv ``ConvModule`` naming) with
five max-pools, then two fully connected layers ``fc6`` and ``fc7``. Because
``fc6`` flattens the last feature map, the clip size is fixed by ``out_dim``:
the default 8192 = 512 × 1 × 4 × 4 features is what a 16×112×112 clip gives.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from engines.errors import InputShapeError, ModelConfigError
from engines.models.layers import CONV3D_CFG, ConvModule, check_conv_cfg
from engines.models.registry import register


def c3d_feature_size(frames: int, height: int, width: int) -> int:
    """Number of features C3D's ``fc6`` sees for a ``frames × height × width`` clip.

    Follows the five pools: ``pool1`` halves H and W, ``pool2`` to ``pool4`` halve
    T, H and W, and ``pool5`` halves T and pads H and W by one before halving.
    """
    h, w = height // 2, width // 2
    t = frames
    for _ in range(3):
        t, h, w = t // 2, h // 2, w // 2
    t, h, w = t // 2, h // 2 + 1, w // 2 + 1
    return 512 * t * h * w if t > 0 else 0


@register()
class C3D(nn.Module):
    """C3D backbone: ``(N, 3, 16, 112, 112)`` clips → ``(N, 4096)`` ``fc7`` features.

    Args:
        pretrained: Training-only (MMAction2 loads it in ``init_weights``); ignored.
        style: ``'pytorch'`` or ``'caffe'``; MMAction2's C3D stores it and ignores it, as does this.
        conv_cfg: ``None`` or ``dict(type='Conv3d')``.
        norm_cfg: ``None`` (the model zoo) or a norm config such as ``dict(type='BN3d')``.
        act_cfg: Activation after each conv; ``None`` means ReLU, as in MMAction2.
        out_dim: Features ``fc6`` takes, fixed by the clip size (8192 for 16×112×112).
        dropout_ratio: Dropout between ``fc6`` and ``fc7`` (active only in train mode).
        init_std: Training-only (init of the fc layers); ignored.

    Raises:
        ModelConfigError: If a value is out of range or a cfg names an unsupported type.
    """

    def __init__(
        self,
        pretrained: str | None = None,
        style: str = "pytorch",
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = None,
        act_cfg: Mapping[str, Any] | None = None,
        out_dim: int = 8192,
        dropout_ratio: float = 0.5,
        init_std: float = 0.005,
    ) -> None:
        super().__init__()
        if style not in ("pytorch", "caffe"):
            raise ModelConfigError(f"C3D: style must be 'pytorch' or 'caffe', got {style!r}")
        if not isinstance(out_dim, int) or out_dim <= 0 or out_dim % 512:
            raise ModelConfigError(f"C3D: out_dim must be a positive multiple of 512, got {out_dim!r}")
        if not 0 <= dropout_ratio < 1:
            raise ModelConfigError(f"C3D: dropout_ratio must be in [0, 1), got {dropout_ratio}")
        check_conv_cfg(conv_cfg, ("Conv3d",), "conv_cfg")
        conv_cfg = CONV3D_CFG if conv_cfg is None else conv_cfg
        act_cfg = {"type": "ReLU"} if act_cfg is None else act_cfg
        self.style = style
        self.out_dim = out_dim
        self.dropout_ratio = dropout_ratio

        def conv(cin: int, cout: int) -> ConvModule:
            return ConvModule(cin, cout, 3, padding=1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)

        self.conv1a = conv(3, 64)
        self.pool1 = nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2))
        self.conv2a = conv(64, 128)
        self.pool2 = nn.MaxPool3d(kernel_size=2, stride=2)
        self.conv3a = conv(128, 256)
        self.conv3b = conv(256, 256)
        self.pool3 = nn.MaxPool3d(kernel_size=2, stride=2)
        self.conv4a = conv(256, 512)
        self.conv4b = conv(512, 512)
        self.pool4 = nn.MaxPool3d(kernel_size=2, stride=2)
        self.conv5a = conv(512, 512)
        self.conv5b = conv(512, 512)
        self.pool5 = nn.MaxPool3d(kernel_size=2, stride=2, padding=(0, 1, 1))
        self.fc6 = nn.Linear(out_dim, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(p=dropout_ratio)

    def check_input(self, x: torch.Tensor) -> None:
        """Check that ``x`` is ``(N, 3, T, H, W)`` with T, H, W giving ``out_dim`` features.

        Only the static dimensions are read, so the check also runs, silently, while
        ``torch.onnx.export`` traces the model with a dynamic batch.

        Raises:
            InputShapeError: If the rank, channels or clip size cannot match ``fc6``.
        """
        if x.dim() != 5:
            raise InputShapeError(f"C3D expects (N, 3, T, H, W) clips, got shape {tuple(x.shape)}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            c, t, h, w = (int(s) for s in x.shape[1:])
        if c != 3:
            raise InputShapeError(f"C3D expects (N, 3, T, H, W) clips, got shape {tuple(x.shape)}")
        got = c3d_feature_size(t, h, w)
        if got != self.out_dim:
            hint = " (16x112x112 clips for out_dim=8192)" if self.out_dim == 8192 else ""
            raise InputShapeError(
                f"C3D input size {t}x{h}x{w} (TxHxW) gives {got} features but fc6 expects out_dim={self.out_dim}{hint}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Extract ``(N, 4096)`` features from ``(N, 3, T, H, W)`` clips.

        Raises:
            InputShapeError: If the clip size does not give ``out_dim`` features.
        """
        self.check_input(x)
        x = self.pool1(self.conv1a(x))
        x = self.pool2(self.conv2a(x))
        x = self.pool3(self.conv3b(self.conv3a(x)))
        x = self.pool4(self.conv4b(self.conv4a(x)))
        x = self.pool5(self.conv5b(self.conv5a(x)))
        x = self.relu(self.fc6(x.flatten(1)))
        x = self.dropout(x)
        return self.relu(self.fc7(x))
