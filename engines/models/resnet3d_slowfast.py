"""SlowFast (Feichtenhofer et al., 2019) and SlowOnly with MMAction2 1.x parameter names.

``ResNet3dSlowFast`` holds two :class:`ResNet3dPathway` children, ``slow_path`` and
``fast_path``. The slow pathway has lateral convs (``conv1_lateral``,
``layer1_lateral`` ...) that bring fast features in, concatenated along channels
before each of its stages, so checkpoint keys match MMAction2's.
``ResNet3dSlowOnly`` is the slow pathway on its own, without lateral convs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from engines.errors import ModelConfigError
from engines.models.layers import ConfigDict, ConvModule, IntOrSeq, check_keys, split_cfg
from engines.models.registry import register
from engines.models.resnet3d import ResNet3d


class ResNet3dPathway(ResNet3d):
    """One pathway of SlowFast: a :class:`ResNet3d` that can take lateral input from the other one.

    With ``lateral`` the stage inputs have extra channels for the fast features, and
    the pathway owns the lateral convs: ``conv1_lateral`` (after the stem) and
    ``layer{i}_lateral`` (after stage ``i``, except the last), each a
    ``(fusion_kernel, 1, 1)`` conv with temporal stride ``speed_ratio`` that turns
    ``C / channel_ratio`` fast channels into ``C * lateral_infl / channel_ratio``.
    Other keyword arguments are those of :class:`ResNet3d`.

    Args:
        lateral: Whether this pathway receives lateral connections.
        lateral_inv: Deconv laterals (RGBPoseConv3D only); not supported with ``lateral``.
        lateral_norm: Whether the lateral convs have a norm and activation.
        speed_ratio: Frame-rate ratio of the fast to the slow pathway (alpha).
        channel_ratio: Channel ratio of the slow to the fast pathway (1/beta).
        fusion_kernel: Temporal kernel of the lateral convs.
        lateral_infl: Channel inflation of the lateral convs.
        lateral_activate: Per stage, whether a lateral connection enters it.

    Raises:
        ModelConfigError: For ``lateral_inv`` with ``lateral`` or a short ``lateral_activate``.
    """

    def __init__(
        self,
        lateral: bool = False,
        lateral_inv: bool = False,
        lateral_norm: bool = False,
        speed_ratio: int = 8,
        channel_ratio: int = 8,
        fusion_kernel: int = 5,
        lateral_infl: int = 2,
        lateral_activate: Sequence[int] = (1, 1, 1, 1),
        **kwargs: Any,
    ) -> None:
        if lateral and lateral_inv:
            raise ModelConfigError("lateral_inv=True (deconv laterals of RGBPoseConv3D) is not supported")
        num_stages = kwargs.get("num_stages", 4)
        if lateral and len(lateral_activate) < num_stages:
            raise ModelConfigError(
                f"lateral_activate: expected {num_stages} entries (one per stage), got {lateral_activate!r}"
            )
        # Read by ``_lateral_inplanes`` while ResNet3d.__init__ builds the stages.
        self.lateral = lateral
        self.lateral_norm = lateral_norm
        self.speed_ratio = speed_ratio
        self.channel_ratio = channel_ratio
        self.fusion_kernel = fusion_kernel
        self.lateral_infl = lateral_infl
        self.lateral_activate = tuple(lateral_activate)
        super().__init__(**kwargs)

        self.lateral_connections: list[str] = []
        if not lateral:
            return
        if self.lateral_activate[0] == 1:
            self.conv1_lateral = self._lateral_conv(self.base_channels)
        for i in range(len(self.stage_blocks)):
            # No lateral connection after the last stage.
            if i != self.num_stages - 1 and self.lateral_activate[i + 1]:
                name = f"layer{i + 1}_lateral"
                self.add_module(name, self._lateral_conv(self.base_channels * 2**i * self.block.expansion))
                self.lateral_connections.append(name)

    def _lateral_conv(self, slow_channels: int) -> ConvModule:
        return ConvModule(
            slow_channels // self.channel_ratio,
            slow_channels * self.lateral_infl // self.channel_ratio,
            kernel_size=(self.fusion_kernel, 1, 1),
            stride=(self.speed_ratio, 1, 1),
            padding=((self.fusion_kernel - 1) // 2, 0, 0),
            bias=False,
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg if self.lateral_norm else None,
            act_cfg=self.act_cfg if self.lateral_norm else None,
        )

    def _lateral_inplanes(self, stage: int, inplanes: int) -> int:
        if self.lateral and self.lateral_activate[stage]:
            return inplanes * self.lateral_infl // self.channel_ratio
        return 0


@register()
class ResNet3dSlowOnly(ResNet3dPathway):
    """The slow pathway of SlowFast on its own, as MMAction2's ``ResNet3dSlowOnly``.

    Defaults differ from :class:`~engines.models.resnet3d.ResNet3d` in
    ``conv1_kernel=(1, 7, 7)``, ``inflate=(0, 0, 1, 1)`` and ``with_pool2=False``.
    Other keyword arguments are those of :class:`ResNet3dPathway`; ``lateral`` must be false.

    Raises:
        ModelConfigError: If ``lateral`` is true.
    """

    def __init__(
        self,
        conv1_kernel: IntOrSeq = (1, 7, 7),
        conv1_stride_t: int = 1,
        pool1_stride_t: int = 1,
        inflate: Sequence[Any] | int = (0, 0, 1, 1),
        with_pool2: bool = False,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("lateral", False):
            raise ModelConfigError("ResNet3dSlowOnly: lateral must be False (use ResNet3dSlowFast)")
        super().__init__(
            conv1_kernel=conv1_kernel,
            conv1_stride_t=conv1_stride_t,
            pool1_stride_t=pool1_stride_t,
            inflate=inflate,
            with_pool2=with_pool2,
            **kwargs,
        )


_SLOW_DEFAULT: ConfigDict = MappingProxyType(
    {
        "type": "resnet3d",
        "depth": 50,
        "pretrained": None,
        "lateral": True,
        "conv1_kernel": (1, 7, 7),
        "conv1_stride_t": 1,
        "pool1_stride_t": 1,
        "inflate": (0, 0, 1, 1),
    }
)
_FAST_DEFAULT: ConfigDict = MappingProxyType(
    {
        "type": "resnet3d",
        "depth": 50,
        "pretrained": None,
        "lateral": False,
        "base_channels": 8,
        "conv1_kernel": (5, 7, 7),
        "conv1_stride_t": 1,
        "pool1_stride_t": 1,
    }
)
_PATHWAYS: dict[str, type[ResNet3dPathway]] = {"resnet3d": ResNet3dPathway}


def _build_pathway(cfg: ConfigDict, where: str, **overrides: Any) -> ResNet3dPathway:
    type_name, kwargs = split_cfg(cfg, where)
    cls = _PATHWAYS.get(type_name)
    if cls is None:
        raise ModelConfigError(f"{where}.type: unknown pathway type {type_name!r}; valid types: {', '.join(_PATHWAYS)}")
    kwargs.update(overrides)
    check_keys(kwargs, cls, f"{where}: {cls.__name__}")
    try:
        return cls(**kwargs)
    except ModelConfigError as exc:
        raise ModelConfigError(f"{where}: {exc}") from exc


def take_every(x: torch.Tensor, rate: int) -> torch.Tensor:
    """Keep frames ``0, rate, 2·rate, ...`` exactly as MMAction2's nearest interpolation by ``1/rate`` does.

    ``F.interpolate(x, scale_factor=(1/rate, 1, 1), mode='nearest')`` yields
    ``int(T * (1/rate))`` frames and picks source frame ``floor(i * rate)``; a strided
    slice gives the same frames and exports to ONNX as a plain ``Slice``.
    """
    if rate == 1:
        return x
    length = int(x.shape[2] * (1.0 / rate))
    return x[:, :, : length * rate : rate]


@register()
class ResNet3dSlowFast(nn.Module):
    """SlowFast backbone: a slow, wide pathway and a fast, thin one joined by lateral convs.

    Input ``(N, C, T, H, W)``; the slow pathway sees every ``resample_rate``-th frame,
    the fast one every ``resample_rate // speed_ratio``-th. Returns ``(x_slow, x_fast)``.

    Args:
        pretrained: Training-only; ignored.
        resample_rate: Temporal stride of the slow pathway's input (tau).
        speed_ratio: Frame-rate ratio of fast to slow (alpha); copied into a lateral slow pathway.
        channel_ratio: Channel ratio of slow to fast (1/beta); copied into a lateral slow pathway.
        slow_pathway: Config of the slow pathway (``type='resnet3d'`` plus
            :class:`ResNet3dPathway` arguments).
        fast_pathway: Config of the fast pathway.
        init_cfg: Training-only; ignored.

    Raises:
        ModelConfigError: For bad pathway configs or ratios.
    """

    def __init__(
        self,
        pretrained: str | None = None,
        resample_rate: int = 8,
        speed_ratio: int = 8,
        channel_ratio: int = 8,
        slow_pathway: ConfigDict = _SLOW_DEFAULT,
        fast_pathway: ConfigDict = _FAST_DEFAULT,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        if not (isinstance(resample_rate, int) and isinstance(speed_ratio, int)) or not (
            resample_rate >= speed_ratio >= 1
        ):
            raise ModelConfigError(
                f"resample_rate and speed_ratio: expected ints with resample_rate >= speed_ratio >= 1, "
                f"got {resample_rate!r} and {speed_ratio!r}"
            )
        self.resample_rate = resample_rate
        self.speed_ratio = speed_ratio
        self.channel_ratio = channel_ratio
        overrides: dict[str, Any] = {}
        if isinstance(slow_pathway, Mapping) and slow_pathway.get("lateral", False):
            overrides = dict(speed_ratio=speed_ratio, channel_ratio=channel_ratio)
            activate = tuple(slow_pathway.get("lateral_activate", (1, 1, 1, 1)))
            if not all(activate[: slow_pathway.get("num_stages", 4)]):
                raise ModelConfigError(
                    f"slow_pathway.lateral_activate: SlowFast needs every lateral connection, got {activate!r}"
                )
        self.slow_path = _build_pathway(slow_pathway, "slow_pathway", **overrides)
        self.fast_path = _build_pathway(fast_pathway, "fast_pathway")
        if len(self.slow_path.res_layers) != len(self.fast_path.res_layers):
            raise ModelConfigError(
                f"slow_pathway and fast_pathway: expected the same number of stages, got "
                f"{len(self.slow_path.res_layers)} and {len(self.fast_path.res_layers)}"
            )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        slow, fast = self.slow_path, self.fast_path
        x_slow = slow.maxpool(slow.conv1(take_every(x, self.resample_rate)))
        x_fast = fast.maxpool(fast.conv1(take_every(x, self.resample_rate // self.speed_ratio)))
        if slow.lateral:
            x_slow = torch.cat((x_slow, slow.conv1_lateral(x_fast)), dim=1)
        last = len(slow.res_layers) - 1
        for i, name in enumerate(slow.res_layers):
            x_slow = getattr(slow, name)(x_slow)
            x_fast = getattr(fast, name)(x_fast)
            if i != last and slow.lateral:
                lateral = getattr(slow, slow.lateral_connections[i])
                x_slow = torch.cat((x_slow, lateral(x_fast)), dim=1)
        return x_slow, x_fast
