"""Recognizers: backbone + head, scoring a normalised batch of views like MMAction2's ``predict``.

``forward`` takes the tensor that MMAction2's ``ActionDataPreprocessor`` hands the
model (already normalised, channels already in model order) and returns the class
scores that ``model.predict`` stores in ``pred_score``:

* :class:`Recognizer2D`: ``(N, V, C, H, W)``; ``V`` is ``num_clips * num_crops``
  frames (a multiple of ``num_segments`` for TSM).
* :class:`Recognizer3D`: ``(N, V, C, T, H, W)``; ``V`` is ``num_clips * num_crops``.

Scores are ``(N, num_classes)``, the views folded by the head's ``average_clips``
(``'score'``: mean of raw scores, ``'prob'``: mean of softmax probabilities). With
``average_clips=None`` MMAction2 does not fold the clips; then the result is
``(N, clips, num_classes)``, squeezed to ``(N, num_classes)`` when there is one clip
per sample (TSN always; TSM with ``V == num_segments``; 3D with ``V == 1``).

The ``data_preprocessor`` section is not a module here: its settings are exposed as
attributes (``input_format``, ``mean``, ``std``, ``to_rgb``) for the pipeline that
prepares inputs. MMAction2 registers its ``mean``/``std`` buffers as non-persistent,
so model-zoo ``state_dict``s hold only ``backbone.*`` and ``cls_head.*`` keys.

``test_cfg``: ``max_testing_views`` is accepted and ignored (it only splits the views
into smaller backbone batches; the scores are the same); ``fcn_test=True`` is supported
with a neck whose head takes it (TPN + ``TPNHead``) and otherwise raises
:class:`~engines.errors.ModelConfigError`.

A ``neck`` (TPN) runs between backbone and head as MMAction2 runs it at test time: the
backbone's levels go to the neck (a 2D recognizer first folds each level's frames into
``(clips, C, num_segs, H, W)``, ``num_segs`` being ``test_cfg.num_segs`` or the backbone's
``num_segments`` under ``fcn_test``, all the views otherwise), and the neck's map goes to the
head; the neck's training-only auxiliary loss is not computed.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from engines.errors import InputShapeError, ModelConfigError
from engines.models.heads import BaseHead
from engines.models.registry import build, register

logger = logging.getLogger(__name__)

_PREPROCESSOR_KEYS = frozenset({"type", "mean", "std", "to_rgb", "to_float32", "blending", "format_shape"})
_TEST_CFG_KEYS = frozenset({"fcn_test", "max_testing_views", "num_segs"})
# Backbone type prefixes MMAction2's recognizers build from other libraries (here: plain-torch
# modules with those libraries' keys, registered under the prefixed names).
_EXTERNAL_BACKBONES = ("mmcls", "mmpretrain", "torchvision", "timm")
_FEATURE_SHAPES = ("NCHW", "NHWC", "NLC")


def _as_floats(value: Sequence[float] | None, where: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ModelConfigError(f"{where}: expected a sequence of numbers, got {value!r}") from exc


def _static_size(x: Tensor, dim: int) -> int:
    """Size of a dimension that an exported graph keeps fixed (the view count), read without a tracer warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return int(x.shape[dim])


class BaseRecognizer(nn.Module):
    """Backbone + head with MMAction2's constructor and ``backbone.*``/``cls_head.*`` names.

    Built in eval mode. Subclasses set :attr:`input_format` and implement :meth:`forward`.

    Args:
        backbone: Backbone config, ``dict(type=..., ...)``.
        cls_head: Head config; one of the heads in :mod:`engines.models.heads`.
        neck: ``None`` or a neck config (``dict(type='TPN', ...)``).
        data_preprocessor: ``dict(type='ActionDataPreprocessor', mean=..., std=..., to_rgb=...,
            format_shape=...)``; read into attributes, not built.
        train_cfg: Ignored (training only).
        test_cfg: ``None`` or a dict; see the module docstring for the supported keys.
        init_cfg: Ignored (weights come from checkpoints).

    Attributes:
        input_format: ``'NCHW'`` (2D) or ``'NCTHW'`` (3D), MMAction2's ``format_shape``.
        num_classes: Number of classes the head scores.
        mean: Per-channel mean the inputs were normalised with, or ``None``.
        std: Per-channel std the inputs were normalised with, or ``None``.
        to_rgb: Whether MMAction2 flips BGR input to RGB before normalising.

    Raises:
        ModelConfigError: For an unsupported ``test_cfg`` or an invalid ``data_preprocessor``.
        UnknownTypeError: For an unknown backbone or head type.
    """

    input_format: str = "NCHW"

    def __init__(
        self,
        backbone: Mapping[str, Any],
        cls_head: Mapping[str, Any] | None = None,
        neck: Mapping[str, Any] | None = None,
        data_preprocessor: Mapping[str, Any] | None = None,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        if cls_head is None:
            raise ModelConfigError("model.cls_head: a recognizer needs a classification head")
        self._read_preprocessor(data_preprocessor)
        backbone = dict(backbone)
        type_name = str(backbone.get("type", ""))
        prefix = type_name.split(".", 1)[0] if "." in type_name else ""
        #: Where MMAction2 would take the backbone from: 'mmaction2', 'mmcls', 'mmpretrain', 'torchvision', 'timm'.
        self.backbone_from = prefix if prefix in _EXTERNAL_BACKBONES else "mmaction2"
        self.feature_shape: str | None = None
        if self.backbone_from in ("torchvision", "timm"):
            self.feature_shape = backbone.pop("feature_shape", None)
            if self.feature_shape not in (None, *_FEATURE_SHAPES):
                raise ModelConfigError(
                    f"model.backbone.feature_shape: expected one of {_FEATURE_SHAPES}, got {self.feature_shape!r}"
                )
        self.backbone = build(backbone, where="model.backbone")
        self.neck: nn.Module | None = build(neck, where="model.neck") if neck is not None else None
        head = build(cls_head, where="model.cls_head")
        if not isinstance(head, BaseHead):
            raise ModelConfigError(f"model.cls_head: {type(head).__name__} is not a classification head")
        self.cls_head: BaseHead = head
        self.test_cfg = self._check_test_cfg(test_cfg)
        self.fcn_test = bool(self.test_cfg.get("fcn_test", False))
        self.num_classes = head.num_classes
        self.eval()

    def _read_preprocessor(self, cfg: Mapping[str, Any] | None) -> None:
        where = "model.data_preprocessor"
        cfg = dict(cfg or {"type": "ActionDataPreprocessor"})
        if cfg.get("type") != "ActionDataPreprocessor":
            raise ModelConfigError(f"{where}.type: expected 'ActionDataPreprocessor', got {cfg.get('type')!r}")
        unknown = sorted(set(cfg) - _PREPROCESSOR_KEYS)
        if unknown:
            raise ModelConfigError(
                f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(sorted(_PREPROCESSOR_KEYS))}"
            )
        expected = type(self).input_format
        fmt = cfg.get("format_shape", expected)
        if fmt != expected:
            raise ModelConfigError(f"{where}.format_shape: {type(self).__name__} takes {expected!r} input, got {fmt!r}")
        mean = _as_floats(cfg.get("mean"), f"{where}.mean")
        std = _as_floats(cfg.get("std"), f"{where}.std")
        if (mean is None) != (std is None):
            raise ModelConfigError(f"{where}: set both mean and std, or neither")
        if mean is not None and std is not None:
            if len(mean) != len(std):
                raise ModelConfigError(f"{where}: mean has {len(mean)} values but std has {len(std)}")
            if any(s == 0 for s in std):
                raise ModelConfigError(f"{where}.std: values must be non-zero, got {std}")
        self.mean = mean
        self.std = std
        self.to_rgb = bool(cfg.get("to_rgb", False))

    def _check_test_cfg(self, test_cfg: Mapping[str, Any] | None) -> dict[str, Any]:
        cfg = dict(test_cfg or {})
        if cfg.get("fcn_test", False) and (self.neck is None or not getattr(self.cls_head, "supports_fcn_test", False)):
            raise ModelConfigError(
                "model.test_cfg.fcn_test: fully-convolutional testing is supported only with a neck and TPNHead; "
                "remove fcn_test"
            )
        unknown = sorted(set(cfg) - _TEST_CFG_KEYS)
        if unknown:
            # MMAction2 1.x ignores these too (e.g. a 0.x-style average_clips: set it on cls_head).
            logger.warning("model.test_cfg: ignoring key(s) %s that MMAction2 1.x does not read", unknown)
        return cfg

    def _fold_clips(self, scores: Tensor, clips: int) -> Tensor:
        scores = self.cls_head.average_clip(scores, clips)
        if scores.dim() == 3 and clips == 1:
            scores = scores.squeeze(1)
        return scores


@register()
class Recognizer2D(BaseRecognizer):
    """Frame-level (2D) recognizer: TSN, TSM.

    ``forward(inputs)``: ``inputs`` is ``(N, V, C, H, W)``; returns the scores described in
    the module docstring.
    """

    input_format = "NCHW"

    def forward(self, inputs: Tensor) -> Tensor:
        """Score a batch of ``N`` samples of ``V`` frames each.

        Raises:
            InputShapeError: If ``inputs`` is not 5-D or ``V`` does not fit the head.
        """
        if inputs.dim() != 5:
            raise InputShapeError(f"Recognizer2D expects (N, V, C, H, W) input, got shape {tuple(inputs.shape)}")
        num_views = _static_size(inputs, 1)
        if self.neck is not None:
            return self._forward_neck(inputs, num_views)
        clips = self.cls_head.clips_per_sample(num_views)  # checks V before the backbone sees it
        frames = inputs.reshape((-1, *inputs.shape[2:]))
        scores = self.cls_head(self._features(frames), num_segs=num_views)
        return self._fold_clips(scores, clips)

    def _features(self, frames: Tensor) -> Tensor:
        """The backbone's features as MMAction2's ``Recognizer2D.extract_feat`` takes them.

        mmcls / mmpretrain backbones return a tuple of one map; torchvision backbones run
        their ``features`` (when they have one) and timm backbones ``forward_features``, then
        are average-pooled to ``(B, C, 1, 1)`` following ``feature_shape`` (guessed from the
        rank when unset: 4-D ``'NCHW'``, 3-D ``'NLC'``).

        Raises:
            InputShapeError: If an mmcls / mmpretrain backbone returns more than one map.
        """
        backbone: Any = self.backbone
        if self.backbone_from == "torchvision" and hasattr(backbone, "features"):
            x = backbone.features(frames)
        elif self.backbone_from == "timm":
            x = backbone.forward_features(frames)
        else:
            x = backbone(frames)
        if self.backbone_from in ("mmcls", "mmpretrain") and isinstance(x, tuple):
            if len(x) != 1:
                raise InputShapeError(
                    f"model.backbone: a {self.backbone_from} backbone must return one feature map, got {len(x)}; "
                    "set its out_indices to one stage"
                )
            x = x[0]
        if self.backbone_from in ("torchvision", "timm"):
            shape = self.feature_shape or ("NLC" if x.dim() == 3 else "NCHW" if x.dim() == 4 else None)
            if shape == "NHWC":
                x = x.mean(dim=(1, 2))
            elif shape == "NCHW":
                x = x.mean(dim=(2, 3))
            elif shape == "NLC":
                x = x.mean(dim=1)
            x = x.reshape(x.shape[0], -1, 1, 1)
        return x

    def _forward_neck(self, inputs: Tensor, num_views: int) -> Tensor:
        """Backbone levels folded into clips of ``num_segs`` frames, neck, head (MMAction2's test path)."""
        assert self.neck is not None
        if self.fcn_test:
            num_segs = int(self.test_cfg.get("num_segs", getattr(self.backbone, "num_segments", num_views)))
        else:
            num_segs = num_views
        if num_views % num_segs:
            raise InputShapeError(
                f"Recognizer2D with a neck expects the views per sample to be a multiple of num_segs={num_segs}, "
                f"got {num_views}"
            )
        feats = self.backbone(inputs.reshape((-1, *inputs.shape[2:])))
        levels = feats if isinstance(feats, tuple) else (feats,)
        clips_in = [f.reshape((-1, num_segs, *f.shape[1:])).transpose(1, 2) for f in levels]
        x = self.neck(clips_in)
        if self.fcn_test:
            scores = self.cls_head(x, num_segs=num_segs, fcn_test=True)
            return self._fold_clips(scores, num_views // num_segs)
        if _static_size(x, 2) != 1:
            raise InputShapeError(
                f"Recognizer2D with a neck and no fcn_test needs the neck to pool the {num_segs} views to one "
                f"time step, got {_static_size(x, 2)}; set model.test_cfg.fcn_test=True"
            )
        scores = self.cls_head(x.squeeze(2), num_segs=1)
        return self._fold_clips(scores, 1)


@register()
class Recognizer3D(BaseRecognizer):
    """Clip-level (3D) recognizer: I3D, SlowOnly, SlowFast, X3D, C3D.

    ``forward(inputs)``: ``inputs`` is ``(N, V, C, T, H, W)``; returns the scores described in
    the module docstring.
    """

    input_format = "NCTHW"

    def forward(self, inputs: Tensor) -> Tensor:
        """Score a batch of ``N`` samples of ``V`` clips each.

        Raises:
            InputShapeError: If ``inputs`` is not 6-D.
        """
        if inputs.dim() != 6:
            raise InputShapeError(f"Recognizer3D expects (N, V, C, T, H, W) input, got shape {tuple(inputs.shape)}")
        num_views = _static_size(inputs, 1)
        clips = self.cls_head.clips_per_sample(num_views)
        batch = inputs.reshape((-1, *inputs.shape[2:]))
        if self.neck is not None:
            scores = self.cls_head(self.neck(self.backbone(batch)), fcn_test=self.fcn_test)
        else:
            scores = self.cls_head(self.backbone(batch), num_segs=num_views)
        return self._fold_clips(scores, clips)
