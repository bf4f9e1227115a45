"""precision='auto' of the detector and pose engines: bf16 kept only when the task check passes.

The engines are the tiny fixture models (YOLOX widened 0.1, RTMPose-t narrowed); the check
frames are the fixtures' vtest.avi frames, so that no test needs opencv-doc. The tolerance is
patched to make the check pass or fail for sure, and ``auto_candidate`` to offer bf16 on any
CPU (OpenVINO then compiles what the CPU has; the decision logic is what is tested here).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from detectors import precision
from detectors.errors import DetectorConfigError
from detectors.rtmpose import RTMPoseEstimator
from detectors.yolox import YOLOXDetector
from engines import graph

ROOT = Path(__file__).resolve().parents[2]
YOLOX = ROOT / "tests/fixtures/mm/yolox"
POSE = ROOT / "tests/fixtures/mm/rtmpose"
#: Two pedestrians of vtest.avi's frame 100 (as HOG boxes them).
POSE_BOXES = np.array([[572, 172, 632, 292], [339, 190, 386, 302]], np.float32)


@pytest.fixture()
def frames(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    images = [cv2.imread(str(YOLOX / f"vtest_{n}.png"), cv2.IMREAD_COLOR) for n in (0, 100)]
    monkeypatch.setattr(precision, "check_frames", lambda *a, **k: images)
    monkeypatch.setattr(graph, "auto_candidate", lambda backend: "bf16" if backend == "openvino" else None)
    return images


def test_compare_boxes_looks_at_the_references_best_candidates_only() -> None:
    ref_boxes = np.array([[0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 4, 4]], np.float32)
    ref_scores = np.array([0.9, 0.05, 0.6], np.float32)
    boxes = ref_boxes + np.array([[0.5], [30.0], [0.25]], np.float32)  # the low-scored box moves far
    scores = ref_scores + np.array([0.002, 0.5, -0.004], np.float32)
    assert precision.compare_boxes(ref_boxes, ref_scores, boxes, scores, top_k=2) == pytest.approx(
        (0.5, 0.004), abs=1e-6
    )
    assert precision.compare_boxes(ref_boxes, ref_scores, boxes, scores, top_k=3) == pytest.approx(
        (30.0, 0.5), abs=1e-6
    )
    with pytest.raises(ValueError, match="shapes differ"):
        precision.compare_boxes(ref_boxes, ref_scores, boxes[:2], scores[:2])


def test_compare_keypoints_gives_the_worst_move_and_the_share_beyond_one_pixel() -> None:
    ref = np.zeros((2, 17, 3), np.float32)
    got = ref.copy()
    got[0, 3, 0] = 0.9  # within the tolerance
    got[1, 5, 1] = -40.0  # an argmax that jumped
    got[1, 6, 2] = 5.0  # scores are not positions
    assert precision.compare_keypoints(ref, got) == pytest.approx((40.0, 1 / 34))
    assert precision.compare_keypoints(ref[:0], got[:0]) == (0.0, 0.0)


def test_check_frames_reads_the_chosen_frames_and_nothing_without_the_video(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(6):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    got = precision.check_frames(path, (4, 1, 9))
    assert [round(float(f.mean()) / 40) for f in got] == [1, 4]  # in order; past the end is skipped
    assert precision.check_frames(tmp_path / "missing.avi") == []


@pytest.mark.parametrize(("tolerance", "kept"), [(1e9, True), (-1.0, False)])
def test_yolox_auto_keeps_bf16_only_when_its_boxes_agree(
    frames, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tolerance: float, kept: bool
) -> None:
    monkeypatch.setattr(precision, "BOX_TOL_PX", tolerance)
    monkeypatch.setattr(precision, "SCORE_TOL", tolerance)
    det = YOLOXDetector(
        config=YOLOX / "yolox_small_random.py", checkpoint=YOLOX / "yolox_small_random.pth", cat_id=0,
        backend="openvino", cache_dir=tmp_path,
    )  # fmt: skip
    check = det.engine.manifest.validation["auto_precision"]
    assert check["tried"] == "bf16" and check["kept"] is kept and check["frames"] == 2
    assert check["box_px"] >= 0 and check["score"] >= 0
    want = "bf16" if kept else "fp32"
    assert det.precision == want and det.engine.backend.precision == want
    (folder,) = tmp_path.iterdir()
    assert folder.name.startswith("yolox-openvino-auto-")
    assert json.loads((folder / "manifest.json").read_text())["precision"] == want
    assert ("reason" in check) is not kept
    det.close()
    # the cached entry opens at the kept precision without building or checking again
    monkeypatch.setattr(YOLOXDetector, "agree", lambda *a: pytest.fail("checked a cached engine again"))
    again = YOLOXDetector(
        config=YOLOX / "yolox_small_random.py", checkpoint=YOLOX / "yolox_small_random.pth", cat_id=0,
        backend="openvino", cache_dir=tmp_path,
    )  # fmt: skip
    assert again.precision == want and again.engine.backend.precision == want
    again.close()


def test_auto_is_fp32_without_check_frames_or_on_onnxruntime(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(graph, "auto_candidate", lambda backend: "bf16" if backend == "openvino" else None)
    monkeypatch.setattr(precision, "check_frames", lambda *a, **k: [])
    kwargs = {"config": YOLOX / "yolox_small_random.py", "checkpoint": YOLOX / "yolox_small_random.pth", "cat_id": 0}
    det = YOLOXDetector(**kwargs, backend="openvino", cache_dir=tmp_path / "ov")
    check = det.engine.manifest.validation["auto_precision"]
    assert det.precision == "fp32" and not check["kept"] and "opencv-doc" in check["reason"]
    det.close()
    det = YOLOXDetector(**kwargs, backend="onnxruntime", cache_dir=tmp_path / "ort")
    assert det.precision == "fp32" and "auto_precision" not in det.engine.manifest.validation
    assert [p.name.split("-")[2] for p in (tmp_path / "ort").iterdir()] == ["fp32"]  # the fp32 entry itself
    det.close()


def test_unknown_precision_is_refused_in_one_line() -> None:
    with pytest.raises(DetectorConfigError, match="precision: expected one of auto, fp32, bf16, fp16, got 'int4'"):
        YOLOXDetector(config=YOLOX / "yolox_small_random.py", checkpoint=YOLOX / "none.pth", precision="int4")
    with pytest.raises(DetectorConfigError, match="precision: expected one of"):
        RTMPoseEstimator(POSE / "rtmpose-tiny_coco-256x192.py", POSE / "rtmpose-tiny_coco-256x192.pth", precision="x")


@pytest.mark.parametrize(("tolerance", "kept"), [(1e9, True), (-1.0, False)])
def test_rtmpose_auto_keeps_bf16_only_when_its_keypoints_agree(
    frames, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tolerance: float, kept: bool
) -> None:
    monkeypatch.setattr(precision, "check_people", lambda images: [POSE_BOXES[:1], POSE_BOXES])
    monkeypatch.setattr(precision, "KEYPOINT_TOL_PX", tolerance)
    pose = RTMPoseEstimator(
        POSE / "rtmpose-tiny_coco-256x192.py", POSE / "rtmpose-tiny_coco-256x192.pth", backend="openvino",
        cache=False, engine_dir=tmp_path / "e",
    )  # fmt: skip
    check = pose._engine.manifest.validation["auto_precision"]
    assert check["tried"] == "bf16" and check["kept"] is kept and check["people"] == 3
    want = "bf16" if kept else "fp32"
    assert pose.precision == want and pose._engine.backend.precision == want
    keypoints, _ = pose.predict(frames[1], POSE_BOXES)
    assert keypoints.shape == (2, 17, 2) and np.isfinite(keypoints).all()
    pose.close()
