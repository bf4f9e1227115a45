"""mmpose's top-down test path in numpy: person box → crop → model input, SimCC → frame keypoints.

Each step reproduces the mmpose 1.x function named beside it, with the same arithmetic, so
crops are pixel-identical and keypoints agree to float rounding:

* :func:`bbox_xyxy2cs` (``GetBBoxCenterScale``, padding 1.25) and :func:`fix_aspect_ratio`
  (``TopdownAffine._fix_aspect_ratio``): the box grows to the model's aspect ratio;
* :func:`warp_matrix` (``get_warp_matrix`` / ``get_udp_warp_matrix``, no rotation) and
  :func:`crop_people` (``cv2.warpAffine``, ``INTER_LINEAR``, zero border);
* :func:`normalise` (``PoseDataPreprocessor``: BGR→RGB, ``(x - mean) / std``, NCHW float32);
* :func:`decode_simcc` (``SimCCLabel.decode`` / ``get_simcc_maximum``: argmax per axis,
  score = the smaller of the two maxima, location -1 where the score is ≤ 0, divided by
  ``simcc_split_ratio``) and :func:`to_image` (``TopdownPoseEstimator.add_pred_to_datasample``).

:class:`TopdownSpec` reads these settings from an mmpose config (codec, test pipeline, data
preprocessor).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from detectors.errors import DetectorConfigError

#: Test-pipeline steps that need no work here (the image is already loaded, packing is ours).
_PASSIVE_STEPS = frozenset({"LoadImage", "PackPoseInputs"})


@dataclass(frozen=True)
class TopdownSpec:
    """How a top-down SimCC model sees a person.

    Attributes:
        input_size: Model input ``(w, h)``.
        padding: Box enlargement before the aspect-ratio fix (``GetBBoxCenterScale``).
        use_udp: Unbiased data processing warp (``TopdownAffine(use_udp=True)``).
        mean, std: Per-channel normalisation in the model's channel order, or None for none.
        bgr_to_rgb: Swap BGR frames to RGB before normalising.
        simcc_split_ratio: SimCC bins per input pixel.
    """

    input_size: tuple[int, int] = (192, 256)
    padding: float = 1.25
    use_udp: bool = False
    mean: tuple[float, float, float] | None = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] | None = (58.395, 57.12, 57.375)
    bgr_to_rgb: bool = True
    simcc_split_ratio: float = 2.0

    @classmethod
    def from_config(cls, cfg: Any, where: str = "config") -> TopdownSpec:
        """Read the spec from an mmpose config (mmengine ``Config`` or dict).

        Raises:
            DetectorConfigError: If the codec, test pipeline or preprocessor is missing or not
                one this module reproduces (the message names the key).
        """
        model = _get(cfg, "model") or {}
        head = model.get("head") or {}
        codec = head.get("decoder") or _get(cfg, "codec")
        if not isinstance(codec, Mapping) or codec.get("type") != "SimCCLabel":
            raise DetectorConfigError(
                f"{where}: model.head.decoder: expected a SimCCLabel codec (RTMPose), got {_short(codec)}"
            )
        if codec.get("use_dark") or codec.get("decode_visibility"):
            raise DetectorConfigError(f"{where}: model.head.decoder: use_dark / decode_visibility are not supported")
        pipeline = _test_pipeline(cfg)
        if pipeline is None:
            raise DetectorConfigError(
                f"{where}: no test pipeline (test_dataloader.dataset.pipeline, val_dataloader.dataset.pipeline "
                "or test_pipeline)"
            )
        padding, affine = 1.25, None
        for step in pipeline:
            kind = step.get("type")
            if kind == "GetBBoxCenterScale":
                padding = float(step.get("padding", 1.25))
            elif kind == "TopdownAffine":
                affine = step
            elif kind not in _PASSIVE_STEPS:
                raise DetectorConfigError(
                    f"{where}: test pipeline step {kind!r} is not supported; expected LoadImage, GetBBoxCenterScale, "
                    "TopdownAffine, PackPoseInputs"
                )
        if affine is None:
            raise DetectorConfigError(f"{where}: the test pipeline has no TopdownAffine step")
        size = tuple(int(v) for v in affine["input_size"])
        codec_size = tuple(int(v) for v in codec.get("input_size", size))
        if len(size) != 2 or size != codec_size:
            raise DetectorConfigError(
                f"{where}: TopdownAffine.input_size {size} differs from the codec's input_size {codec_size}"
            )
        pre = model.get("data_preprocessor") or {}
        mean, std = pre.get("mean"), pre.get("std")
        return cls(
            input_size=(size[0], size[1]),
            padding=padding,
            use_udp=bool(affine.get("use_udp", False)),
            mean=None if mean is None else _three(mean, f"{where}: model.data_preprocessor.mean"),
            std=None if std is None else _three(std, f"{where}: model.data_preprocessor.std"),
            bgr_to_rgb=bool(pre.get("bgr_to_rgb", False) or pre.get("rgb_to_bgr", False)),
            simcc_split_ratio=float(codec.get("simcc_split_ratio", 2.0)),
        )


def _get(cfg: Any, key: str) -> Any:
    return cfg.get(key) if hasattr(cfg, "get") else None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _three(values: Sequence[float], where: str) -> tuple[float, float, float]:
    if len(values) != 3:
        raise DetectorConfigError(f"{where}: expected 3 values, got {list(values)}")
    return float(values[0]), float(values[1]), float(values[2])


def _test_pipeline(cfg: Any) -> list[Mapping[str, Any]] | None:
    """The pipeline mmpose's ``inference_topdown`` uses (``test_dataloader.dataset.pipeline``)."""
    for loader in ("test_dataloader", "val_dataloader"):
        dataset = (_get(cfg, loader) or {}).get("dataset") or {}
        if dataset.get("pipeline"):
            return list(dataset["pipeline"])
    for key in ("test_pipeline", "val_pipeline"):
        if _get(cfg, key):
            return list(_get(cfg, key))
    return None


def bbox_xyxy2cs(boxes: np.ndarray, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(N, 2)`` and scales ``(N, 2)`` (w, h times ``padding``) of ``x1 y1 x2 y2`` boxes."""
    scale = (boxes[..., 2:] - boxes[..., :2]) * padding
    center = (boxes[..., 2:] + boxes[..., :2]) * 0.5
    return center, scale


def fix_aspect_ratio(scale: np.ndarray, aspect_ratio: float) -> np.ndarray:
    """Grow each ``(w, h)`` to ``w / h == aspect_ratio`` (the longer side relative to it stays)."""
    w, h = np.hsplit(scale, [1])
    out: np.ndarray = np.where(w > h * aspect_ratio, np.hstack([w, w / aspect_ratio]), np.hstack([h * aspect_ratio, h]))
    return out


def warp_matrix(
    center: np.ndarray, scale: np.ndarray, output_size: tuple[int, int], use_udp: bool = False
) -> np.ndarray:
    """The 2×3 affine matrix taking the box ``center ± scale / 2`` onto the ``output_size`` crop.

    Built as mmpose does (three point pairs through ``cv2.getAffineTransform`` in float32;
    UDP: its closed form), so the crop is pixel-identical to mmpose's.
    """
    if use_udp:
        scale_x = (output_size[0] - 1) / scale[0]
        scale_y = (output_size[1] - 1) / scale[1]
        mat = np.zeros((2, 3), dtype=np.float32)
        mat[0, 0] = scale_x
        mat[0, 2] = scale_x * (-0.5 * (center[0] * 2) + 0.5 * scale[0])
        mat[1, 1] = scale_y
        mat[1, 2] = scale_y * (-0.5 * (center[1] * 2) + 0.5 * scale[1])
        return mat
    shift = np.array((0.0, 0.0))
    dst_w, dst_h = output_size
    src_dir = np.array([scale[0] * -0.5, 0.0])  # mmpose 1.3: the box's left edge, then a right angle
    dst_dir = np.array([dst_w * -0.5, 0.0])
    src = np.zeros((3, 2), dtype=np.float32)
    src[0, :] = center + scale * shift
    src[1, :] = center + src_dir + scale * shift
    src[2, :] = _third_point(src[0, :], src[1, :])
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0, :] = [dst_w * 0.5, dst_h * 0.5]
    dst[1, :] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    dst[2, :] = _third_point(dst[0, :], dst[1, :])
    out: np.ndarray = cv2.getAffineTransform(src.astype(np.float32), dst.astype(np.float32))
    return out


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a - b`` turned 90° anticlockwise about ``b`` (mmpose's ``_get_3rd_point``)."""
    direction = a - b
    return b + np.r_[-direction[1], direction[0]]


def crop_people(image: np.ndarray, boxes: np.ndarray, spec: TopdownSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every box's crop of ``image``, as mmpose's ``GetBBoxCenterScale`` + ``TopdownAffine``.

    Args:
        image: ``H×W×3`` uint8 frame.
        boxes: ``(N, 4)`` ``x1 y1 x2 y2`` in pixels (their dtype is kept, as mmpose keeps it).
        spec: Input size, padding and warp.

    Returns:
        ``crops (N, h, w, 3)`` uint8 and the ``centers (N, 2)`` / ``scales (N, 2)`` that map
        keypoints back (:func:`to_image`).
    """
    w, h = spec.input_size
    boxes = np.asarray(boxes).reshape(-1, 4)
    center, scale = bbox_xyxy2cs(boxes, spec.padding)
    scale = fix_aspect_ratio(scale, aspect_ratio=w / h) if len(boxes) else scale
    crops = np.zeros((len(boxes), h, w, 3), np.uint8)
    for i in range(len(boxes)):
        mat = warp_matrix(center[i], scale[i], (w, h), spec.use_udp)
        crops[i] = cv2.warpAffine(image, mat, (int(w), int(h)), flags=cv2.INTER_LINEAR)
    return crops, center, scale


def normalise(crops: np.ndarray, spec: TopdownSpec) -> np.ndarray:
    """``(N, h, w, 3)`` uint8 crops → ``(N, 3, h, w)`` float32 model input (``PoseDataPreprocessor``)."""
    x = crops[..., ::-1] if spec.bgr_to_rgb else crops
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).astype(np.float32)
    if spec.mean is not None and spec.std is not None:
        mean = np.asarray(spec.mean, np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(spec.std, np.float32).reshape(1, 3, 1, 1)
        x = (x - mean) / std
    return x


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints ``(N, K, 2)`` in crop pixels and scores ``(N, K)`` from SimCC logits ``(N, K, bins)``.

    Location: the argmax of each axis (first on ties), ``-1`` where the score is ≤ 0, divided
    by ``split_ratio``; score: the smaller of the x and y maxima (``get_simcc_maximum``).
    """
    n, k = simcc_x.shape[:2]
    flat_x, flat_y = simcc_x.reshape(n * k, -1), simcc_y.reshape(n * k, -1)
    locs = np.stack((np.argmax(flat_x, axis=1), np.argmax(flat_y, axis=1)), axis=-1).astype(np.float32)
    vals = np.minimum(np.amax(flat_x, axis=1), np.amax(flat_y, axis=1))
    locs[vals <= 0.0] = -1
    locs /= split_ratio
    return locs.reshape(n, k, 2), vals.reshape(n, k)


def to_image(keypoints: np.ndarray, center: np.ndarray, scale: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """Crop-pixel keypoints ``(N, K, 2)`` → frame pixels (float32), as ``add_pred_to_datasample``."""
    out = keypoints.copy()
    out[..., :2] = (
        keypoints[..., :2] / np.asarray(input_size)[None, None] * scale[:, None]
        + center[:, None]
        - 0.5 * scale[:, None]
    )
    return out
