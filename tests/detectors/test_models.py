"""The zero-download people models on real footage: HOG people detector, BlazePose detector and landmarks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from detectors.base import COCO_KEYPOINTS, PersonDetector, PoseEstimator
from detectors.blazepose import (
    BLAZEPOSE_TO_COCO,
    DETECTOR_FILE,
    LANDMARK_FILE,
    BlazePoseDetector,
    BlazePoseEstimator,
    tiles_for,
)
from detectors.errors import DetectorConfigError, DetectorError
from detectors.hog import HogPeopleDetector
from detectors.registry import DETECTORS, POSE_ESTIMATORS, build_detector, build_pose_estimator
from stream.packet import Detections
from tests.footage import people_stills, vtest  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def hog() -> HogPeopleDetector:
    return HogPeopleDetector()


@pytest.fixture(scope="module")
def landmarks() -> BlazePoseEstimator:
    return BlazePoseEstimator(num_threads=2)


@pytest.fixture(scope="module")
def blazepose_detector() -> BlazePoseDetector:
    return BlazePoseDetector(num_threads=2)


@pytest.fixture(scope="module")
def vtest_frames(vtest: Path) -> list[np.ndarray]:  # noqa: F811
    """Eight frames of vtest.avi, 3 s apart."""
    cap = cv2.VideoCapture(str(vtest))
    frames = []
    for index in range(0, 240, 30):
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = cap.read()
        assert ok, f"cannot read frame {index} of {vtest}"
        frames.append(frame)
    cap.release()
    return frames


def _inside(keypoints: np.ndarray, box: np.ndarray, margin: float, margin_x: float | None = None) -> np.ndarray:
    """Which keypoints lie in the box grown by ``margin`` of its size (``margin_x`` of its width)."""
    x1, y1, x2, y2 = box
    mx, my = (margin if margin_x is None else margin_x) * (x2 - x1), margin * (y2 - y1)
    x, y = keypoints[:, 0], keypoints[:, 1]
    return (x >= x1 - mx) & (x <= x2 + mx) & (y >= y1 - my) & (y <= y2 + my)


def test_default_models_find_people_and_skeletons_on_vtest(hog, landmarks, vtest_frames):
    people = hog.detect(vtest_frames)
    counts = [len(d) for d in people]
    assert sum(c >= 2 for c in counts) >= 6, f"people per frame: {counts}"  # several people on most frames
    assert max(counts) <= 15, f"people per frame: {counts}"  # vtest never has more than ~10 in view
    for d in people:
        assert (d.labels == 0).all() and ((d.scores >= hog.score_thr) & (d.scores <= 1)).all()
        heights = d.xyxy[:, 3] - d.xyxy[:, 1]
        assert ((heights > 40) & (heights < 400)).all(), heights  # pedestrian-sized boxes
    posed = landmarks.estimate(vtest_frames, people)
    confident_people = 0
    for d, p in zip(people, posed, strict=True):
        assert p.keypoints is not None and p.keypoints.shape == (len(d), 17, 3)
        np.testing.assert_array_equal(p.xyxy, d.xyxy)  # rows unchanged, in order
        for box, kpts in zip(p.xyxy, p.keypoints, strict=True):
            visible = kpts[:, 2] > 0.5
            if visible.sum() >= 8:
                confident_people += 1
                # near the box: swinging hands reach past HOG's narrow boxes
                assert _inside(kpts[visible], box, 0.2, margin_x=0.5).mean() >= 0.85, (box, kpts)
    assert confident_people >= 0.7 * sum(counts), (confident_people, counts)


def test_blazepose_finds_people_close_to_the_camera(blazepose_detector, landmarks, people_stills):  # noqa: F811
    detector = blazepose_detector
    for path in people_stills:
        image = cv2.imread(str(path))
        found = landmarks.estimate([image], detector.detect([image]))[0]
        assert found.keypoints is not None
        best = found.keypoints[:, :, 2].mean(axis=1).max(initial=0.0)
        assert best > 0.5, f"{path.name}: no confident skeleton among {len(found)} detections"
        person = int(found.keypoints[:, :, 2].mean(axis=1).argmax())
        visible = found.keypoints[person, :, 2] > 0.5
        assert _inside(found.keypoints[person][visible], found.xyxy[person], 0.25).mean() >= 0.9


@pytest.mark.parametrize("size", [(576, 768), (50, 40), (0, 0)])
def test_frames_of_one_colour_have_nobody(hog, blazepose_detector, landmarks, size):
    images = [np.full((*size, 3), fill, np.uint8) for fill in (0, 128, 255)]
    for detector in (hog, blazepose_detector):
        found = detector.detect(images)
        assert [len(d) for d in found] == [0, 0, 0]
    posed = landmarks.estimate(images[:1], [Detections.empty()])
    assert posed[0].keypoints is not None and posed[0].keypoints.shape == (0, 17, 3)
    assert hog.detect([]) == [] and landmarks.estimate([], []) == []


def test_models_follow_the_protocols(hog, landmarks):
    assert isinstance(hog, PersonDetector) and isinstance(landmarks, PoseEstimator)


def test_hog_scale_bounds_the_work_on_large_frames(hog):
    assert hog.scale_for(576, 768) == pytest.approx(96 / 75)  # vtest.avi: enlarged to find 75 px people
    assert hog.scale_for(1080, 1920) == pytest.approx(1024 / 1920)  # 1080p: scaled down to 1024 px
    assert max(1080, 1920) * hog.scale_for(1080, 1920) <= hog.max_side


def test_blazepose_to_coco_keeps_coco_order():
    blazepose_names = {0: "nose", 2: "left_eye", 5: "right_eye", 7: "left_ear", 8: "right_ear", 11: "left_shoulder",
                       12: "right_shoulder", 13: "left_elbow", 14: "right_elbow", 15: "left_wrist", 16: "right_wrist",
                       23: "left_hip", 24: "right_hip", 25: "left_knee", 26: "right_knee", 27: "left_ankle",
                       28: "right_ankle"}  # fmt: skip
    assert tuple(blazepose_names[i] for i in BLAZEPOSE_TO_COCO) == COCO_KEYPOINTS


def test_tiles_cover_the_frame_with_overlap():
    tiles = tiles_for(576, 768, 256, 64)
    assert tiles[0] == (0, 0, 768)  # the whole frame first
    covered = np.zeros((576, 768), bool)
    for x0, y0, side in tiles[1:]:
        covered[y0 : y0 + side, x0 : x0 + side] = True
    assert covered.all()
    assert tiles_for(200, 180, 256, 64) == [(0, 0, 200)]


def test_shipped_model_files_are_mediapipes():
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (DETECTOR_FILE, LANDMARK_FILE)}
    readme = (DETECTOR_FILE.parent / "README.md").read_text()
    for name, digest in digests.items():
        assert f"`{name}`" in readme and digest in readme


@pytest.mark.parametrize(
    ("build", "kwargs", "match"),
    [
        (lambda **k: build_detector("yolo", **k), {}, "expected one of blazepose, hog, mmdet, rtmdet, yolox$"),
        (lambda **k: build_pose_estimator("hrnet", **k), {}, "expected one of blazepose, mmpose, rtmpose$"),
        (HogPeopleDetector, {"score_thr": 1.5}, "score_thr"),
        (HogPeopleDetector, {"min_height": 5}, "min_height"),
        (HogPeopleDetector, {"device": "cuda"}, "CPU only"),
        (HogPeopleDetector, {"backend": "tensorrt"}, "opencv"),
        (BlazePoseDetector, {"backend": "onnxruntime"}, "openvino"),
        (BlazePoseDetector, {"device": "npu7"}, "not available to OpenVINO"),
        (BlazePoseEstimator, {"max_batch": 0}, "max_batch"),
    ],
)
def test_bad_model_arguments_raise_config_errors(build, kwargs, match):
    with pytest.raises(DetectorConfigError, match=match) as info:
        build(**kwargs)
    assert isinstance(info.value, (DetectorError, ValueError))
    assert set(DETECTORS) == {"hog", "blazepose", "mmdet", "rtmdet", "yolox"}
    assert set(POSE_ESTIMATORS) == {"blazepose", "mmpose", "rtmpose"}
