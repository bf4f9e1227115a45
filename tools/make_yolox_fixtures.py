"""Write tests/fixtures/mm/yolox/: mmdet 3.3's own YOLOX outputs on a small seeded checkpoint.

Run with an interpreter that has mmdet (``bash tools/install_mm.sh`` makes /work/mmvenv)::

    PYTHONPATH=. /work/mmvenv/bin/python tools/make_yolox_fixtures.py

It builds mmdet's YOLOX from configs/detection/yolox/yolox_tiny_8xb8-300e_coco.py with
``widen_factor`` 0.1 (channels 0.27 of tiny's; every other setting is tiny's), fills
every parameter and batch-norm statistic with seeded random values (as
tools/make_mm_fixtures.py does for RTMDet, then the batch-norm statistics measured on the two
frames so that the random features vary across the image), saves it in the model-zoo layout and runs
``mmdet.apis.inference_detector`` on frames 0 and 100 of opencv-doc's ``vtest.avi`` (a
pedestrian street, saved here as PNG). It records, per image, the network input (the resized
and padded uint8 image), the head's raw outputs (per level: class logits — all 80 classes on
the stride-32 level, the first 8 elsewhere — box deltas and objectness logits) and the final
boxes / scores / labels. ``test_cfg.score_thr`` is raised to 0.1 so that the fixture stays
small. It also records the state-dict keys and shapes of the real YOLOX-tiny config.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from tools.make_mm_fixtures import _ops_note, randomise

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/detection/yolox/yolox_tiny_8xb8-300e_coco.py"
OUT = ROOT / "tests/fixtures/mm/yolox"
VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
FRAMES = {"vtest_0": 0, "vtest_100": 100}
WIDEN = 0.1
KEEP_CLASSES = 8
TEST_CFG = {"score_thr": 0.1, "nms": {"type": "nms", "iou_threshold": 0.65}}
LOGIT_BIAS = {"multi_level_conv_cls": -3.0, "multi_level_conv_obj": -4.0, "multi_level_conv_reg": 1.0}


def small_config(cfg):  # type: ignore[no-untyped-def]
    cfg = cfg.copy()
    width = [int(c * WIDEN) for c in (256, 512, 1024)]
    cfg.model.backbone.widen_factor = WIDEN
    cfg.model.neck.in_channels = width
    cfg.model.neck.out_channels = width[0]
    cfg.model.bbox_head.in_channels = width[0]
    cfg.model.bbox_head.feat_channels = width[0]
    cfg.model.test_cfg = TEST_CFG
    return cfg


def frames() -> dict[str, np.ndarray]:
    cap = cv2.VideoCapture(str(VIDEO))
    out, idx = {}, 0
    wanted = {i: n for n, i in FRAMES.items()}
    while len(out) < len(FRAMES):
        ok, frame = cap.read()
        if not ok:
            raise SystemExit(f"{VIDEO}: ended before frame {max(FRAMES.values())}")
        if idx in wanted:
            out[wanted[idx]] = frame
        idx += 1
    cap.release()
    return out


def calibrate(model: torch.nn.Module, images: list[np.ndarray]) -> None:
    """Batch-norm statistics of the images themselves (one pass in train mode), so that the
    random network's features vary across the image instead of being swamped by its biases."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the pass
    size = 416
    batch = []
    for image in images:
        scale = size / max(image.shape[:2])
        resized = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        padded = np.full((size, size, 3), 114, np.uint8)
        padded[: resized.shape[0], : resized.shape[1]] = resized[:size, :size]
        batch.append(padded.transpose(2, 0, 1))
    x = torch.from_numpy(np.stack(batch).astype(np.float32))
    model.train()
    with torch.no_grad():
        model.bbox_head(model.neck(model.backbone(x)))
    model.eval()
    for bn in norms:
        bn.momentum = 0.03


def main() -> int:
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    register_all_modules()
    OUT.mkdir(parents=True, exist_ok=True)
    full = Config.fromfile(str(CONFIG))
    tiny = MODELS.build(full.model)
    keys = {k: list(v.shape) for k, v in tiny.state_dict().items() if not k.startswith("data_preprocessor")}
    (OUT / "yolox_tiny_keys.json").write_text(json.dumps(keys, indent=0) + "\n")

    cfg = small_config(Config.fromfile(str(CONFIG)))
    small_cfg_path = OUT / "yolox_small_random.py"
    cfg.dump(str(small_cfg_path))
    model = MODELS.build(cfg.model)
    randomise(model, logit_bias=LOGIT_BIAS)
    calibrate(model, [f for _, f in sorted(frames().items())])
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("data_preprocessor")}
    note = f"seeded random weights, YOLOX-tiny with widen_factor {WIDEN} (tools/make_yolox_fixtures.py)"
    meta = {"dataset_meta": {"classes": list(full.test_dataloader.dataset.metainfo.classes)}, "note": note}
    ckpt = OUT / "yolox_small_random.pth"
    torch.save({"meta": meta, "state_dict": state}, ckpt)

    detector = init_detector(str(small_cfg_path), str(ckpt), device="cpu")
    captured: dict[str, object] = {}
    detector.backbone.register_forward_pre_hook(lambda m, args: captured.__setitem__("inputs", args[0].clone()))
    detector.bbox_head.register_forward_hook(lambda m, args, out: captured.__setitem__("head", out))
    arrays: dict[str, np.ndarray] = {}
    for name, frame in frames().items():
        cv2.imwrite(str(OUT / f"{name}.png"), frame)
        image = cv2.imread(str(OUT / f"{name}.png"), cv2.IMREAD_COLOR)
        result = inference_detector(detector, image)
        cls_scores, bbox_preds, objectnesses = captured["head"]  # type: ignore[misc]
        pixels = captured["inputs"].numpy()[0].transpose(1, 2, 0)  # type: ignore[attr-defined]
        padded = np.rint(pixels).clip(0, 255).astype(np.uint8)  # no mean / std: the input is the image itself
        if np.abs(pixels - padded).max() > 0:
            raise SystemExit("the preprocessed input is not the uint8 image")
        arrays[f"{name}/padded"] = padded
        for level, (c, b, o) in enumerate(zip(cls_scores, bbox_preds, objectnesses, strict=True)):
            keep = c.shape[1] if level == len(cls_scores) - 1 else KEEP_CLASSES
            arrays[f"{name}/cls_score_{level}"] = c.numpy()[:, :keep]
            arrays[f"{name}/bbox_pred_{level}"] = b.numpy()
            arrays[f"{name}/objectness_{level}"] = o.numpy()
        inst = result.pred_instances
        arrays[f"{name}/bboxes"] = inst.bboxes.numpy()
        arrays[f"{name}/scores"] = inst.scores.numpy()
        arrays[f"{name}/labels"] = inst.labels.numpy()
        arrays[f"{name}/scale_factor"] = np.asarray(result.metainfo["scale_factor"], np.float64)
        print(f"{name}: {image.shape[1]}x{image.shape[0]} -> {padded.shape[1]}x{padded.shape[0]}, {len(inst)} boxes, "
              f"{int((inst.labels == 0).sum())} people, top score {float(inst.scores.max()):.3f}")  # fmt: skip
    np.savez_compressed(OUT / "mmdet_outputs.npz", **arrays)
    import mmcv
    import mmdet

    (OUT / "README.md").write_text(
        "# mmdet reference outputs for YOLOX\n\n"
        f"Produced by `PYTHONPATH=. python tools/make_yolox_fixtures.py` with mmdet {mmdet.__version__}, "
        f"mmcv {mmcv.__version__}, torch {torch.__version__}: YOLOX-tiny's config "
        f"(`configs/detection/yolox/yolox_tiny_8xb8-300e_coco.py`) with widen_factor {WIDEN}, "
        f"test_cfg.score_thr {TEST_CFG['score_thr']} and seeded random weights (`yolox_small_random.pth`, model-zoo "
        "layout; its config `yolox_small_random.py`; batch-norm statistics measured on the two frames), "
        "`mmdet.apis.inference_detector` on frames 0 and 100 of opencv-doc's `vtest.avi` "
        "(`vtest_0.png`, `vtest_100.png`, 768x576, resized to 416x312 and padded to 416x416). "
        "`mmdet_outputs.npz` holds per image the network input (resized + padded uint8), the head's raw per-level "
        "outputs (class logits: all classes at stride 32, classes 0-7 at strides 8 and 16; box deltas; objectness "
        "logits) and the final boxes / scores / labels; `yolox_tiny_keys.json` the state-dict keys and shapes of "
        "the real YOLOX-tiny config.\n" + _ops_note()
    )
    print(f"wrote {OUT} ({ckpt.stat().st_size / 1e6:.2f} MB checkpoint)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
