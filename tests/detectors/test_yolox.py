"""YOLOX against mmdet 3.3's own outputs (tests/fixtures/mm/yolox, made by tools/make_yolox_fixtures.py).

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
from detectors.mmdet_common import grid_priors, input_settings, letterbox, normalise
from detectors.registry import build_detector
from detectors.yolox import YOLOXDetector, postprocess, prior_strides
from engines.checkpoint import load_checkpoint
from engines.config import read_config, to_plain
from engines.models import build

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests/fixtures/mm/yolox"
TINY = ROOT / "configs/detection/yolox/yolox_tiny_8xb8-300e_coco.py"
SMALL = FIX / "yolox_small_random.py"
CKPT = FIX / "yolox_small_random.pth"
NAMES = ("vtest_0", "vtest_100")
SIZE = 416


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


def net_input(m: torch.nn.Module, images: list[np.ndarray]) -> torch.Tensor:
    padded = [letterbox(i, (SIZE, SIZE), 114)[0] for i in images]
    return torch.from_numpy(normalise(padded, m.mean, m.std, m.bgr_to_rgb))  # type: ignore[arg-type]


def test_tiny_config_has_mmdets_state_dict_keys_and_shapes() -> None:
    want = json.loads((FIX / "yolox_tiny_keys.json").read_text())
    got = {k: list(v.shape) for k, v in build(to_plain(read_config(TINY).model)).state_dict().items()}
    assert got == want


def test_tiny_config_reads_as_mmdets_yolox_test_settings() -> None:
    cfg = read_config(TINY)
    assert input_settings(to_plain(cfg._cfg_dict), "YOLOX") == ((416, 416), 114)
    m = build(to_plain(cfg.model))
    assert (m.mean, m.std, m.bgr_to_rgb, m.pad_size_divisor) == ((0.0,) * 3, (1.0,) * 3, False, 32)
    assert m.test_cfg == {"score_thr": 0.01, "nms": {"type": "nms", "iou_threshold": 0.65}}


@pytest.mark.parametrize(
    ("pipeline", "want"),
    [
        ([{"type": "Resize", "scale": (640, 640), "keep_ratio": True}, {"type": "Pad", "pad_to_square": True}],
         ((640, 640), 114)),
        ([{"type": "Resize", "scale": (400, 400), "keep_ratio": True},
          {"type": "Pad", "pad_to_square": True, "size_divisor": 32, "pad_val": {"img": (0, 0, 0)}}], ((416, 416), 0)),
        ([{"type": "Resize", "scale": (640, 480), "keep_ratio": True}, {"type": "Pad", "pad_to_square": True}],
         "needs a square Resize scale"),
        ([{"type": "Resize", "scale": (640, 640), "keep_ratio": False}], "must keep the ratio"),
    ],
)  # fmt: skip
def test_input_settings_follow_resize_and_pad(pipeline: list[dict], want: object) -> None:
    if isinstance(want, str):
        with pytest.raises(DetectorConfigError, match=want):
            input_settings({"test_pipeline": pipeline}, "YOLOX")
    else:
        assert input_settings({"test_pipeline": pipeline}, "YOLOX") == want


@pytest.mark.parametrize("name", NAMES)
def test_letterbox_gives_mmdets_network_input(ref: dict[str, np.ndarray], name: str) -> None:
    padded, factor = letterbox(image(name), (SIZE, SIZE), 114)
    np.testing.assert_array_equal(padded, ref[f"{name}/padded"])
    np.testing.assert_allclose(factor, ref[f"{name}/scale_factor"][:2], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_raw_head_outputs_match_mmdet(model: torch.nn.Module, ref: dict[str, np.ndarray], name: str) -> None:
    with torch.no_grad():
        cls_scores, bbox_preds, objectnesses = model.head_outputs(net_input(model, [image(name)]))  # type: ignore[operator]
    assert len(cls_scores) == 3
    for level, (c, b, o) in enumerate(zip(cls_scores, bbox_preds, objectnesses, strict=True)):
        want_c = ref[f"{name}/cls_score_{level}"]
        np.testing.assert_allclose(c.numpy()[:, : want_c.shape[1]], want_c, rtol=0, atol=1e-4)
        np.testing.assert_allclose(b.numpy(), ref[f"{name}/bbox_pred_{level}"], rtol=0, atol=1e-4)
        np.testing.assert_allclose(o.numpy(), ref[f"{name}/objectness_{level}"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_postprocess_gives_mmdets_boxes(model: torch.nn.Module, ref: dict[str, np.ndarray], name: str) -> None:
    _, factor = letterbox(image(name), (SIZE, SIZE), 114)
    with torch.no_grad():
        scores, objectness, bbox_preds = model(net_input(model, [image(name)]))
    priors, counts = grid_priors(SIZE, SIZE, model.strides)  # type: ignore[arg-type]
    boxes, sc, labels = postprocess(
        scores[0].numpy(), objectness[0].numpy(), bbox_preds[0].numpy(), priors,
        prior_strides(counts, model.strides), factor, model.test_cfg,  # type: ignore[arg-type]
    )  # fmt: skip
    want = ref[f"{name}/bboxes"]
    assert len(boxes) == len(want) > 0
    np.testing.assert_array_equal(labels, ref[f"{name}/labels"])
    np.testing.assert_allclose(sc, ref[f"{name}/scores"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(boxes, want, rtol=0, atol=1e-3)
    assert np.diag(iou_matrix(boxes, want)).min() > 0.99


def test_postprocess_keeps_the_threshold_inclusive_and_boxes_unclipped() -> None:
    scores = np.array([[0.5, 0.2], [0.1, 0.4]], np.float32)
    objectness = np.array([0.2, 0.1], np.float32)  # products 0.1 (class 0) and 0.04 (class 1)
    deltas = np.array([[0.0, 0.0, np.log(4.0), np.log(2.0)], [0.0, 0.0, 0.0, 0.0]], np.float32)
    priors, strides = np.array([[0.0, 0.0], [8.0, 8.0]], np.float32), np.array([8.0, 8.0], np.float32)
    cfg = {"score_thr": float(np.float32(0.5) * np.float32(0.2)), "nms": {"type": "nms", "iou_threshold": 0.65}}
    boxes, sc, labels = postprocess(scores, objectness, deltas, priors, strides, (0.5, 0.5), cfg)
    assert labels.tolist() == [0] and sc.tolist() == [np.float32(0.5) * np.float32(0.2)]
    np.testing.assert_allclose(boxes, [[-32.0, -16.0, 32.0, 16.0]])  # centre 0, 32×16 px, then / 0.5; no clipping


@pytest.fixture(scope="module", params=["onnxruntime", "openvino"])
def detector(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> YOLOXDetector:
    det = YOLOXDetector(
        config=SMALL, checkpoint=CKPT, score_thr=0.1, cat_id=0, backend=request.param,
        cache_dir=tmp_path_factory.mktemp("engines"), precision="fp32",
    )  # fmt: skip
    yield det  # type: ignore[misc]
    det.close()


def test_engines_agree_with_torch_and_mmdet(detector: YOLOXDetector, model: torch.nn.Module, ref: dict) -> None:
    images = [image(n) for n in NAMES]
    assert detector.size == (SIZE, SIZE)
    out, _ = detector.run(images)
    with torch.no_grad():
        want = dict(zip(("scores", "objectness", "bbox_preds"), model(net_input(model, images)), strict=True))
    diff = {key: float(np.abs(out[key] - want[key].numpy()).max()) for key in want}
    # raw 0-255 pixels in: the deltas differ by ~2e-4 (then ~1e-4 px after decoding)
    assert diff["scores"] <= 1e-4 and diff["objectness"] <= 1e-4 and diff["bbox_preds"] <= 1e-3, diff
    for name, dets in zip(NAMES, detector.detect_all(images), strict=True):
        want_boxes = ref[f"{name}/bboxes"]
        assert len(dets) == len(want_boxes)
        # the engine's scores differ from torch's by ~1e-7, so boxes of near-equal score may swap places
        np.testing.assert_array_equal(np.sort(dets.labels), np.sort(ref[f"{name}/labels"]))
        np.testing.assert_allclose(np.sort(dets.scores), np.sort(ref[f"{name}/scores"]), atol=1e-4)
        # each box is one of mmdet's (same label): IoU > 0.99, or within 0.1 px for the sub-pixel boxes that
        # random weights make (the raw 0-255 input gives the engines' deltas ~2e-4 of play)
        same_label = dets.labels[:, None] == ref[f"{name}/labels"][None, :]
        iou = iou_matrix(dets.xyxy, want_boxes) * same_label
        near = (np.abs(dets.xyxy[:, None, :] - want_boxes[None]).max(axis=2) <= 0.1) & same_label
        match = (iou > 0.99) | near
        assert match.any(axis=0).all() and match.any(axis=1).all()


def test_detect_keeps_the_category_above_the_threshold(detector: YOLOXDetector) -> None:
    images = [image(n) for n in NAMES]
    everything = detector.detect_all(images)  # test_cfg.score_thr is the detector's 0.1
    label = int(everything[0].labels[0])
    detector.cat_id = label
    try:
        people = detector.detect(images)
    finally:
        detector.cat_id = 0
    for img, dets, full in zip(images, people, everything, strict=True):
        want = full[(full.labels == label) & (full.scores > 0.1)]
        h, w = img.shape[:2]
        np.testing.assert_allclose(dets.xyxy, want.xyxy.clip(0, [w, h, w, h]), atol=1e-4)
        assert (dets.labels == 0).all()
    assert detector.detect([]) == []


def test_registry_builds_yolox_and_explains_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DetectorConfigError, match="--detector yolox needs --det-config"):
        build_detector("yolox")
    with pytest.raises(DetectorConfigError, match=r"--det-checkpoint .*nope.pth: no such file"):
        build_detector("yolox", config=SMALL, checkpoint=tmp_path / "nope.pth")
    with pytest.raises(DetectorConfigError, match=r"model.type is 'RTMDet', --detector yolox needs 'YOLOX'"):
        build_detector(
            "yolox", config=ROOT / "configs/detection/rtmdet/rtmdet_tiny_8xb32-300e_coco.py", checkpoint=CKPT
        )
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {"backbone.stem.conv.conv.weight": torch.zeros(1)}, "meta": {}}, bad)
    with pytest.raises(DetectorConfigError, match=r"bad.pth does not fit yolox_small_random.py.*pass the checkpoint"):
        build_detector("yolox", config=SMALL, checkpoint=bad, cache_dir=tmp_path)


@pytest.mark.mm
def test_live_mmdet_gives_the_same_boxes(detector: YOLOXDetector) -> None:
    from mmdet.apis import inference_detector, init_detector

    mm = init_detector(str(SMALL), str(CKPT), device="cpu")
    images = [image(n) for n in NAMES]
    for img, dets in zip(images, detector.detect_all(images), strict=True):
        want = inference_detector(mm, img).pred_instances
        assert len(dets) == len(want)
        boxes, same_label = want.bboxes.numpy(), dets.labels[:, None] == want.labels.numpy()[None, :]
        near = (np.abs(dets.xyxy[:, None, :] - boxes[None]).max(axis=2) <= 0.1) & same_label
        match = (iou_matrix(dets.xyxy, boxes) * same_label > 0.99) | near
        assert match.any(axis=0).all() and match.any(axis=1).all()
