"""Write tests/fixtures/mm/rtmdet/: mmdet 3.3's own RTMDet outputs on a small seeded checkpoint.

Run with an interpreter that has mmdet (``bash tools/install_mm.sh`` makes /work/mmvenv)::

    PYTHONPATH=. /work/mmvenv/bin/python tools/make_mm_fixtures.py

It builds mmdet's RTMDet from configs/detection/rtmdet/rtmdet_tiny_8xb32-300e_coco.py with
``widen_factor`` 0.125 (channels a third of tiny's, so the checkpoint stays ~1 MB; every
other setting is tiny's), fills every parameter and batch-norm statistic with seeded random
values, saves it in the model-zoo layout (``{'meta': {...}, 'state_dict': {...}}``), and runs
``mmdet.apis.inference_detector`` on two stills with people and on frames 0 and 100 of
``vtest.avi`` (all from Debian's opencv-doc, saved here as PNG so that no decoder differs).
It records, per image, the network input (as the resized and padded uint8 image it was
normalised from), the head's raw outputs (per-level
class logits — all 80 classes on the stride-32 level, the first 8 on the others, to keep the
file small — and box distances, via hooks) and the final
boxes / scores / labels. ``test_cfg.score_thr`` is lowered to 0.05 (random weights score
low) so that there are boxes to compare. It also records the state-dict keys and shapes of
the real RTMDet-tiny config, so the tests check our module names against mmdet's.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/detection/rtmdet/rtmdet_tiny_8xb32-300e_coco.py"
OUT = ROOT / "tests/fixtures/mm/rtmdet"
DATA = Path("/usr/share/doc/opencv-doc/examples/data")
IMAGES = {"messi5": DATA / "messi5.jpg", "basketball1": DATA / "basketball1.png"}
#: Frames of vtest.avi (pedestrians, 768x576), by index.
FRAMES = {"vtest_0": 0, "vtest_100": 100}
WIDEN = 0.125
KEEP_CLASSES = 8
TEST_CFG = {"nms_pre": 1000, "min_bbox_size": 0, "score_thr": 0.05, "nms": {"type": "nms", "iou_threshold": 0.65},
            "max_per_img": 100}  # fmt: skip


def small_config(cfg):  # type: ignore[no-untyped-def]
    cfg = cfg.copy()
    width = [int(c * WIDEN) for c in (256, 512, 1024)]
    cfg.model.backbone.widen_factor = WIDEN
    cfg.model.neck.in_channels = width
    cfg.model.neck.out_channels = width[0]
    cfg.model.bbox_head.in_channels = width[0]
    cfg.model.bbox_head.feat_channels = width[0]
    cfg.model.test_cfg = TEST_CFG
    for part in ("backbone", "neck", "bbox_head"):  # plain BN: SyncBN needs a process group on CPU
        cfg.model[part].norm_cfg = {"type": "BN"}
    return cfg


def randomise(model: torch.nn.Module, seed: int = 0, logit_bias: Mapping[str, float] | None = None) -> None:
    """Seeded random parameters and batch-norm statistics; ``logit_bias`` maps a module name
    part (e.g. ``rtm_cls``) to the mean of its bias, so that random weights score low."""
    logit_bias = {"rtm_cls": -2.5} if logit_bias is None else logit_bias
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            part = next((k for k in logit_bias if k in name), None)
            if name.endswith("bn.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif part is not None and name.endswith("bias"):
                p.copy_(logit_bias[part] + 0.5 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / fan_in) ** 0.5)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=gen))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))


def _ops_note() -> str:
    import mmcv._ext as ext  # type: ignore[import-not-found]

    if "Stand-in" in (ext.__doc__ or ""):  # mmcv-lite plus tools' stand-in for the compiled ops
        return (
            "\nmmcv's compiled ops were not available (their build failed), so mmcv 2.1's Python sources "
            "ran with `mmcv._ext.nms` = `torchvision.ops.nms` (greedy, IoU > threshold, offset 0, as mmcv's).\n"
        )
    return ""


def read_images() -> dict[str, np.ndarray]:
    """The stills and the vtest.avi frames, BGR, keyed by fixture name."""
    images = {name: cv2.imread(str(path), cv2.IMREAD_COLOR) for name, path in IMAGES.items()}
    video = cv2.VideoCapture(str(DATA / "vtest.avi"))
    wanted = {index: name for name, index in FRAMES.items()}
    for index in range(max(wanted) + 1):  # decoded in order: no seeking
        ok, frame = video.read()
        if not ok:
            raise SystemExit(f"cannot read frame {index} of {DATA / 'vtest.avi'}")
        if index in wanted:
            images[wanted[index]] = frame
    video.release()
    return images


def main() -> int:
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    register_all_modules()
    OUT.mkdir(parents=True, exist_ok=True)
    full = Config.fromfile(str(CONFIG))
    full.model.backbone.norm_cfg = full.model.neck.norm_cfg = full.model.bbox_head.norm_cfg = {"type": "BN"}
    tiny = MODELS.build(full.model)
    keys = {k: list(v.shape) for k, v in tiny.state_dict().items() if not k.startswith("data_preprocessor")}
    (OUT / "rtmdet_tiny_keys.json").write_text(json.dumps(keys, indent=0) + "\n")

    cfg = small_config(Config.fromfile(str(CONFIG)))
    small_cfg_path = OUT / "rtmdet_small_random.py"
    cfg.dump(str(small_cfg_path))
    model = MODELS.build(cfg.model)
    randomise(model)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("data_preprocessor")}
    note = f"seeded random weights, RTMDet-tiny with widen_factor {WIDEN} (tools/make_mm_fixtures.py)"
    meta = {"dataset_meta": {"classes": list(full.test_dataloader.dataset.metainfo.classes)}, "note": note}
    ckpt = OUT / "rtmdet_small_random.pth"
    torch.save({"meta": meta, "state_dict": state}, ckpt)

    detector = init_detector(str(small_cfg_path), str(ckpt), device="cpu")
    captured: dict[str, object] = {}
    detector.backbone.register_forward_pre_hook(lambda m, args: captured.__setitem__("inputs", args[0].clone()))
    detector.bbox_head.register_forward_hook(lambda m, args, out: captured.__setitem__("head", out))
    arrays: dict[str, np.ndarray] = {}
    for name, image in read_images().items():
        cv2.imwrite(str(OUT / f"{name}.png"), image)
        image = cv2.imread(str(OUT / f"{name}.png"), cv2.IMREAD_COLOR)
        result = inference_detector(detector, image)
        cls_scores, bbox_preds = captured["head"]  # type: ignore[misc]
        inputs = captured["inputs"].numpy()[0].transpose(1, 2, 0)  # type: ignore[attr-defined]
        pre = detector.data_preprocessor
        pixels = inputs * pre.std.numpy().reshape(1, 1, 3) + pre.mean.numpy().reshape(1, 1, 3)
        padded = np.rint(pixels).clip(0, 255).astype(np.uint8)  # the network input as the uint8 image it came from
        if np.abs(pixels - padded).max() > 1e-3:
            raise SystemExit("the preprocessed input is not a normalised uint8 image")
        arrays[f"{name}/padded"] = padded
        for level, (c, b) in enumerate(zip(cls_scores, bbox_preds, strict=True)):
            # all classes on the coarsest level, the first KEEP_CLASSES elsewhere (keeps the npz small)
            keep = c.shape[1] if level == len(cls_scores) - 1 else KEEP_CLASSES
            arrays[f"{name}/cls_score_{level}"] = c.numpy()[:, :keep]
            arrays[f"{name}/bbox_pred_{level}"] = b.numpy()
        inst = result.pred_instances
        arrays[f"{name}/bboxes"] = inst.bboxes.numpy()
        arrays[f"{name}/scores"] = inst.scores.numpy()
        arrays[f"{name}/labels"] = inst.labels.numpy()
        arrays[f"{name}/scale_factor"] = np.asarray(result.metainfo["scale_factor"], np.float64)
        print(f"{name}: {image.shape[1]}x{image.shape[0]}, {len(inst)} boxes, "
              f"{int((inst.labels == 0).sum())} people, top score {float(inst.scores.max()):.3f}")  # fmt: skip
    np.savez_compressed(OUT / "mmdet_outputs.npz", **arrays)
    import mmcv
    import mmdet

    (OUT / "README.md").write_text(
        "# mmdet reference outputs for RTMDet\n\n"
        f"Produced by `PYTHONPATH=. python tools/make_mm_fixtures.py` with mmdet {mmdet.__version__}, "
        f"mmcv {mmcv.__version__}, torch {torch.__version__}: RTMDet-tiny's config with widen_factor {WIDEN} "
        "and seeded random weights (`rtmdet_small_random.pth`, model-zoo layout; its config "
        "`rtmdet_small_random.py`), "
        "`mmdet.apis.inference_detector` on `messi5.png` / `basketball1.png` (opencv-doc's stills) and "
        "`vtest_0.png` / `vtest_100.png` (frames 0 and 100 of opencv-doc's vtest.avi), all as PNG. "
        "`mmdet_outputs.npz` holds per image the network input (resized + padded uint8), the head's raw "
        "per-level outputs "
        "(class logits: all classes at stride 32, classes 0-7 at strides 8 and 16) and the "
        "final boxes / scores / labels; `rtmdet_tiny_keys.json` the state-dict keys and shapes of the real "
        "RTMDet-tiny config.\n" + _ops_note()
    )
    print(f"wrote {OUT} ({ckpt.stat().st_size / 1e6:.2f} MB checkpoint)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
