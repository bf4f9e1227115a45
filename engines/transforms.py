"""Sampled BGR frames → one model input, as MMAction2's test pipeline and preprocessor make it.

:func:`preprocess` does, for the frames a :class:`~engines.clip_spec.ClipSpec` sampled:

1. ``Resize`` — ``cv2.resize`` with the size rule and interpolation of MMAction2's
   ``Resize`` + ``mmcv.imresize`` (cv2 backend), so the pixels are bit-identical. Each
   distinct frame is resized once, even when sampling repeats it.
2. ``CenterCrop`` / ``ThreeCrop`` / ``TenCrop`` — MMAction2's crop positions and view
   order (ThreeCrop: left/top, right/bottom, middle; TenCrop: upper-left, upper-right,
   lower-left, lower-right, centre, each followed by its horizontal flip). Crops are
   slices, never copies of the frame.
3. Channel order and normalisation — BGR→RGB when MMAction2's model would see RGB (see
   :mod:`engines.clip_spec`), then ``(x - mean) / std`` in float32. Both happen in one
   pass through a per-channel 256-entry float32 lookup table (``cv2.LUT``), which gives
   exactly the float32 values ``ActionDataPreprocessor`` computes.
4. ``FormatShape`` — views ordered crop-major, then clip, then frame:
   ``(V, C, H, W)`` with ``V = crops × clips × clip_len`` for ``NCHW``, or
   ``(V, C, T, H, W)`` with ``V = crops × clips`` for ``NCTHW``.

The output has no batch axis; stack samples for ``(N, V, ...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np

from engines.clip_spec import ClipSpec, ResizeSpec

_CV2_INTERP: dict[str, int] = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}


class CropBox(NamedTuple):
    """One view cut from a frame: top-left corner, size and whether it is mirrored."""

    x: int
    y: int
    width: int
    height: int
    flip: bool = False


def resize_frame(frame: np.ndarray, resize: ResizeSpec | None) -> np.ndarray:
    """Apply MMAction2's ``Resize`` to one ``H×W×C`` frame (any channel order).

    Returns the frame itself when the size does not change (``cv2.resize`` would copy it
    unchanged).

    Raises:
        ValueError: If the frame is not an ``H×W×C`` array.
    """
    if resize is None:
        return frame
    if frame.ndim != 3:
        raise ValueError(f"frame: expected an H×W×C array, got shape {frame.shape}")
    height, width = frame.shape[:2]
    size = resize.output_size(width, height)
    if size == (width, height):
        return frame
    return cv2.resize(frame, size, interpolation=_CV2_INTERP[resize.interpolation])


def short_side_size(short_side: int, width: int, height: int) -> tuple[int, int]:
    """``(w, h)`` scaled so that the shorter side is ``short_side`` (mmcv's ``rescale_size``
    with ``(short_side, inf)``, as MMAction2's skeleton and spatio-temporal demos resize)."""
    scale = short_side / min(width, height)
    return max(1, int(width * scale + 0.5)), max(1, int(height * scale + 0.5))


def crop_boxes(height: int, width: int, spec: ClipSpec) -> list[CropBox]:
    """The views MMAction2's crop step cuts from a (resized) ``height × width`` frame, in order.

    Raises:
        ValueError: If the crop does not fit the frame, or a ThreeCrop matches neither side
            (MMAction2 asserts ``crop_h == img_h or crop_w == img_w``).
    """
    if spec.crop == "none" or spec.crop_size is None:
        return [CropBox(0, 0, width, height)]
    cw, ch = spec.crop_size
    if cw > width or ch > height:
        raise ValueError(f"{spec.crop}: crop {cw}x{ch} (w x h) is larger than the resized frame {width}x{height}")
    if spec.crop == "CenterCrop":
        return [CropBox((width - cw) // 2, (height - ch) // 2, cw, ch)]
    if spec.crop == "ThreeCrop":
        if ch == height:
            step = (width - cw) // 2
            return [CropBox(0, 0, cw, ch), CropBox(2 * step, 0, cw, ch), CropBox(step, 0, cw, ch)]
        if cw == width:
            step = (height - ch) // 2
            return [CropBox(0, 0, cw, ch), CropBox(0, 2 * step, cw, ch), CropBox(0, step, cw, ch)]
        raise ValueError(
            f"ThreeCrop: crop {cw}x{ch} must span the frame's full height or width, got frame {width}x{height}; "
            "resize the short side to the crop size first"
        )
    w_step, h_step = (width - cw) // 4, (height - ch) // 4
    boxes = []
    for x, y in ((0, 0), (4 * w_step, 0), (0, 4 * h_step), (4 * w_step, 4 * h_step), (2 * w_step, 2 * h_step)):
        boxes += [CropBox(x, y, cw, ch), CropBox(x, y, cw, ch, flip=True)]
    return boxes


def output_shape(spec: ClipSpec, height: int, width: int, *, resized: bool = False) -> tuple[int, ...]:
    """Shape :func:`preprocess` returns for frames of ``height × width``.

    Args:
        spec: The clip settings.
        height: Frame height.
        width: Frame width.
        resized: The frames are already resized (``resize_on_push``).

    Raises:
        ValueError: If the frame size is not positive.
    """
    if resized or spec.resize is None:
        if spec.crop_size is not None:
            h, w = spec.crop_size[1], spec.crop_size[0]
        else:
            h, w = height, width
        if spec.input_format == "NCHW":
            return (spec.num_views, 3, h, w)
        return (spec.num_views, 3, spec.clip_len, h, w)
    return spec.input_shape(height, width)


def preprocess(
    frames: Sequence[np.ndarray],
    spec: ClipSpec,
    *,
    normalize: bool = True,
    resized: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Turn the sampled frames of one sample into the model input.

    Args:
        frames: ``spec.frames_per_sample`` BGR uint8 ``H×W×3`` frames, in sampling order
            (clip by clip), e.g. ``[window[i] for i in spec.sample(len(window)).ravel()]``.
            The same array may appear several times; it is processed once.
        spec: The clip settings.
        normalize: Apply ``(x - mean) / std``; False gives raw 0–255 values (for engines
            that fold normalisation in). Without mean/std in the spec nothing is normalised.
        resized: The frames already went through ``spec.resize`` (``resize_on_push``).
        out: Optional float32 C-contiguous array of the output shape to write into.

    Returns:
        float32 ``(V, 3, H, W)`` (NCHW) or ``(V, 3, T, H, W)`` (NCTHW).

    Raises:
        ValueError: If the number of frames is wrong, a frame is not ``H×W×3`` uint8,
            frames differ in size after resizing, the crop does not fit, or ``out`` has the
            wrong shape or dtype.
    """
    count = spec.frames_per_sample
    if len(frames) != count:
        raise ValueError(
            f"preprocess: expected {count} frames ({spec.clips_per_sample} clips × {spec.clip_len}), got {len(frames)}"
        )
    planes_of: dict[int, tuple[np.ndarray, ...]] = {}
    ordered: list[tuple[np.ndarray, ...]] = []
    size: tuple[int, int] | None = None
    for index, frame in enumerate(frames):
        key = id(frame)
        planes = planes_of.get(key)
        if planes is None:
            if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
                raise ValueError(f"preprocess: frame {index}: expected H×W×3 uint8 BGR, got {got}")
            image = frame if resized else resize_frame(frame, spec.resize)
            planes = tuple(cv2.split(image))
            planes_of[key] = planes
            if size is None:
                size = image.shape[:2]
            elif image.shape[:2] != size:
                raise ValueError(
                    f"preprocess: frame {index} is {image.shape[1]}x{image.shape[0]} after resizing, "
                    f"frame 0 is {size[1]}x{size[0]}; all frames of a sample must match"
                )
        ordered.append(planes)
    if size is None:  # unreachable: frames_per_sample >= 1
        raise ValueError("preprocess: no frames")
    boxes = crop_boxes(size[0], size[1], spec)
    view_h, view_w = boxes[0].height, boxes[0].width
    num_crops, clip_len = len(boxes), spec.clip_len
    if spec.input_format == "NCHW":
        shape: tuple[int, ...] = (num_crops * count, 3, view_h, view_w)
    else:
        shape = (num_crops * spec.clips_per_sample, 3, clip_len, view_h, view_w)
    if out is None:
        out = np.empty(shape, np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(
            f"preprocess: out: expected a C-contiguous float32 array of shape {shape}, got {out.dtype} {out.shape}"
        )
    if spec.input_format == "NCHW":
        views = out.reshape(num_crops, count, 3, view_h, view_w)
    else:
        views = out.reshape(num_crops, spec.clips_per_sample, 3, clip_len, view_h, view_w)

    def plane(crop: int, m: int, channel: int) -> np.ndarray:
        """The contiguous ``(h, w)`` output plane of frame ``m``, view ``crop``, channel ``channel``."""
        if spec.input_format == "NCHW":
            return views[crop, m, channel]
        return views[crop, m // clip_len, channel, m % clip_len]

    table = spec.lookup_table(normalize)
    luts = [table[c].reshape(1, 256) for c in range(3)]
    channel_src = (2, 1, 0) if spec.bgr_to_rgb else (0, 1, 2)
    for m, planes in enumerate(ordered):
        for c, box in enumerate(boxes):
            for out_ch, in_ch in enumerate(channel_src):
                target = plane(c, m, out_ch)
                if box.flip:  # TenCrop's mirrored twin directly follows its box
                    _into(cv2.flip(plane(c - 1, m, out_ch), 1, dst=target), target)
                    continue
                src = planes[in_ch][box.y : box.y + box.height, box.x : box.x + box.width]
                _into(cv2.LUT(src, luts[in_ch], dst=target), target)
    return out


def _into(result: np.ndarray, target: np.ndarray) -> None:
    """Copy a cv2 result into ``target`` unless cv2 already wrote it there (it does for
    contiguous targets of the right size and type)."""
    if result is not target and not np.shares_memory(result, target):
        target[...] = result
