"""RTMDet against mmdet 3.3's own outputs (tests/fixtures/mm/rtmdet, made by tools/make_mm_fixtures.py).

Offline: our torch model on mmdet's checkpoint gives mmdet's raw head outputs, our numpy
test pipeline gives mmdet's network input, our post-processing gives mmdet's final boxes,
and the ONNX Runtime / OpenVINO engines agree with torch. Live (marker ``mm``, deselected by
default: ``pytest -m mm``): the same against mmdet imported in this interpreter.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from detectors.errors import DetectorConfigError
from detectors.registry import build_detector
from detectors.rtmdet import RTMDetDetector, grid_priors, letterbox, nms, normalise, postprocess
from engines.checkpoint import load_checkpoint
from engines.config import read_config, to_plain
from engines.models import build

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests/fixtures/mm/rtmdet"
TINY = ROOT / "configs/detection/rtmdet/rtmdet_tiny_8xb32-300e_coco.py"
SMALL = FIX / "rtmdet_small_random.py"
CKPT = FIX / "rtmdet_small_random.pth"
NAMES = ("messi5", "basketball1", "vtest_0", "vtest_100")


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    with np.load(FIX / "mmdet_outputs.npz") as data:
        return dict(data)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    m = build(to_plain(read_config(SMALL).model)).eval()
    load_checkpoint(m, CKPT)
    return m


def image(name: str) -> np.ndarray:
    return cv2.imread(str(FIX / f"{name}.png"), cv2.IMREAD_COLOR)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def test_tiny_config_has_mmdets_state_dict_keys_and_shapes() -> None:
    want = json.loads((FIX / "rtmdet_tiny_keys.json").read_text())
    got = {k: list(v.shape) for k, v in build(to_plain(read_config(TINY).model)).state_dict().items()}
    assert got == want


@pytest.mark.parametrize("name", NAMES)
def test_letterbox_and_normalise_give_mmdets_network_input(ref: dict[str, np.ndarray], name: str) -> None:
    padded, factor = letterbox(image(name), (640, 640), 114)
    np.testing.assert_array_equal(padded, ref[f"{name}/padded"])
    np.testing.assert_allclose(factor, ref[f"{name}/scale_factor"][:2], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_raw_head_outputs_match_mmdet(model: torch.nn.Module, ref: dict[str, np.ndarray], name: str) -> None:
    padded, _ = letterbox(image(name))
    x = torch.from_numpy(normalise([padded], model.mean, model.std, model.bgr_to_rgb))  # type: ignore[arg-type]
    with torch.no_grad():
        cls_scores, bbox_preds = model.head_outputs(x)  # type: ignore[operator]
    for level, (c, b) in enumerate(zip(cls_scores, bbox_preds, strict=True)):
        want_c = ref[f"{name}/cls_score_{level}"]
        np.testing.assert_allclose(c.numpy()[:, : want_c.shape[1]], want_c, rtol=0, atol=1e-4)
        np.testing.assert_allclose(b.numpy(), ref[f"{name}/bbox_pred_{level}"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_postprocess_gives_mmdets_boxes(model: torch.nn.Module, ref: dict[str, np.ndarray], name: str) -> None:
    padded, factor = letterbox(image(name))
    x = torch.from_numpy(normalise([padded], model.mean, model.std, model.bgr_to_rgb))  # type: ignore[arg-type]
    with torch.no_grad():
        scores, distances = model(x)
    priors, counts = grid_priors(640, 640, model.strides)  # type: ignore[arg-type]
    boxes, sc, labels = postprocess(
        scores[0].numpy(),
        distances[0].numpy(),
        priors,
        counts,
        (640, 640),
        factor,
        model.test_cfg,  # type: ignore[arg-type]
    )
    want = ref[f"{name}/bboxes"]
    assert len(boxes) == len(want) > 0
    np.testing.assert_array_equal(labels, ref[f"{name}/labels"])
    np.testing.assert_allclose(sc, ref[f"{name}/scores"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(boxes, want, rtol=0, atol=1e-3)
    assert np.diag(iou_matrix(boxes, want)).min() > 0.99


def test_nms_suppresses_above_the_threshold_only() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 13], [0, 0, 10, 14], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    # IoU(0, 1) = 100 / 130 = 0.769 > 0.75 suppressed; IoU(0, 2) = 100 / 140 = 0.714 kept
    assert nms(boxes, scores, 0.75).tolist() == [0, 2, 3]


@pytest.fixture(scope="module", params=["onnxruntime", "openvino"])
def detector(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> RTMDetDetector:
    det = RTMDetDetector(
        config=SMALL, checkpoint=CKPT, score_thr=0.05, cat_id=0, backend=request.param,
        cache_dir=tmp_path_factory.mktemp("engines"), precision="fp32",
    )  # fmt: skip
    yield det  # type: ignore[misc]
    det.close()


def test_engines_agree_with_torch_and_mmdet(detector: RTMDetDetector, model: torch.nn.Module, ref: dict) -> None:
    images = [image(n) for n in NAMES]
    scores, distances, _ = detector.raw(images)
    x = torch.from_numpy(normalise([letterbox(i)[0] for i in images], model.mean, model.std, False))  # type: ignore[arg-type]
    with torch.no_grad():
        want_s, want_d = model(x)
    assert np.abs(scores - want_s.numpy()).max() <= 1e-4
    assert np.abs(distances - want_d.numpy()).max() <= 1e-3
    for name, dets in zip(NAMES, detector.detect_all(images), strict=True):
        want = ref[f"{name}/bboxes"]
        assert len(dets) == len(want)
        # the engine's scores differ from torch's by ~1e-7, so boxes of near-equal score may swap places
        np.testing.assert_array_equal(np.sort(dets.labels), np.sort(ref[f"{name}/labels"]))
        np.testing.assert_allclose(np.sort(dets.scores), np.sort(ref[f"{name}/scores"]), atol=1e-4)
        same = iou_matrix(dets.xyxy, want) * (dets.labels[:, None] == ref[f"{name}/labels"][None, :])
        assert same.max(axis=0).min() > 0.99 and same.max(axis=1).min() > 0.99


def test_detect_keeps_the_category_above_the_threshold(detector: RTMDetDetector) -> None:
    images = [image(n) for n in NAMES]
    everything = detector.detect_all(images, 0.05)
    label = int(everything[0].labels[0])
    detector.cat_id = label
    try:
        people = detector.detect(images)
    finally:
        detector.cat_id = 0
    for dets, full in zip(people, everything, strict=True):
        want = full[(full.labels == label) & (full.scores > 0.05)]
        np.testing.assert_allclose(dets.xyxy, want.xyxy, atol=1e-4)
        assert (dets.labels == 0).all()
    assert detector.detect([]) == []


def test_registry_builds_rtmdet_and_explains_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DetectorConfigError, match="needs --det-config"):
        build_detector("rtmdet")
    with pytest.raises(DetectorConfigError, match=r"--det-checkpoint .*nope.pth: no such file"):
        build_detector("rtmdet", config=SMALL, checkpoint=tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {"backbone.stem.0.conv.weight": torch.zeros(1)}, "meta": {}}, bad)
    with pytest.raises(DetectorConfigError, match=r"bad.pth does not fit rtmdet_small_random.py.*pass the checkpoint"):
        build_detector("rtmdet", config=SMALL, checkpoint=bad, cache_dir=tmp_path)


def test_people_are_the_class_named_person_and_a_checkpoint_without_one_is_refused(tmp_path: Path) -> None:
    ckpt = torch.load(CKPT, map_location="cpu", weights_only=True)
    classes = list(ckpt["meta"]["dataset_meta"]["classes"])
    assert classes[0] == "person"
    swapped = tmp_path / "swapped.pth"  # people are class 3 of this checkpoint
    classes[0], classes[3] = classes[3], classes[0]
    torch.save({**ckpt, "meta": {"dataset_meta": {"classes": classes}}}, swapped)
    fp32 = {"cache_dir": tmp_path, "precision": "fp32"}  # the class is the point here, not the precision check
    assert build_detector("rtmdet", config=SMALL, checkpoint=swapped, **fp32).cat_id == 3
    assert build_detector("rtmdet", config=SMALL, checkpoint=swapped, cat_id=7, **fp32).cat_id == 7
    no_person = tmp_path / "vehicles.pth"
    classes[3] = "pedestrian"
    torch.save({**ckpt, "meta": {"dataset_meta": {"classes": classes}}}, no_person)
    refused = r"vehicles.pth .* has no class named 'person' \(0: motorcycle, .*--det-cat-id"
    with pytest.raises(DetectorConfigError, match=refused):
        build_detector("rtmdet", config=SMALL, checkpoint=no_person, **fp32)
    with pytest.raises(DetectorConfigError, match=r"--det-cat-id 80: .* scores 80 classes \(ids 0-79\)"):
        build_detector("rtmdet", config=SMALL, checkpoint=CKPT, cat_id=80, **fp32)


@pytest.mark.mm
def test_live_mmdet_gives_the_same_boxes(detector: RTMDetDetector) -> None:
    try:
        from mmdet.apis import inference_detector, init_detector
    except ImportError:
        pytest.skip("mmdet not installed (bash tools/install_mm.sh)")
    mm = init_detector(str(SMALL), str(CKPT), device="cpu")
    images = [image(n) for n in NAMES]
    for img, dets in zip(images, detector.detect_all(images), strict=True):
        want = inference_detector(mm, img).pred_instances
        assert len(dets) == len(want)
        assert iou_matrix(dets.xyxy, want.bboxes.numpy()).max(axis=0).min() > 0.99


def test_mmdet_detector_names_the_install_script_when_mmdet_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from detectors.errors import LibraryMissing

    monkeypatch.setitem(sys.modules, "mmdet", None)
    monkeypatch.setitem(sys.modules, "mmdet.apis", None)
    with pytest.raises(LibraryMissing, match=r"bash tools/install_mm\.sh"):
        build_detector("mmdet", config=SMALL, checkpoint=CKPT)
    with pytest.raises(DetectorConfigError, match="needs --det-config"):
        build_detector("mmdet")
