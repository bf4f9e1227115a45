"""The zero-download default: MediaPipe BlazePose's detector and landmark models on OpenVINO.

Both models ship inside this package (``detectors/assets/blazepose``, Apache-2.0), copied
byte for byte from Google's ``mediapipe==0.10.21`` wheel (``mediapipe/modules/pose_detection/
pose_detection.tflite`` and ``mediapipe/modules/pose_landmark/pose_landmark_full.tflite``;
later wheels no longer bundle them, and that wheel itself pins numpy<2 and protobuf<5).
They run on OpenVINO, already a core dependency, through its TensorFlow Lite reader: no
download, no MediaPipe runtime.

* :class:`BlazePoseDetector` — multi-person: the frame is cut into overlapping square tiles
  (plus the whole frame, for people close to the camera), all tiles of all frames go through
  the detector in one batch, and the detections are decoded from the SSD anchors as
  MediaPipe does (hip centre + a point on the circle around the whole body) and merged by
  non-maximum suppression.
* :class:`BlazePoseEstimator` — single-person landmarks on each person's crop (a square
  around the box, as MediaPipe's ROI), batched over all people of all frames; the 33
  BlazePose landmarks are mapped to COCO-17.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detectors.base import PERSON_LABEL
from detectors.errors import DetectorConfigError, ModelFileMissing
from stream.packet import Detections

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "assets" / "blazepose"
DETECTOR_FILE = ASSETS / "pose_detection.tflite"
LANDMARK_FILE = ASSETS / "pose_landmark_full.tflite"

#: BlazePose landmark index of each COCO-17 keypoint (nose, eyes, ears, shoulders, elbows,
#: wrists, hips, knees, ankles; BlazePose's inner/outer eye corners, mouth, hands and feet
#: points are dropped).
BLAZEPOSE_TO_COCO: tuple[int, ...] = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)

_DET_SIZE = 224  # detector input, square
_LM_SIZE = 256  # landmark model input, square
_ROI_SCALE = 1.25  # MediaPipe's pose ROI: the body circle's diameter x 1.25
_BOX_HALF_WIDTH = 0.5  # person box half-width, in body-circle radii
_BOX_HALF_HEIGHT = 1.0  # person box half-height, in body-circle radii


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(x, -50.0, 50.0)))
    return out


def _ssd_anchors() -> np.ndarray:
    """Anchor centres ``(2254, 2)`` of the pose detector (MediaPipe's SsdAnchorsCalculator:
    224×224 input, strides 8/16/32/32/32, two fixed-size anchors per layer and cell)."""
    strides = (8, 16, 32, 32, 32)
    centres: list[np.ndarray] = []
    i = 0
    while i < len(strides):
        stride, per_cell = strides[i], 0
        while i < len(strides) and strides[i] == stride:  # layers of one stride share their cells
            per_cell += 2
            i += 1
        cells = _DET_SIZE // stride
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, contain_threshold: float = 1.0) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first.

    A box is dropped when its IoU with a better box exceeds ``iou_threshold``, or when more
    than ``contain_threshold`` of the smaller of the two lies inside the other (duplicates
    found at another scale; 1.0 turns this off).
    """
    order = np.argsort(-scores, kind="stable")
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    keep: list[int] = []
    while len(order):
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        x1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-6)
        contained = inter / np.maximum(np.minimum(areas[i], areas[rest]), 1e-6)
        order = rest[(iou <= iou_threshold) & (contained <= contain_threshold)]
    return np.asarray(keep, dtype=np.int64)


def tiles_for(height: int, width: int, tile: int, overlap: int) -> list[tuple[int, int, int]]:
    """Square tiles ``(x0, y0, side)`` covering a frame: the whole frame first, then
    ``tile``-pixel tiles overlapping by ``overlap`` (none when the frame fits in one tile)."""
    out = [(0, 0, max(height, width))]
    if max(height, width) <= tile:
        return out
    stride = tile - overlap

    def starts(size: int) -> list[int]:
        if size <= tile:
            return [0]
        points = list(range(0, size - tile + 1, stride))
        if points[-1] + tile < size:
            points.append(size - tile)
        return points

    out += [(x0, y0, tile) for y0 in starts(height) for x0 in starts(width)]
    return out


def _crop_square(image: np.ndarray, x0: float, y0: float, side: float, size: int) -> np.ndarray:
    """The square ``side`` pixels wide at ``(x0, y0)`` (zero outside the image), resized to ``size``."""
    k = size / side
    matrix = np.array([[k, 0.0, -k * x0], [0.0, k, -k * y0]], np.float32)
    interpolation = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(image, matrix, (size, size), flags=interpolation, borderMode=cv2.BORDER_CONSTANT)


class _OpenVinoModel:
    """A TFLite model compiled by OpenVINO with a dynamic batch axis and only the outputs used."""

    def __init__(self, path: Path, outputs: Sequence[int], *, device: str, num_threads: int | None) -> None:
        if not path.is_file():
            raise ModelFileMissing(
                f"model file {path} is missing: it ships with the package; reinstall action-stream (pip install -e .)"
            )
        import openvino as ov

        from engines.backends.ov import shared_core

        core = shared_core()  # never a Core of its own: see engines.backends.ov.shared_core
        device = device.upper()
        available = list(core.available_devices)
        if device not in available:
            raise DetectorConfigError(
                f"device {device.lower()!r} is not available to OpenVINO here: expected one of "
                f"{', '.join(d.lower() for d in available)}"
            )
        model = core.read_model(str(path))
        model = ov.Model([model.output(i) for i in outputs], model.get_parameters(), path.stem)
        shape = list(model.input(0).get_partial_shape())
        model.reshape({model.input(0).get_any_name(): ov.PartialShape([-1, *shape[1:]])})
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if num_threads:
            config["INFERENCE_NUM_THREADS"] = int(num_threads)
        self.compiled = core.compile_model(model, device, config)
        self.request = self.compiled.create_infer_request()

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        self.request.infer({0: batch})
        return [np.array(self.request.get_output_tensor(i).data, copy=True) for i in range(len(self.compiled.outputs))]


def _check_device_and_backend(device: str, backend: str) -> None:
    if backend not in ("auto", "openvino"):
        raise DetectorConfigError(
            f"backend {backend!r}: the built-in BlazePose models run on 'openvino' (or 'auto'); "
            "other backends come with mmdet / mmpose models"
        )
    if device.lower().startswith("cuda"):
        raise DetectorConfigError(f"device {device!r}: the built-in BlazePose models run on OpenVINO devices ('cpu')")


class BlazePoseDetector:
    """Multi-person detection with BlazePose's detector on overlapping tiles.

    Args:
        score_thr: detections scoring below this are dropped (``--det-score-thr``); on
            messi5.jpg / basketball1.png its false positives score up to 0.81, the people 0.88-0.96.
        tile: tile side in pixels; people much smaller than about a third of a tile are missed,
            larger tiles are faster.
        overlap: pixels shared by neighbouring tiles, so a person on a seam is whole in one.
        nms_iou: boxes overlapping a better one by more than this IoU are merged away.
        device: OpenVINO device (``cpu``).
        backend: ``openvino`` or ``auto``.
        num_threads: OpenVINO inference threads; None lets OpenVINO choose.

    Raises:
        DetectorConfigError: If an argument is out of range or the device / backend is unknown.
        ModelFileMissing: If the model file is not installed.
    """

    name = "blazepose"

    def __init__(
        self,
        *,
        score_thr: float = 0.7,
        tile: int = 256,
        overlap: int = 64,
        nms_iou: float = 0.3,
        device: str = "cpu",
        backend: str = "auto",
        num_threads: int | None = None,
    ) -> None:
        if not 0.0 <= score_thr < 1.0:
            raise DetectorConfigError(f"score_thr: expected 0 <= score_thr < 1, got {score_thr}")
        if tile < 64 or not 0 <= overlap < tile // 2:
            raise DetectorConfigError(
                f"tile / overlap: expected tile >= 64 and 0 <= overlap < tile/2, got {tile} / {overlap}"
            )
        if not 0.0 < nms_iou <= 1.0:
            raise DetectorConfigError(f"nms_iou: expected 0 < nms_iou <= 1, got {nms_iou}")
        _check_device_and_backend(device, backend)
        self.score_thr = score_thr
        self.tile = tile
        self.overlap = overlap
        self.nms_iou = nms_iou
        self._min_logit = float(np.log(max(score_thr, 1e-6) / (1.0 - score_thr)))
        self._anchors = _ssd_anchors()
        self._model = _OpenVinoModel(DETECTOR_FILE, (0, 1), device=device, num_threads=num_threads)

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        crops: list[np.ndarray] = []
        owners: list[tuple[int, int, int, int]] = []  # (image index, x0, y0, side) per crop
        for index, image in enumerate(images):
            h, w = image.shape[:2]
            if h == 0 or w == 0:
                continue
            for x0, y0, side in tiles_for(h, w, self.tile, self.overlap):
                crops.append(_crop_square(image, x0, y0, side, _DET_SIZE))
                owners.append((index, x0, y0, side))
        found: list[list[tuple[np.ndarray, float]]] = [[] for _ in images]
        if crops:
            batch = np.stack(crops)[..., ::-1].astype(np.float32) * (1.0 / 127.5) - 1.0  # BGR -> RGB, [-1, 1]
            raw, logits = self._model(batch)
            raw = raw.reshape(len(crops), -1, 12)
            logits = logits.reshape(len(crops), -1)
            for crop_index, (image_index, x0, y0, side) in enumerate(owners):
                hits = np.flatnonzero(logits[crop_index] > self._min_logit)
                if not len(hits):
                    continue
                values, anchors = raw[crop_index, hits], self._anchors[hits]
                hip = (values[:, 4:6] / _DET_SIZE + anchors) * side + (x0, y0)
                circle = (values[:, 6:8] / _DET_SIZE + anchors) * side + (x0, y0)
                radius = np.linalg.norm(circle - hip, axis=1)
                boxes = np.concatenate(
                    [hip - radius[:, None] * (_BOX_HALF_WIDTH, _BOX_HALF_HEIGHT),
                     hip + radius[:, None] * (_BOX_HALF_WIDTH, _BOX_HALF_HEIGHT)], axis=1,
                )  # fmt: skip
                for box, score in zip(boxes, _sigmoid(logits[crop_index, hits]), strict=True):
                    found[image_index].append((box, float(score)))
        return [self._merge(found[i], images[i].shape[:2]) for i in range(len(images))]

    def _merge(self, found: list[tuple[np.ndarray, float]], shape: tuple[int, ...]) -> Detections:
        if not found:
            return Detections.empty()
        boxes = np.stack([b for b, _ in found]).astype(np.float32)
        scores = np.array([s for _, s in found], np.float32)
        keep = nms(boxes, scores, self.nms_iou, contain_threshold=0.6)
        boxes, scores = boxes[keep], scores[keep]
        h, w = shape[:2]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        big = ((boxes[:, 2] - boxes[:, 0]) >= 4) & ((boxes[:, 3] - boxes[:, 1]) >= 8)
        boxes, scores = boxes[big], scores[big]
        return Detections(boxes, scores, np.full(len(boxes), PERSON_LABEL, np.int64))

    def close(self) -> None:
        self._model = None  # type: ignore[assignment]


class BlazePoseEstimator:
    """BlazePose landmarks (full model) on each person's crop, mapped to COCO-17.

    The crop is MediaPipe's pose ROI: a square centred on the box, 1.25 times the box's longer
    side (the detector's box spans the body circle's diameter). The keypoint score is the
    landmark's visibility times the model's person-presence score.

    Args:
        device: OpenVINO device (``cpu``).
        backend: ``openvino`` or ``auto``.
        num_threads: OpenVINO inference threads; None lets OpenVINO choose. One by default:
            the pose stage runs beside the detector and the other stages, and on a small
            shared CPU one thread spent 21 ms of CPU per person where OpenVINO's default
            spent 25 (and was slower).
        max_batch: crops per inference call (larger batches are split).

    Raises:
        DetectorConfigError: If the device / backend is unknown or ``max_batch`` < 1.
        ModelFileMissing: If the model file is not installed.
    """

    name = "blazepose"

    def __init__(
        self, *, device: str = "cpu", backend: str = "auto", num_threads: int | None = 1, max_batch: int = 32
    ) -> None:
        if max_batch < 1:
            raise DetectorConfigError(f"max_batch: expected >= 1, got {max_batch}")
        _check_device_and_backend(device, backend)
        self.max_batch = max_batch
        # outputs: 0 = 39 landmarks x (x, y, z, visibility, presence); 1 = person presence
        self._model = _OpenVinoModel(LANDMARK_FILE, (0, 1), device=device, num_threads=num_threads)

    def estimate(self, images: Sequence[np.ndarray], detections: Sequence[Detections]) -> list[Detections]:
        if len(images) != len(detections):
            raise DetectorConfigError(
                f"estimate: expected one Detections per image, got {len(detections)} for {len(images)}"
            )
        crops: list[np.ndarray] = []
        rois: list[tuple[float, float, float]] = []  # (x0, y0, side) per crop
        for image, dets in zip(images, detections, strict=True):
            for x1, y1, x2, y2 in dets.xyxy.astype(np.float64):
                side = max(x2 - x1, y2 - y1, 1.0) * _ROI_SCALE
                x0, y0 = (x1 + x2 - side) / 2, (y1 + y2 - side) / 2
                crops.append(_crop_square(image, x0, y0, side, _LM_SIZE))
                rois.append((x0, y0, side))
        keypoints = np.zeros((len(crops), len(BLAZEPOSE_TO_COCO), 3), np.float32)
        for start in range(0, len(crops), self.max_batch):
            chunk = np.stack(crops[start : start + self.max_batch])[..., ::-1].astype(np.float32) * (1.0 / 255.0)
            landmarks, presence = self._model(chunk)
            landmarks = landmarks.reshape(len(chunk), -1, 5)[:, BLAZEPOSE_TO_COCO]
            presence = presence.reshape(len(chunk))
            for j in range(len(chunk)):
                x0, y0, side = rois[start + j]
                scale = side / _LM_SIZE
                keypoints[start + j, :, 0] = landmarks[j, :, 0] * scale + x0
                keypoints[start + j, :, 1] = landmarks[j, :, 1] * scale + y0
                keypoints[start + j, :, 2] = _sigmoid(landmarks[j, :, 3]) * presence[j]
        out: list[Detections] = []
        row = 0
        for dets in detections:
            n = len(dets)
            out.append(
                Detections(
                    dets.xyxy, dets.scores, dets.labels, dets.track_ids, dict(dets.data), keypoints[row : row + n]
                )
            )
            row += n
        return out

    def close(self) -> None:
        self._model = None  # type: ignore[assignment]
