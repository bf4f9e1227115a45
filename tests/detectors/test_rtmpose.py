"""RTMPose as a compiled engine against mmpose's own outputs on the same checkpoint.

The fixture (``tests/fixtures/mm/rtmpose``, made by ``tools/make_pose_fixtures.py`` with
mmpose 1.3.2) holds a narrowed RTMPose-t with seeded weights in mmpose's model-zoo layout and,
for fixed boxes on two opencv-doc stills, mmpose's crops, the SimCC outputs its head decoded
(flip test averaged), and its final keypoints and scores.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from detectors.errors import DetectorConfigError, LibraryMissing
from detectors.registry import POSE_ESTIMATORS, build_pose_estimator
from detectors.rtmpose import RTMPoseEstimator
from detectors.topdown import TopdownSpec, crop_people, decode_simcc
from engines.config import read_config, to_plain
from engines.errors import CheckpointError
from engines.models import build
from stream.packet import Detections
from tests.footage import footage

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "mm" / "rtmpose"
CONFIG = FIXTURE / "rtmpose-tiny_coco-256x192.py"
CHECKPOINT = FIXTURE / "rtmpose-tiny_coco-256x192.pth"
STILLS = {"messi5": "messi5.jpg", "basketball1": "basketball1.png", "vtest_100": "vtest_100.png"}
#: Images kept in the fixture folder (a frame of vtest.avi), not read from opencv-doc.
IN_FIXTURE = {"vtest_100"}
SHIPPED = ROOT / "configs" / "pose" / "rtmpose"


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(FIXTURE / "expected.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def stills() -> dict[str, np.ndarray]:
    return {
        key: cv2.imread(str(FIXTURE / name if key in IN_FIXTURE else footage(name))) for key, name in STILLS.items()
    }


@pytest.fixture(scope="module")
def torch_estimator() -> RTMPoseEstimator:
    return RTMPoseEstimator(CONFIG, CHECKPOINT, backend="torch")


def check_against_mmpose(
    estimator: RTMPoseEstimator, stills, expected, key: str, *, simcc_atol: float, simcc_rtol: float = 0.0
) -> None:
    spec = estimator.spec
    crops, _, _ = crop_people(stills[key], expected[f"{key}/boxes"], spec)
    from detectors.topdown import normalise

    simcc_x, simcc_y = estimator.simcc(normalise(crops, spec))
    for got, want in ((simcc_x, expected[f"{key}/simcc_x"]), (simcc_y, expected[f"{key}/simcc_y"])):
        np.testing.assert_allclose(got, want, rtol=simcc_rtol, atol=simcc_atol)
    keypoints, scores = estimator.predict(stills[key], expected[f"{key}/boxes"])
    np.testing.assert_allclose(keypoints, expected[f"{key}/keypoints"], rtol=0, atol=1e-3)
    np.testing.assert_allclose(scores, expected[f"{key}/scores"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("key", sorted(STILLS))
def test_crops_equal_mmpose_pixel_for_pixel(stills, expected, key: str) -> None:
    spec = TopdownSpec.from_config(read_config(CONFIG))
    crops, _, _ = crop_people(stills[key], expected[f"{key}/boxes"], spec)
    assert crops.shape == expected[f"{key}/crops"].shape == (len(expected[f"{key}/boxes"]), 256, 192, 3)
    np.testing.assert_array_equal(crops, expected[f"{key}/crops"])


@pytest.mark.parametrize("key", sorted(STILLS))
def test_torch_model_matches_mmpose(torch_estimator, stills, expected, key: str) -> None:
    check_against_mmpose(torch_estimator, stills, expected, key, simcc_atol=1e-5)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_engines_match_mmpose_and_torch(backend: str, torch_estimator, stills, expected, tmp_path: Path) -> None:
    estimator = RTMPoseEstimator(
        CONFIG, CHECKPOINT, backend=backend, cache=False, engine_dir=tmp_path / "e", precision="fp32"
    )
    try:
        assert estimator._engine.manifest.validation["max_abs_diff"] <= 1e-4
        assert [t.name for t in estimator._engine.outputs] == ["simcc_x", "simcc_y"]
        for key in STILLS:
            # logits reach ~7 here: ONNX Runtime's fused fp32 kernels differ by up to ~3e-5 relative
            check_against_mmpose(estimator, stills, expected, key, simcc_atol=1e-4, simcc_rtol=1e-4)
    finally:
        estimator.close()


def test_all_people_of_all_frames_go_in_one_call(torch_estimator, stills, expected, monkeypatch) -> None:
    calls: list[int] = []
    simcc = torch_estimator.simcc
    monkeypatch.setattr(torch_estimator, "simcc", lambda x: calls.append(len(x)) or simcc(x))
    images = [stills["messi5"], stills["basketball1"], stills["messi5"]]
    dets = [
        Detections(expected["messi5/boxes"], np.ones(3), np.zeros(3), track_ids=np.arange(3)),
        Detections(expected["basketball1/boxes"], np.ones(3), np.zeros(3)),
        Detections.empty(),
    ]
    out = torch_estimator.estimate(images, dets)
    assert calls == [6]
    assert [len(d) for d in out] == [3, 3, 0] and out[2].keypoints.shape == (0, 17, 3)
    assert out[0].track_ids.tolist() == [0, 1, 2]
    for d, key in zip(out[:2], ["messi5", "basketball1"], strict=True):
        np.testing.assert_allclose(d.keypoints[..., :2], expected[f"{key}/keypoints"], atol=1e-3)
        np.testing.assert_allclose(d.keypoints[..., 2], expected[f"{key}/scores"], atol=1e-4)


def test_max_batch_splits_calls_with_the_same_result(stills, expected, monkeypatch) -> None:
    estimator = RTMPoseEstimator(CONFIG, CHECKPOINT, backend="torch", max_batch=2)
    keypoints, scores = estimator.predict(stills["basketball1"], expected["basketball1/boxes"])
    np.testing.assert_allclose(keypoints, expected["basketball1/keypoints"], atol=1e-3)
    np.testing.assert_allclose(scores, expected["basketball1/scores"], atol=1e-4)


def test_engine_is_cached_and_reused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ACTION_STREAM_CACHE", str(tmp_path))
    first = RTMPoseEstimator(CONFIG, CHECKPOINT, backend="onnxruntime")
    first.close()
    entries = list((tmp_path / "engines").iterdir())
    assert len(entries) == 1 and entries[0].name.startswith("rtmpose-onnxruntime-fp32-")
    monkeypatch.setattr(RTMPoseEstimator, "_build", lambda *a, **k: pytest.fail("rebuilt a cached engine"))
    again = build_pose_estimator("rtmpose", config=CONFIG, checkpoint=CHECKPOINT, backend="onnxruntime")
    assert isinstance(again, RTMPoseEstimator)
    again.close()


def test_decode_follows_mmpose_get_simcc_maximum() -> None:
    x = np.array([[[0.1, 0.9, 0.3], [-1.0, -2.0, -0.5]]], np.float32)  # (1, 2, 3)
    y = np.array([[[0.2, 0.5, 0.5, 0.1], [0.4, 0.3, 0.2, 0.1]]], np.float32)
    locs, vals = decode_simcc(x, y, 2.0)
    np.testing.assert_array_equal(locs[0, 0], [0.5, 0.5])  # first maximum on ties, / split ratio
    assert vals[0, 0] == pytest.approx(0.5)  # the smaller of the two maxima
    np.testing.assert_array_equal(locs[0, 1], [-0.5, -0.5])  # score <= 0: location -1
    assert vals[0, 1] == pytest.approx(-0.5)


@pytest.mark.parametrize(("variant", "params"), [("t", 3_337_007), ("s", 5_473_251), ("m", 13_587_611)])
def test_shipped_configs_build_with_mmpose_sizes(variant: str, params: int) -> None:
    cfg = read_config(SHIPPED / f"rtmpose-{variant}_8xb256-420e_coco-256x192.py")
    spec = TopdownSpec.from_config(cfg)
    assert spec == TopdownSpec()  # 192x256, padding 1.25, no UDP, ImageNet mean / std, BGR -> RGB, ratio 2
    model = build(to_plain(cfg.model))
    assert sum(p.numel() for p in model.parameters()) == params  # mmpose's model zoo: 3.34M / 5.47M / 13.59M
    keys = model.state_dict().keys()
    assert {"head.final_layer.weight", "head.mlp.0.g", "head.mlp.1.weight", "head.gau.uv.weight",
            "head.gau.res_scale.scale", "head.cls_x.weight", "head.cls_y.weight",
            "backbone.stem.0.conv.weight"} <= set(keys)  # fmt: skip
    with torch.no_grad():
        x, y = model.eval()(torch.zeros(1, 3, 256, 192))
    assert x.shape == (1, 17, 384) and y.shape == (1, 17, 512)


def test_missing_checkpoint_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"checkpoint .*nope\.pth: no such file"):
        RTMPoseEstimator(CONFIG, tmp_path / "nope.pth", backend="torch")


def test_checkpoint_of_another_model_names_the_keys() -> None:
    with pytest.raises(CheckpointError, match=r"does not fit config .*rtmpose-t_.*mis-shaped: backbone\."):
        RTMPoseEstimator(SHIPPED / "rtmpose-t_8xb256-420e_coco-256x192.py", CHECKPOINT, backend="torch")


def test_other_models_are_refused_with_the_alternative(tmp_path: Path) -> None:
    cfg = tmp_path / "hrnet.py"
    cfg.write_text("model = dict(type='TopdownPoseEstimator', backbone=dict(type='HRNet'), "
                   "head=dict(type='HeatmapHead', out_channels=17))\n")  # fmt: skip
    with pytest.raises(DetectorConfigError, match=r"not an RTMPose model .*'mmpose' pose estimator"):
        RTMPoseEstimator(cfg, CHECKPOINT, backend="torch")


@pytest.mark.parametrize(
    ("backend", "message"),
    [("tensorrt", "runs on a CUDA GPU; pass --device cuda"), ("nope", "unknown backend 'nope'; valid backends")],
)
def test_unsupported_backend_is_refused(backend: str, message: str) -> None:
    with pytest.raises((ValueError, KeyError), match=message):  # ConfigError / UnknownBackendError
        RTMPoseEstimator(CONFIG, CHECKPOINT, backend=backend, device="cpu")


def test_mmpose_estimator_without_mmpose_names_the_install_script(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mmpose", None)  # import mmpose.apis -> ImportError
    monkeypatch.setitem(sys.modules, "mmpose.apis", None)
    with pytest.raises(LibraryMissing, match=r"bash tools/install_mm\.sh"):
        build_pose_estimator("mmpose", config=CONFIG, checkpoint=CHECKPOINT)
    assert {"blazepose", "rtmpose", "mmpose"} <= set(POSE_ESTIMATORS)


@pytest.mark.mm
def test_live_against_mmpose_api(torch_estimator, stills, expected) -> None:
    """With the mm extra: mmpose's own API on the fixture checkpoint gives what we give."""
    from detectors.mmpose_api import MMPoseEstimator

    reference = MMPoseEstimator(CONFIG, CHECKPOINT)
    for key, image in stills.items():
        boxes = expected[f"{key}/boxes"]
        want_k, want_s = reference.predict(image, boxes)
        got_k, got_s = torch_estimator.predict(image, boxes)
        np.testing.assert_allclose(got_k, want_k, atol=1e-3)
        np.testing.assert_allclose(got_s, want_s, atol=1e-4)
