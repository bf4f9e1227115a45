"""MMAction2 1.2's skeleton test pipelines in numpy: keypoints of a window → the model's input.

A per-person model sees, for one sample, MMAction2's ``PackActionInputs`` ``inputs`` before
batching:

* PoseC3D (``FormatShape(input_format='NCTHW_Heatmap')``): heatmap volumes
  ``(views, K, T, H, W)`` float32, ``views = num_clips`` (× 2 with ``GeneratePoseTarget(double=True)``);
* ST-GCN / ST-GCN++ / 2s-AGCN (``FormatGCNInput``): ``(num_clips, M, T, V, C)`` float32.

Each transform is a small class built from MMAction2's keyword arguments and called on a
:class:`SkeletonSample` (the typed replacement of MMAction2's ``results`` dict); only test-mode
behaviour exists (no random augmentation). The numbers are MMAction2 1.2's, operation for
operation (same dtypes, same float32 / float64 promotions), checked against MMAction2's own
transforms in ``tests/engines/test_skeleton_transforms.py``.

Usage::

    pipeline = SkeletonPipeline.from_config(cfg.test_pipeline)
    heatmaps = pipeline(keypoint, keypoint_score, img_shape=(480, 640))  # (T, 17, 2), (T, 17)

Loading-only steps are handled so shipped configs work unchanged: ``PackActionInputs`` is
dropped (the pipeline returns the array it would pack) and ``DecompressPose`` works on the
dense ``(M, T, V, 2)`` arrays given (see :class:`DecompressPose`).
"""

from __future__ import annotations

import inspect
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from engines.errors import InputShapeError, ModelConfigError

logger = logging.getLogger(__name__)

#: COCO-17 left / right keypoints (MMAction2's defaults for flipping heatmaps).
COCO_LEFT_KP = (1, 3, 5, 7, 9, 11, 13, 15)
COCO_RIGHT_KP = (2, 4, 6, 8, 10, 12, 14, 16)
#: COCO-17 limbs of MMAction2's ``GeneratePoseTarget`` default, and their left / right ones.
COCO_SKELETONS = (
    (0, 1), (0, 2), (1, 3), (2, 4), (0, 5), (5, 7), (7, 9), (0, 6), (6, 8),
    (8, 10), (5, 11), (11, 13), (13, 15), (6, 12), (12, 14), (14, 16), (11, 12),
)  # fmt: skip
COCO_LEFT_LIMB = (0, 2, 4, 5, 6, 10, 11, 12)
COCO_RIGHT_LIMB = (1, 3, 7, 8, 9, 13, 14, 15)

#: ``JointToBone`` pairs per dataset (bone ``v1`` = joint ``v1`` - joint ``v2``), and the joint count.
BONE_PAIRS: dict[str, tuple[tuple[int, int], ...]] = {
    "nturgb+d": (
        (0, 1), (1, 20), (2, 20), (3, 2), (4, 20), (5, 4), (6, 5), (7, 6), (8, 20), (9, 8), (10, 9),
        (11, 10), (12, 0), (13, 12), (14, 13), (15, 14), (16, 0), (17, 16), (18, 17), (19, 18),
        (21, 22), (20, 20), (22, 7), (23, 24), (24, 11),
    ),
    "openpose": (
        (0, 0), (1, 0), (2, 1), (3, 2), (4, 3), (5, 1), (6, 5), (7, 6), (8, 2), (9, 8), (10, 9),
        (11, 5), (12, 11), (13, 12), (14, 0), (15, 0), (16, 14), (17, 15),
    ),
    "coco": (
        (0, 0), (1, 0), (2, 0), (3, 1), (4, 2), (5, 0), (6, 0), (7, 5), (8, 6), (9, 7), (10, 8),
        (11, 0), (12, 0), (13, 11), (14, 12), (15, 13), (16, 14),
    ),
}  # fmt: skip
DATASET_JOINTS = {"nturgb+d": 25, "openpose": 18, "coco": 17}
SKELETON_FEATS = ("j", "b", "jm", "bm")

#: Output layouts of a skeleton pipeline.
HEATMAP_FORMAT = "NCTHW_Heatmap"
GCN_FORMAT = "GCN"


@dataclass
class SkeletonSample:
    """One sample on its way through a skeleton pipeline (MMAction2's ``results`` dict, typed).

    Attributes:
        keypoint: ``(M, T, V, C)`` coordinates in pixels (``C`` = 2; 3 once ``GenSkeFeat`` has
            appended the score; a multiple of 3 after it merges several features).
        keypoint_score: ``(M, T, V)`` scores, or ``None`` once merged into ``keypoint``.
        img_shape: ``(height, width)`` of the frame the coordinates refer to.
        total_frames: Frames of the window (``T`` before sampling).
        frame_inds: Sampled frame indices, set by :class:`UniformSampleFrames`.
        clip_len: Frames per clip, set by the sampler.
        num_clips: Clips sampled.
        heatmap: ``(frames, K, H, W)`` pseudo heatmaps from :class:`GeneratePoseTarget`, then
            ``(views, K, T, H, W)`` after :class:`FormatShape` (MMAction2's ``imgs``).
    """

    keypoint: np.ndarray
    keypoint_score: np.ndarray | None
    img_shape: tuple[int, int]
    total_frames: int = -1
    frame_inds: np.ndarray | None = None
    clip_len: int | None = None
    num_clips: int = 1
    heatmap: np.ndarray | None = None

    def __post_init__(self) -> None:
        kp = self.keypoint
        if not isinstance(kp, np.ndarray) or kp.ndim != 4 or kp.shape[-1] < 2:
            shape = getattr(kp, "shape", type(kp).__name__)
            raise InputShapeError(f"SkeletonSample.keypoint: expected an (M, T, V, C>=2) array, got {shape}")
        score = self.keypoint_score
        if score is not None and (not isinstance(score, np.ndarray) or score.shape != kp.shape[:3]):
            shape = getattr(score, "shape", type(score).__name__)
            raise InputShapeError(
                f"SkeletonSample.keypoint_score: expected shape {kp.shape[:3]} (M, T, V), got {shape}"
            )
        h, w = _hw(self.img_shape, "SkeletonSample.img_shape")
        self.img_shape = (h, w)
        if self.total_frames < 0:
            self.total_frames = int(kp.shape[1])

    @classmethod
    def from_arrays(
        cls, keypoint: np.ndarray, keypoint_score: np.ndarray | None, img_shape: Sequence[int]
    ) -> SkeletonSample:
        """A sample from one person ``(T, V, 2)`` / ``(T, V)`` or several ``(M, T, V, 2)`` / ``(M, T, V)``.

        The arrays are copied as float32 (MMAction2's annotation files hold float32 keypoints).

        Raises:
            InputShapeError: Wrong ranks, mismatched shapes, no frames, or a bad ``img_shape``.
        """
        kp = np.asarray(keypoint)
        if kp.ndim == 3:
            kp = kp[None]
        if kp.ndim != 4 or kp.shape[-1] != 2:
            raise InputShapeError(f"keypoint: expected (T, V, 2) or (M, T, V, 2) pixels, got shape {kp.shape}")
        if kp.shape[0] == 0 or kp.shape[1] == 0 or kp.shape[2] == 0:
            raise InputShapeError(f"keypoint: expected at least one person, frame and keypoint, got shape {kp.shape}")
        score = None
        if keypoint_score is not None:
            score = np.asarray(keypoint_score)
            if score.ndim == 2:
                score = score[None]
            if score.shape != kp.shape[:3]:
                raise InputShapeError(
                    f"keypoint_score: expected shape {kp.shape[:3]} to match keypoint {kp.shape}, got {score.shape}"
                )
            score = score.astype(np.float32)  # a copy
        return cls(kp.astype(np.float32), score, tuple(img_shape))  # type: ignore[arg-type]


def _hw(value: Any, where: str) -> tuple[int, int]:
    try:
        h, w = value
        if isinstance(h, bool) or isinstance(w, bool) or int(h) != h or int(w) != w or h <= 0 or w <= 0:
            raise ValueError
    except (TypeError, ValueError):
        raise InputShapeError(f"{where}: expected (height, width) positive ints, got {value!r}") from None
    return int(h), int(w)


class SkeletonTransform(ABC):
    """One step of a skeleton pipeline: ``transform(sample) -> sample``.

    Subclasses take MMAction2's keyword arguments (validated, raising :class:`ModelConfigError`)
    and may set :attr:`num_keypoints` when they only work on one keypoint layout.
    """

    #: Keypoints per person this step requires, or ``None`` for any.
    num_keypoints: int | None = None
    #: MMAction2 arguments accepted and ignored (they change nothing at test time).
    ignored: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def __call__(self, sample: SkeletonSample) -> SkeletonSample:
        """Apply the step."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def _int(value: Any, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ModelConfigError(f"{where}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def _float(value: Any, where: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ModelConfigError(f"{where}: expected a number, got {value!r}")
    if minimum is not None and not value >= minimum:
        raise ModelConfigError(f"{where}: expected a number >= {minimum}, got {value!r}")
    return value  # type: ignore[return-value]  # kept as given: MMAction2 computes with it unchanged


def _indices(value: Any, where: str) -> tuple[int, ...]:
    try:
        out = tuple(_int(v, where, 0) for v in value)
    except TypeError:
        raise ModelConfigError(f"{where}: expected a list of indices, got {value!r}") from None
    return out


# --- sampling ------------------------------------------------------------------------------


class UniformSampleFrames(SkeletonTransform):
    """Test-mode uniform sampling of ``num_clips`` clips of ``clip_len`` frames (MMAction2's).

    Each clip divides the window into ``clip_len`` segments and takes one frame of each, drawn
    from ``numpy.random.RandomState(seed)`` reseeded on every call, so the result depends only on
    the window length. A window shorter than ``clip_len`` is looped from frame ``i`` (clip ``i``;
    ``i * T // num_clips`` when ``T >= num_clips``); one shorter than ``2 * clip_len`` keeps every
    frame and repeats ``T - clip_len`` of them... as MMAction2 does with the same random draws.
    MMAction2's process-wide ``np.random.seed`` is replaced by a private generator with the same
    draws, so other code's random state is left alone.

    Args:
        clip_len: Frames per clip.
        num_clips: Clips per sample.
        test_mode: Must be true (training sampling is random).
        seed: The test-time seed (MMAction2: 255).

    Raises:
        ModelConfigError: For a non-positive size or ``test_mode=False``.
    """

    def __init__(self, clip_len: int, num_clips: int = 1, test_mode: bool = False, seed: int = 255) -> None:
        self.clip_len = _int(clip_len, "UniformSampleFrames.clip_len")
        self.num_clips = _int(num_clips, "UniformSampleFrames.num_clips")
        if not test_mode:
            raise ModelConfigError(
                "UniformSampleFrames.test_mode: False samples frames at random (training); set test_mode=True"
            )
        self.seed = _int(seed, "UniformSampleFrames.seed", 0)

    def frame_indices(self, num_frames: int) -> np.ndarray:
        """The sampled indices (``num_clips * clip_len``, int32) into a window of ``num_frames``.

        Raises:
            InputShapeError: If ``num_frames`` < 1.
        """
        if num_frames < 1:
            raise InputShapeError(f"UniformSampleFrames: the window has {num_frames} frames; expected at least 1")
        rng = np.random.RandomState(self.seed)
        clip_len = self.clip_len
        clips = []
        for i in range(self.num_clips):
            if num_frames < clip_len:
                start = i if num_frames < self.num_clips else i * num_frames // self.num_clips
                inds = np.arange(start, start + clip_len)
            elif num_frames < 2 * clip_len:
                picked = rng.choice(clip_len + 1, num_frames - clip_len, replace=False)
                offset = np.zeros(clip_len + 1, dtype=np.int64)
                offset[picked] = 1
                inds = np.arange(clip_len) + np.cumsum(offset)[:-1]
            else:
                bids = np.array([j * num_frames // clip_len for j in range(clip_len + 1)])
                inds = bids[:clip_len] + rng.randint(np.diff(bids))
            clips.append(inds)
        # MMAction2 then blends in the integer part of "transitional" indices; with integer
        # indices (always, in test mode) that is a no-op, so it is not repeated here.
        return np.mod(np.concatenate(clips), num_frames).astype(np.int32)

    def __call__(self, sample: SkeletonSample) -> SkeletonSample:
        if sample.keypoint.shape[1] != sample.total_frames:
            raise InputShapeError(
                f"UniformSampleFrames: keypoint has {sample.keypoint.shape[1]} frames, "
                f"total_frames says {sample.total_frames}"
            )
        sample.frame_inds = self.frame_indices(sample.total_frames)
        sample.clip_len = self.clip_len
        sample.num_clips = self.num_clips
        return sample


class PoseDecode(SkeletonTransform):
    """Take the sampled frames (all frames when nothing was sampled), as float32."""

    def __call__(self, sample: SkeletonSample) -> SkeletonSample:
        inds = sample.frame_inds if sample.frame_inds is not None else np.arange(sample.total_frames)
        inds = np.squeeze(inds) if inds.ndim != 1 else inds
        if sample.keypoint_score is not None:
            sample.keypoint_score = sample.keypoint_score[:, inds].astype(np.float32)
        sample.keypoint = sample.keypoint[:, inds].astype(np.float32)
        sample.frame_inds = inds
        return sample


class DecompressPose(SkeletonTransform):
    """MMAction2's ``DecompressPose`` on already dense ``(M, T, V, 2)`` arrays.

    MMAction2 reads compressed annotations (one row per detected person and frame); a frame with
    no detection has no row, and ``squeeze=True`` drops it. Here a frame in which every person's
    keypoints and scores are all zero counts as such a frame and is dropped (unless every frame
    is). With more than ``max_person`` people, each frame's people are ordered by their score sum
    and the first ``max_person`` kept, as MMAction2 does. Like MMAction2's, the result is float16.

    Args:
        squeeze: Drop frames without any person.
        max_person: Most people kept.
    """

    def __init__(self, squeeze: bool = True, max_person: int = 10) -> None:
        self.squeeze = bool(squeeze)
        self.max_person = _int(max_person, "DecompressPose.max_person")

    def __call__(self, sample: SkeletonSample) -> SkeletonSample:
        kp, score = sample.keypoint, sample.keypoint_score
        if self.squeeze:
            present = np.any(kp != 0, axis=(0, 2, 3))
            if score is not None:
                present |= np.any(score != 0, axis=(0, 2))
            if present.any() and not present.all():
                kp = kp[:, present]
                score = score[:, present] if score is not None else None
        if kp.shape[0] > self.max_person:
            sums = score.sum(-1) if score is not None else np.zeros(kp.shape[:2], np.float32)
            # per frame, people by decreasing score sum (a stable sort, like MMAction2's sorted())
            order = np.argsort(-sums, axis=0, kind="stable")[: self.max_person]
            frames = np.arange(kp.shape[1])[None]
            kp = kp[order, frames]
            score = score[order, frames] if score is not None else None
        # MMAction2 decompresses into float16 arrays; the rounding is kept
        sample.keypoint = kp.astype(np.float16)
        sample.keypoint_score = score.astype(np.float16) if score is not None else None
        sample.total_frames = int(kp.shape[1])
        return sample


# --- geometry ------------------------------------------------------------------------------


class PoseCompact(SkeletonTransform):
    """Crop the frame to the box around every non-zero keypoint, padded and shaped (MMAction2's).

    Coordinates equal to 0 count as missing and stay 0; NaNs become 0. Nothing changes when the
    box is narrower or lower than ``threshold`` pixels.

    Args:
        padding: Box growth ratio (0.25 → 1.25× width and height).
        threshold: Smallest box side that is compacted.
        hw_ratio: ``h / w`` the box is grown to (a number, or a ``(min, max)`` range), or ``None``.
        allow_imgpad: Let the grown box leave the frame.

    Raises:
        ModelConfigError: For a negative padding or a malformed ``hw_ratio``.
    """

    def __init__(
        self,
        padding: float = 0.25,
        threshold: int = 10,
        hw_ratio: float | Sequence[float] | None = None,
        allow_imgpad: bool = True,
    ) -> None:
        self.padding = _float(padding, "PoseCompact.padding", 0.0)
        self.threshold = _float(threshold, "PoseCompact.threshold")
        if hw_ratio is not None:
            pair = tuple(hw_ratio) if isinstance(hw_ratio, (list, tuple)) else (hw_ratio, hw_ratio)
            if len(pair) != 2:
                raise ModelConfigError(f"PoseCompact.hw_ratio: expected a number or a pair, got {hw_ratio!r}")
            hw_ratio = tuple(_float(v, "PoseCompact.hw_ratio") for v in pair)
        self.hw_ratio: tuple[float, float] | None = hw_ratio  # type: ignore[assignment]
        self.allow_imgpad = bool(allow_imgpad)

    def __call__(self, sample: SkeletonSample) -> SkeletonSample:
        h, w = sample.img_shape
        kp = sample.keypoint.copy()
        kp[np.isnan(kp)] = 0.0
        kp_x, kp_y = kp[..., 0], kp[..., 1]
        min_x = np.min(kp_x[kp_x != 0], initial=np.inf)
        min_y = np.min(kp_y[kp_y != 0], initial=np.inf)
        max_x = np.max(kp_x[kp_x != 0], initial=-np.inf)
        max_y = np.max(kp_y[kp_y != 0], initial=-np.inf)
        sample.keypoint = kp
        if max_x - min_x < self.threshold or max_y - min_y < self.threshold:
            return sample
        # numpy scalars on purpose: the float32 arithmetic is MMAction2's
        center = ((max_x + min_x) / 2, (max_y + min_y) / 2)
        half_width = (max_x - min_x) / 2 * (1 + self.padding)
        half_height = (max_y - min_y) / 2 * (1 + self.padding)
        if self.hw_ratio is not None:
            half_height = max(self.hw_ratio[0] * half_width, half_height)
            half_width = max(1 / self.hw_ratio[1] * half_height, half_width)
        x0, x1 = center[0] - half_width, center[0] + half_width
        y0, y1 = center[1] - half_height, center[1] + half_height
        if not self.allow_imgpad:
            left, top, right, bottom = int(max(0, x0)), int(max(0, y0)), int(min(w, x1)), int(min(h, y1))
        else:
            left, top, right, bottom = int(x0), int(y0), int(x1), int(y1)
        kp_x[kp_x != 0] -= left
        kp_y[kp_y != 0] -= top
        sample.img_shape = (bottom - top, right - left)
        return sample


class Resize(SkeletonTransform):
    """Scale keypoints and ``img_shape`` like MMAction2's ``Resize`` scales frames.

    Args:
        scale: A factor (``keep_ratio=True``), a ``(w, h)`` bound — ``(-1, 64)`` = short side 64 —
            or, with ``keep_ratio=False``, the exact ``(w, h)``.
        keep_ratio: Keep the aspect ratio.
        interpolation: Accepted and ignored (there are no pixels).
        lazy: Must be false (MMAction2 refuses lazy keypoint resizing too).

    Raises:
        ModelConfigError: For a malformed scale or ``lazy=True``.
    """

    ignored = frozenset({"interpolation"})

    def __init__(
        self,
        scale: float | Sequence[int],
        keep_ratio: bool = True,
        interpolation: str = "bilinear",
        lazy: bool = False,
    ) -> None:
        if lazy:
            raise ModelConfigError("Resize.lazy: keypoints cannot be resized lazily; set lazy=False")
        self.keep_ratio = bool(keep_ratio)
        if isinstance(scale, float):
            if scale <= 0 or not keep_ratio:
                raise ModelConfigError(f"Resize.scale: a factor needs keep_ratio=True and > 0, got {scale!r}")
            self.scale: float | tuple[float, float] = scale
        elif isinstance(scale, (list, tuple)) and len(scale) == 2 and all(isinstance(s, int) for s in scale):
            long_edge, short_edge = max(scale), min(scale)
            if short_edge == -1 and keep_ratio:
                self.scale = (math.inf, long_edge)
            elif short_edge > 0:
                self.scale = (scale[0], scale[1])
            else:
                raise ModelConfigError(f"Resize.scale: expected positive sizes (one may be -1), got {scale!r}")
        else:
            raise ModelConfigError(f"Resize.scale: expected a float factor or a (w, h) pair of ints, got {scale!r}")

    def new_size(self, img_shape: tuple[int, int]) -> tuple[int, int]:
        """``(new_w, new_h)`` for a frame of ``(h, w)`` (mmcv's ``rescale_size`` when keeping the ratio)."""
        h, w = img_shape
        if not self.keep_ratio:
            new_w, new_h = self.scale  # type: ignore[misc]
            return int(new_w), int(new_h)
        if isinstance(self.scale, float):
            factor = self.scale
        else:
            factor = min(max(self.scale) / max(h, w), min(self.scale) / min(h, w))
        return int(w * float(factor) + 0.5), int(h * float(factor) + 0.5)

    def __call__(self, sample: SkeletonSample) -> SkeletonSample:
        h, w = sample.img_shape
        new_w, new_h = self.new_size((h, w))
        factor = np.array([new_w / w, new_h / h], dtype=np.float32)
        sample.img_shape = (new_h, new_w)
        sample.keypoint = sample.keypoint * factor
        return sample


class CenterCrop(SkeletonTransform):
    """Shift keypoints into the centre ``crop_size`` window (MMAction2's ``CenterCrop``).

    Every coordinate moves, zeros included, and the result is float64 (MMAction2 subtracts an
    int64 box), as in MMAction2.

    Args:
        crop_size: ``size`` or ``(w, h)``.
        lazy: Must be false.

    Raises:
        ModelConfigError: For a malformed size or ``lazy=True``.
    """

    def __init__(self, crop_size: int | Sequence[int], lazy: bool = False) -> None:
        if lazy:
            raise ModelConfigError("CenterCrop.lazy: keypoints cannot be cropped lazily; set lazy=False")
        pair = tuple(crop_size) if isinstance(crop_size, (list, tuple)) else (crop_size, crop_size)
        if len(pair) != 2:
            raise ModelConfigError(f"CenterCrop.crop_size: expected an int or (w, h), got {crop_size!r}")
        self.crop_size = (_int(pair[0], "CenterCrop.crop_size"), _int(pair[1], "CenterCrop.crop_size"))

    def __call__(self, sample: SkeletonSample) -> SkeletonSample:
        h, w = sample.img_shape
        crop_w, crop_h = self.crop_size
        left, top = (w - crop_w) // 2, (h - crop_h) // 2
        sample.keypoint = sample.keypoint - np.array([left, top])
        sample.img_shape = (crop_h, crop_w)
        return sample


# --- heatmaps ------------------------------------------------------------------------------


class GeneratePoseTarget(SkeletonTransform):
    """Pseudo heatmaps of keypoints and / or limbs, one Gaussian per person (MMAction2's).

    Vectorised over frames, people and keypoints, with MMAction2's arithmetic kept element for
    element: a keypoint paints ``exp(-d² / 2σ²) * score`` (float32) in the window
    ``[int(x - 3σ), int(x + 3σ)]`` (clipped to the frame), a limb the same of its distance to the
    segment (float64, stored as float32); scores below 1e-4 paint nothing; overlapping people
    keep the maximum. Like MMAction2, limb ``i`` is drawn into channel ``i``, so ``with_kp`` and
    ``with_limb`` together draw limbs over the first keypoint channels (their channel count is
    still ``V + len(skeletons)``).

    Args:
        sigma: Gaussian sigma, in output pixels.
        use_score: Scale each Gaussian by the keypoint score (else 1).
        with_kp: Keypoint heatmaps.
        with_limb: Limb heatmaps.
        skeletons: Limbs as keypoint index pairs.
        double: Append the horizontally flipped heatmaps (left / right channels swapped) as
            extra views.
        left_kp, right_kp: Keypoints swapped when flipping (``with_kp``).
        left_limb, right_limb: Limbs swapped when flipping (limb-only).
        scaling: Heatmap size relative to ``img_shape``.

    Raises:
        ModelConfigError: Neither ``with_kp`` nor ``with_limb``, or malformed indices.
    """

    #: Largest block of points drawn at once (bounds the temporary arrays).
    CHUNK = 4096
    eps = 1e-4

    def __init__(
        self,
        sigma: float = 0.6,
        use_score: bool = True,
        with_kp: bool = True,
        with_limb: bool = False,
        skeletons: Sequence[Sequence[int]] = COCO_SKELETONS,
        double: bool = False,
        left_kp: Sequence[int] = COCO_LEFT_KP,
        right_kp: Sequence[int] = COCO_RIGHT_KP,
        left_limb: Sequence[int] = COCO_LEFT_LIMB,
        right_limb: Sequence[int] = COCO_RIGHT_LIMB,
        scaling: float = 1.0,
    ) -> None:
        self.sigma = _float(sigma, "GeneratePoseTarget.sigma")
        if not self.sigma > 0:
            raise ModelConfigError(f"GeneratePoseTarget.sigma: expected > 0, got {sigma!r}")
        self.use_score = bool(use_score)
        self.with_kp = bool(with_kp)
        self.with_limb = bool(with_limb)
        if not (self.with_kp or self.with_limb):
            raise ModelConfigError("GeneratePoseTarget: set with_kp or with_limb (or both)")
        limbs = []
        for limb in skeletons:
            pair = _indices(limb, "GeneratePoseTarget.skeletons")
            if len(pair) != 2:
                raise ModelConfigError(f"GeneratePoseTarget.skeletons: expected index pairs, got {limb!r}")
            limbs.append(pair)
        self.skeletons = tuple(limbs)
        self.double = bool(double)
        self.left_kp, self.right_kp = _indices(left_kp, "left_kp"), _indices(right_kp, "right_kp")
        self.left_limb, self.right_limb = _indices(left_limb, "left_limb"), _indices(right_limb, "right_limb")
        self.scaling = _float(scaling, "GeneratePoseTarget.scaling")
        if not self.scaling > 0:
            raise ModelConfigError(f"GeneratePoseTarget.scaling: expected > 0, got {scaling!r}")
        used = [i for limb in self.skeletons for i in limb] if self.with_limb else []
        if self.double and self.with_kp:
            used += [*self.left_kp, *self.right_kp]
        self.num_keypoints = None  # any count for plain keypoint heatmaps
        self._min_keypoints = max(used) + 1 if used else 1

    def num_channels(self, num_keypoints: int) -> int:
        """Heatmap channels for ``num_keypoints`` keypoints per person."""
        return (num_keypoints if self.with_kp else 0) + (len(self.skeletons) if self.with_limb else 0)

    def heatmap_size(self, img_shape: tuple[int, int]) -> tuple[int, int]:
        """``(H, W)`` of the heatmaps for a frame of ``img_shape``."""
        h, w = img_shape
        return int(h * self.scaling + 0.5), int(w * self.scaling + 0.5)

    def __call__(self, sample: SkeletonSample) -> SkeletonSample:
        kps = sample.keypoint.astype(np.float32)
        if kps.shape[-1] != 2:
            raise InputShapeError(f"GeneratePoseTarget: expected 2-D keypoints (M, T, V, 2), got {kps.shape}")
        m, t, v, _ = kps.shape
        if v < self._min_keypoints:
            raise InputShapeError(
                f"GeneratePoseTarget: its skeleton / flip indices need {self._min_keypoints} keypoints, got {v}"
            )
        if sample.keypoint_score is None or not self.use_score:
            scores = np.ones((m, t, v), dtype=np.float32)
        else:
            scores = sample.keypoint_score
        img_h, img_w = self.heatmap_size(sample.img_shape)
        kps[..., :2] *= self.scaling
        heatmap = np.zeros((t, self.num_channels(v), img_h, img_w), dtype=np.float32)
        # (frame, person, index) order of points, channel = keypoint / limb index
        kps_t = kps.transpose(1, 0, 2, 3)
        scores_t = scores.transpose(1, 0, 2)
        if self.with_kp:
            frames, _, channels = np.indices((t, m, v)).reshape(3, -1)
            self._draw_points(heatmap, frames, channels, kps_t.reshape(-1, 2), scores_t.reshape(-1))
        if self.with_limb:
            for i, (a, b) in enumerate(self.skeletons):
                self._draw_limbs(heatmap, i, kps_t[:, :, a].reshape(-1, 2), kps_t[:, :, b].reshape(-1, 2),
                                 scores_t[:, :, a].reshape(-1), scores_t[:, :, b].reshape(-1), m)  # fmt: skip
        if self.double:
            indices = np.arange(heatmap.shape[1], dtype=np.int64)
            left, right = (self.left_kp, self.right_kp) if self.with_kp else (self.left_limb, self.right_limb)
            for lft, rgt in zip(left, right, strict=False):
                indices[lft] = rgt
                indices[rgt] = lft
            heatmap = np.concatenate([heatmap, heatmap[..., ::-1][:, indices]])
        sample.heatmap = heatmap
        return sample

    def _window(self, centers: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``[start, end)`` pixel range of a Gaussian around float32 ``centers``: MMAction2's int() bounds."""
        three_sigma = 3 * self.sigma
        start = np.maximum(np.trunc(centers - three_sigma), 0)
        end = np.minimum(np.trunc(centers + three_sigma) + 1, size)
        return start.astype(np.int64), end.astype(np.int64)

    def _draw_points(
        self, heatmap: np.ndarray, frames: np.ndarray, channels: np.ndarray, centers: np.ndarray, values: np.ndarray
    ) -> None:
        """Max-paint one Gaussian per point into ``heatmap[frame, channel]``."""
        keep = ~(values < self.eps)
        frames, channels, centers, values = frames[keep], channels[keep], centers[keep], values[keep]
        if not np.isfinite(centers).all():
            raise InputShapeError("GeneratePoseTarget: a keypoint with a score has a non-finite coordinate")
        _, _, img_h, img_w = heatmap.shape
        x0, x1 = self._window(centers[:, 0], img_w)
        y0, y1 = self._window(centers[:, 1], img_h)
        keep = (x1 > x0) & (y1 > y0)
        frames, channels, centers, values = frames[keep], channels[keep], centers[keep], values[keep]
        x0, x1, y0, y1 = x0[keep], x1[keep], y0[keep], y1[keep]
        if not len(values):
            return
        span = int(max((x1 - x0).max(), (y1 - y0).max()))
        offsets = np.arange(span)
        flat = heatmap.reshape(-1)
        sigma2 = self.sigma**2
        for s in range(0, len(values), self.CHUNK):
            sl = slice(s, s + self.CHUNK)
            xs = x0[sl, None] + offsets  # (n, span) pixel columns
            ys = y0[sl, None] + offsets
            dx2 = (xs.astype(np.float32) - centers[sl, 0:1]) ** 2
            dy2 = (ys.astype(np.float32) - centers[sl, 1:2]) ** 2
            patch = np.exp(-(dx2[:, None, :] + dy2[:, :, None]) / 2 / sigma2)
            patch = patch * values[sl, None, None]
            ok = (xs < x1[sl, None])[:, None, :] & (ys < y1[sl, None])[:, :, None]
            base = (frames[sl] * heatmap.shape[1] + channels[sl]) * img_h
            index = ((base[:, None, None] + ys[:, :, None]) * img_w + xs[:, None, :])[ok]
            np.maximum.at(flat, index, patch[ok])

    def _draw_limbs(
        self,
        heatmap: np.ndarray,
        channel: int,
        starts: np.ndarray,
        ends: np.ndarray,
        start_values: np.ndarray,
        end_values: np.ndarray,
        num_person: int,
    ) -> None:
        """Max-paint the limb ``starts → ends`` of every (frame, person) into ``heatmap[:, channel]``."""
        frames = np.arange(len(starts)) // num_person
        coeff_values = np.minimum(start_values, end_values)
        keep = ~(coeff_values < self.eps)
        if not np.isfinite(starts[keep]).all() or not np.isfinite(ends[keep]).all():
            raise InputShapeError("GeneratePoseTarget: a limb with a score has a non-finite end point")
        _, _, img_h, img_w = heatmap.shape
        x0, x1 = self._window(np.minimum(starts[:, 0], ends[:, 0]), img_w)
        x1 = self._window(np.maximum(starts[:, 0], ends[:, 0]), img_w)[1]
        y0, y1 = self._window(np.minimum(starts[:, 1], ends[:, 1]), img_h)
        y1 = self._window(np.maximum(starts[:, 1], ends[:, 1]), img_h)[1]
        keep &= (x1 > x0) & (y1 > y0)
        d2_ab = (starts[:, 0] - ends[:, 0]) ** 2 + (starts[:, 1] - ends[:, 1]) ** 2
        short = keep & (d2_ab < 1)
        if short.any():  # MMAction2 paints the start point instead
            self._draw_points(heatmap, frames[short], np.full(short.sum(), channel), starts[short], start_values[short])
        keep &= ~short
        xs = np.arange(img_w, dtype=np.float32)
        ys = np.arange(img_h, dtype=np.float32)[:, None]
        sigma2 = self.sigma**2
        for idx in np.flatnonzero(keep):
            start, end = starts[idx], ends[idx]
            sx, ex, sy, ey = x0[idx], x1[idx], y0[idx], y1[idx]
            x, y = xs[sx:ex], ys[sy:ey]
            d2_start = (x - start[0]) ** 2 + (y - start[1]) ** 2
            d2_end = (x - end[0]) ** 2 + (y - end[1]) ** 2
            coeff = (d2_start - d2_end + d2_ab[idx]) / 2.0 / d2_ab[idx]
            a_dominate = coeff <= 0
            b_dominate = coeff >= 1
            seg_dominate = 1 - a_dominate - b_dominate  # int64, so d2_seg is float64 as in MMAction2
            position = np.stack([x + np.zeros_like(y), y + np.zeros_like(x)], axis=-1)
            projection = start + np.stack([coeff, coeff], axis=-1) * (end - start)
            d2_line = position - projection
            d2_line = d2_line[:, :, 0] ** 2 + d2_line[:, :, 1] ** 2
            d2_seg = a_dominate * d2_start + b_dominate * d2_end + seg_dominate * d2_line
            patch = np.exp(-d2_seg / 2.0 / sigma2) * coeff_values[idx]
            region = heatmap[frames[idx], channel, sy:ey, sx:ex]
            region[...] = np.maximum(region, patch)


class FormatShape(SkeletonTransform):
    """``(clips × frames, K, H, W)`` heatmaps → ``(views, K, T, H, W)`` (``input_format='NCTHW_Heatmap'``).

    Args:
        input_format: Must be ``'NCTHW_Heatmap'`` in a skeleton pipeline.
        collapse: Must be false.

    Raises:
        ModelConfigError: For another format or ``collapse=True``.
    """

    def __init__(self, input_format: str, collapse: bool = False) -> None:
        if input_format != HEATMAP_FORMAT:
            raise ModelConfigError(
                f"FormatShape.input_format: a skeleton pipeline formats heatmaps ({HEATMAP_FORMAT!r}), "
                f"got {input_format!r}"
            )
        if collapse:
            raise ModelConfigError("FormatShape.collapse: not supported for heatmaps; remove it")
        self.input_format = input_format

    def __call__(self, sample: SkeletonSample) -> SkeletonSample:
        if sample.heatmap is None or sample.clip_len is None:
            raise InputShapeError("FormatShape: needs GeneratePoseTarget and UniformSampleFrames before it")
        imgs = sample.heatmap
        imgs = imgs.reshape((-1, sample.num_clips, sample.clip_len, *imgs.shape[1:]))
        imgs = np.transpose(imgs, (0, 1, 3, 2, 4, 5))
        sample.heatmap = imgs.reshape((-1, *imgs.shape[2:]))
        return sample


# --- graph features ------------------------------------------------------------------------


class PreNormalize2D(SkeletonTransform):
    """Pixels → ``[-1, 1]`` about the frame centre: ``(x - w/2) / (w/2)``, same for ``y``.

    Args:
        img_shape: Frame size used when a sample has none (every sample here has one).
    """

    def __init__(self, img_shape: Sequence[int] = (1080, 1920)) -> None:
        try:
            self.img_shape = _hw(img_shape, "PreNormalize2D.img_shape")
        except InputShapeError as exc:
            raise ModelConfigError(str(exc)) from None

    def __call__(self, sample: SkeletonSample) -> SkeletonSample:
        h, w = sample.img_shape
        kp = sample.keypoint.copy()
        kp[..., 0] = (kp[..., 0] - (w / 2)) / (w / 2)
        kp[..., 1] = (kp[..., 1] - (h / 2)) / (h / 2)
        sample.keypoint = kp
        return sample


def joint_to_bone(keypoint: np.ndarray, dataset: str) -> np.ndarray:
    """MMAction2's ``JointToBone``: bone ``v1`` = joint ``v1`` - joint ``v2`` (score: their mean)."""
    bone = np.zeros(keypoint.shape, dtype=np.float32)
    with_score = keypoint.shape[-1] == 3 and dataset in ("openpose", "coco")
    for v1, v2 in BONE_PAIRS[dataset]:
        bone[..., v1, :] = keypoint[..., v1, :] - keypoint[..., v2, :]
        if with_score:
            bone[..., v1, 2] = (keypoint[..., v1, 2] + keypoint[..., v2, 2]) / 2
    return bone


def to_motion(data: np.ndarray, dataset: str) -> np.ndarray:
    """MMAction2's ``ToMotion``: frame differences along ``T`` (last frame 0; score: mean of the two)."""
    t = data.shape[1]
    motion = np.zeros_like(data)
    motion[:, : t - 1] = np.diff(data, axis=1)
    if data.shape[-1] == 3 and dataset in ("openpose", "coco"):
        motion[:, : t - 1, :, 2] = (data[:, : t - 1, :, 2] + data[:, 1:, :, 2]) / 2
    return motion


class GenSkeFeat(SkeletonTransform):
    """Append the score to the coordinates, then joint / bone / motion features, concatenated.

    Args:
        dataset: Keypoint layout: ``'coco'`` or ``'openpose'`` (2D with scores; ``'nturgb+d'``
            is 3D and has no scores, so it cannot take these samples).
        feats: Any of ``'j'`` (joints), ``'b'`` (bones), ``'jm'`` / ``'bm'`` (their motion), in
            the order they are concatenated.
        axis: Concatenation axis.

    Raises:
        ModelConfigError: Unknown dataset or feature.
    """

    def __init__(self, dataset: str = "nturgb+d", feats: Sequence[str] = ("j",), axis: int = -1) -> None:
        if dataset not in BONE_PAIRS:
            raise ModelConfigError(f"GenSkeFeat.dataset: expected one of {sorted(BONE_PAIRS)}, got {dataset!r}")
        if dataset == "nturgb+d":
            raise ModelConfigError(
                "GenSkeFeat.dataset: 'nturgb+d' holds 3D keypoints without scores; 2D keypoints with scores "
                "need 'coco' or 'openpose'"
            )
        bad = [f for f in feats if f not in SKELETON_FEATS]
        if bad or not feats or isinstance(feats, str):
            raise ModelConfigError(f"GenSkeFeat.feats: expected a list of {SKELETON_FEATS}, got {feats!r}")
        self.dataset = dataset
        self.feats = tuple(feats)
        self.axis = int(axis)
        self.num_keypoints = DATASET_JOINTS[dataset]

    def __call__(self, sample: SkeletonSample) -> SkeletonSample:
        kp = sample.keypoint
        if sample.keypoint_score is not None:
            if kp.shape[-1] != 2:
                raise InputShapeError(f"GenSkeFeat: expected 2-D keypoints with scores, got {kp.shape}")
            kp = np.concatenate([kp, sample.keypoint_score[..., None]], -1)
        if kp.shape[2] != self.num_keypoints:
            raise InputShapeError(
                f"GenSkeFeat: dataset {self.dataset!r} has {self.num_keypoints} keypoints, got {kp.shape[2]}"
            )
        feats: dict[str, np.ndarray] = {"j": kp}
        if "b" in self.feats or "bm" in self.feats:
            feats["b"] = joint_to_bone(kp, self.dataset)
        if "jm" in self.feats:
            feats["jm"] = to_motion(kp, self.dataset)
        if "bm" in self.feats:
            feats["bm"] = to_motion(feats["b"], self.dataset)
        sample.keypoint = np.concatenate([feats[f] for f in self.feats], axis=self.axis)
        sample.keypoint_score = None
        return sample


class FormatGCNInput(SkeletonTransform):
    """Pad / cut to ``num_person`` people and split the clips: ``(num_clips, M, T, V, C)``.

    Args:
        num_person: People per sample; missing ones are zeros (``mode='zero'``) or, with one
            person and ``mode='loop'``, copies of it.
        mode: ``'zero'`` or ``'loop'``.

    Raises:
        ModelConfigError: For a bad count or mode.
    """

    MODES = ("zero", "loop")

    def __init__(self, num_person: int = 2, mode: str = "zero") -> None:
        self.num_person = _int(num_person, "FormatGCNInput.num_person")
        if mode not in self.MODES:
            raise ModelConfigError(f"FormatGCNInput.mode: expected one of {self.MODES}, got {mode!r}")
        self.mode = mode

    def __call__(self, sample: SkeletonSample) -> SkeletonSample:
        kp = sample.keypoint
        if sample.keypoint_score is not None:
            kp = np.concatenate((kp, sample.keypoint_score[..., None]), axis=-1)
            sample.keypoint_score = None
        cur = kp.shape[0]
        if cur < self.num_person:
            pad = np.zeros((self.num_person - cur, *kp.shape[1:]), dtype=kp.dtype)
            kp = np.concatenate((kp, pad), axis=0)
            if self.mode == "loop" and cur == 1:
                kp[1:] = kp[0]
        elif cur > self.num_person:
            kp = kp[: self.num_person]
        m, t, v, c = kp.shape
        nc = sample.num_clips
        if t % nc:
            raise InputShapeError(f"FormatGCNInput: {t} frames do not split into {nc} clips")
        sample.keypoint = np.ascontiguousarray(kp.reshape((m, nc, t // nc, v, c)).transpose(1, 0, 2, 3, 4))
        return sample


# --- the pipeline --------------------------------------------------------------------------

#: Every transform a skeleton test pipeline may hold, by MMAction2 type name.
TRANSFORMS: dict[str, type[SkeletonTransform]] = {
    cls.__name__: cls
    for cls in (
        UniformSampleFrames,
        PoseDecode,
        DecompressPose,
        PoseCompact,
        Resize,
        CenterCrop,
        GeneratePoseTarget,
        FormatShape,
        PreNormalize2D,
        GenSkeFeat,
        FormatGCNInput,
    )
}
#: Steps that only pack the result for MMAction2's model (the pipeline returns the array itself).
PACKING = frozenset({"PackActionInputs"})


def _build_step(step: Mapping[str, Any], index: int) -> SkeletonTransform:
    where = f"test_pipeline[{index}]"
    if not isinstance(step, Mapping) or "type" not in step:
        raise ModelConfigError(f"{where}: expected dict(type=..., ...), got {step!r}")
    kwargs = {str(k): v for k, v in step.items() if k != "type"}
    name = step["type"]
    cls = TRANSFORMS.get(name)
    if cls is None:
        valid = ", ".join(sorted([*TRANSFORMS, *PACKING]))
        raise ModelConfigError(f"{where}: unsupported skeleton transform {name!r}; supported: {valid}")
    params = inspect.signature(cls.__init__).parameters
    valid_keys = [p for p in params if p != "self"]
    unknown = sorted(set(kwargs) - set(valid_keys))
    if unknown:
        raise ModelConfigError(f"{where}: {name}: unknown key(s) {unknown}; valid keys: {', '.join(valid_keys)}")
    try:
        return cls(**kwargs)
    except ModelConfigError as exc:
        raise ModelConfigError(f"{where}: {exc}") from None
    except TypeError as exc:
        raise ModelConfigError(f"{where}: {name}: {exc}") from None


class SkeletonPipeline:
    """A skeleton test pipeline: keypoints of one window → one sample's model input.

    Args:
        transforms: The steps, in order; the last formatting step decides the output
            (:class:`FormatShape` → heatmaps, :class:`FormatGCNInput` → graph input).

    Raises:
        ModelConfigError: No formatting step, or a step that cannot follow the others.
    """

    def __init__(self, transforms: Sequence[SkeletonTransform]) -> None:
        self.transforms = tuple(transforms)
        kinds = [t for t in self.transforms if isinstance(t, (FormatShape, FormatGCNInput))]
        if len(kinds) != 1 or kinds[0] is not self.transforms[-1]:
            raise ModelConfigError(
                "skeleton test_pipeline: expected exactly one FormatShape(input_format='NCTHW_Heatmap') or "
                f"FormatGCNInput, as its last step (before PackActionInputs); got {list(self.transforms)}"
            )
        self.output_format = HEATMAP_FORMAT if isinstance(kinds[0], FormatShape) else GCN_FORMAT
        names = [type(t).__name__ for t in self.transforms]
        if self.output_format == HEATMAP_FORMAT and "GeneratePoseTarget" not in names:
            raise ModelConfigError("skeleton test_pipeline: FormatShape needs GeneratePoseTarget before it")
        if self.output_format == HEATMAP_FORMAT and "UniformSampleFrames" not in names:
            raise ModelConfigError("skeleton test_pipeline: FormatShape needs UniformSampleFrames before it")
        counts = {t.num_keypoints for t in self.transforms if t.num_keypoints is not None}
        if len(counts) > 1:
            raise ModelConfigError(f"skeleton test_pipeline: steps disagree on the keypoint count: {sorted(counts)}")
        #: Keypoints per person the pipeline needs, or ``None`` for any.
        self.num_keypoints: int | None = counts.pop() if counts else None

    @classmethod
    def from_config(cls, test_pipeline: Sequence[Mapping[str, Any]]) -> SkeletonPipeline:
        """Build from MMAction2's ``test_pipeline`` list of ``dict(type=..., ...)``.

        ``PackActionInputs`` is dropped (its keyword arguments are not read).

        Raises:
            ModelConfigError: An unsupported type (the message lists the supported ones), a bad
                argument (naming the step), or a pipeline that makes no model input.
        """
        if isinstance(test_pipeline, (str, bytes)) or not isinstance(test_pipeline, Sequence):
            raise ModelConfigError(f"test_pipeline: expected a list of dicts, got {type(test_pipeline).__name__}")
        steps = [
            _build_step(step, i)
            for i, step in enumerate(test_pipeline)
            if not (isinstance(step, Mapping) and step.get("type") in PACKING)
        ]
        return cls(steps)

    def __iter__(self) -> Iterator[SkeletonTransform]:
        return iter(self.transforms)

    def __repr__(self) -> str:
        return f"SkeletonPipeline({', '.join(map(repr, self.transforms))})"

    def run(self, sample: SkeletonSample) -> SkeletonSample:
        """Apply every step to ``sample`` (it is changed in place and returned)."""
        v = sample.keypoint.shape[2]
        if self.num_keypoints is not None and v != self.num_keypoints:
            raise InputShapeError(f"skeleton pipeline: expected {self.num_keypoints} keypoints per person, got {v}")
        for step in self.transforms:
            sample = step(sample)
        return sample

    def __call__(self, keypoint: np.ndarray, keypoint_score: np.ndarray | None, img_shape: Sequence[int]) -> np.ndarray:
        """The model input of one sample.

        Args:
            keypoint: ``(T, V, 2)`` (one person) or ``(M, T, V, 2)`` pixel coordinates.
            keypoint_score: ``(T, V)`` / ``(M, T, V)`` scores, or ``None`` (all 1).
            img_shape: ``(height, width)`` of the frames.

        Returns:
            float32 ``(views, K, T, H, W)`` heatmaps or ``(num_clips, M, T, V, C)`` graph input.

        Raises:
            InputShapeError: Malformed arrays or a keypoint count the pipeline cannot take.
        """
        sample = self.run(SkeletonSample.from_arrays(keypoint, keypoint_score, img_shape))
        out = sample.heatmap if self.output_format == HEATMAP_FORMAT else sample.keypoint
        if out is None:  # FormatShape checks for its heatmaps; kept for the type checker
            raise InputShapeError("skeleton pipeline: no model input was made")
        return np.ascontiguousarray(out, dtype=np.float32)

    def _step(self, kind: type[SkeletonTransform]) -> Any:
        return next((t for t in self.transforms if isinstance(t, kind)), None)

    def output_shape(self, num_keypoints: int = 17, num_person: int = 1) -> tuple[int, ...]:
        """The shape :meth:`__call__` returns, when the steps fix it (heatmaps: a fixed final size).

        Args:
            num_keypoints: ``V`` of the input.
            num_person: ``M`` of the input (graph pipelines pad / cut it to their ``num_person``).

        Raises:
            ModelConfigError: When the heatmap size depends on the keypoints (no fixed resize or crop).
        """
        sampler = self._step(UniformSampleFrames)
        if self.output_format == GCN_FORMAT:
            gcn = self._step(FormatGCNInput)
            feats = self._step(GenSkeFeat)
            channels = 3 * len(feats.feats) if feats is not None else 3
            if sampler is None:
                raise ModelConfigError("skeleton test_pipeline: no UniformSampleFrames, so T is the window's length")
            return (sampler.num_clips, gcn.num_person, sampler.clip_len, num_keypoints, channels)
        size: tuple[int, int] | None = None
        for step in self.transforms:
            if isinstance(step, PoseCompact):
                size = None
            elif isinstance(step, Resize):
                fixed = not step.keep_ratio and isinstance(step.scale, tuple)
                size = (int(step.scale[1]), int(step.scale[0])) if fixed else None  # type: ignore[index]
            elif isinstance(step, CenterCrop):
                size = (step.crop_size[1], step.crop_size[0])
        target = self._step(GeneratePoseTarget)
        if size is None:
            raise ModelConfigError(
                "skeleton test_pipeline: the heatmap size depends on the keypoints; end the geometry with "
                "CenterCrop or Resize(keep_ratio=False)"
            )
        h, w = target.heatmap_size(size)
        views = sampler.num_clips * (2 if target.double else 1)
        return (views, target.num_channels(num_keypoints), sampler.clip_len, h, w)
