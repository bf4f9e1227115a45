"""mmdet / mmpose through their own API vs this project's compiled engines, in one run.

    bash tools/install_mm.sh && python benchmarks/people_mm.py [--frames 40] [--json results/people_mm.json]

On the first ``--frames`` frames of opencv-doc's vtest.avi (768x576 pedestrians) it times the
same model and the same checkpoint both ways, behind the same interfaces
(:class:`detectors.base.PersonDetector` / :class:`~detectors.base.PoseEstimator`):

* RTMDet-tiny and YOLOX-tiny (configs/detection): ``--detector mmdet`` (``inference_detector``,
  torch eager) vs ``--detector rtmdet`` / ``yolox`` (this project's engines, OpenVINO and ONNX
  Runtime);
* RTMPose-m (configs/pose/rtmpose) on the people the built-in HOG detector finds in each frame:
  ``--pose mmpose`` (``inference_topdown``) vs ``--pose rtmpose``.

No checkpoint can be downloaded here, so both models get seeded random weights saved in the
model-zoo layout (speed does not depend on the values; RTMDet's class scores are biased low so
that post-processing handles a realistic number of boxes). The table shows frames/s, per-frame
latency and the speed-up of each compiled engine over the framework path. Goal: >= 3x on CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import print_table, write_json
from benchmarks.people import VTEST, cpu_name, read_frames, timed
from detectors.registry import build_detector, build_pose_estimator

ROOT = Path(__file__).resolve().parents[1]
DET_CONFIGS = {
    "RTMDet-tiny": ("rtmdet", ROOT / "configs/detection/rtmdet/rtmdet_tiny_8xb32-300e_coco.py"),
    "YOLOX-tiny": ("yolox", ROOT / "configs/detection/yolox/yolox_tiny_8xb8-300e_coco.py"),
}
POSE_CONFIG = ROOT / "configs/pose/rtmpose/rtmpose-m_8xb256-420e_coco-256x192.py"
GOAL = 3.0


def random_checkpoint(config: Path, out: Path, registry: str) -> Path:
    """Seeded random weights for ``config``, saved as the model zoo saves them."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    init_default_scope(registry)
    if registry == "mmdet":
        from mmdet.registry import MODELS
    else:
        from mmpose.registry import MODELS
    cfg = Config.fromfile(str(config))
    for part in ("backbone", "neck", "bbox_head", "head"):  # SyncBN needs a process group
        if part in cfg.model and "norm_cfg" in cfg.model[part]:
            cfg.model[part].norm_cfg = {"type": "BN"}
    model = MODELS.build(cfg.model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / fan_in) ** 0.5)
            if ("rtm_cls" in name or "multi_level_conv_cls" in name or "conv_obj" in name) and name.endswith("bias"):
                p.fill_(-4.0)  # a few hundred candidate boxes per frame, as a trained model gives
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("data_preprocessor")}
    path = out / f"{config.stem}.pth"
    torch.save({"meta": {"note": "seeded random weights (benchmarks/people_mm.py)"}, "state_dict": state}, path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=VTEST, help="footage (default: opencv-doc's vtest.avi)")
    parser.add_argument("--frames", type=int, default=40, help="frames per run")
    parser.add_argument("--backends", nargs="+", default=["openvino", "onnxruntime"], help="compiled backends")
    parser.add_argument("--json", default="results/people_mm.json", help="write the results here")
    args = parser.parse_args()
    try:
        import mmdet  # noqa: F401
        import mmpose  # noqa: F401
    except ImportError as exc:
        print(f"error: {exc}: install the mm extra first (bash tools/install_mm.sh)", file=sys.stderr)
        return 2
    if not args.video.is_file():
        print(f"error: {args.video} is missing: apt-get install opencv-doc", file=sys.stderr)
        return 2
    frames = read_frames(args.video, args.frames)
    hog = build_detector("hog")
    boxes = hog.detect(frames)
    people = sum(len(b) for b in boxes)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for model_name, (engine_name, config) in DET_CONFIGS.items():
            ckpt = random_checkpoint(config, Path(tmp), "mmdet")
            det_kwargs = {"config": config, "checkpoint": ckpt, "score_thr": 0.3}
            detectors = {"mmdet API (torch eager)": build_detector("mmdet", **det_kwargs)}
            for backend in args.backends:
                detectors[f"{engine_name} engine ({backend})"] = build_detector(
                    engine_name, **det_kwargs, backend=backend, cache_dir=Path(tmp) / "engines"
                )
            for name, detector in detectors.items():
                step = lambda i, f, d=detector: d.detect([f])  # noqa: E731
                rows.append({"model": model_name, **timed(name, frames, step)})
        pose_ckpt = random_checkpoint(POSE_CONFIG, Path(tmp), "mmpose")
        pose_kwargs = {"config": POSE_CONFIG, "checkpoint": pose_ckpt}
        estimators = {"mmpose API (torch eager)": build_pose_estimator("mmpose", **pose_kwargs)}
        for backend in args.backends:
            estimators[f"rtmpose engine ({backend})"] = build_pose_estimator("rtmpose", **pose_kwargs, backend=backend)
        for name, estimator in estimators.items():
            step = lambda i, f, e=estimator: e.estimate([f], [boxes[i]])  # noqa: E731
            rows.append({"model": "RTMPose-m", **timed(name, frames, step)})
    models = [*DET_CONFIGS, "RTMPose-m"]
    for model in models:
        group = [r for r in rows if r["model"] == model]
        base = group[0]["fps"]
        for row in group:
            row["speedup"] = round(row["fps"] / base, 2)
    cpu = cpu_name()
    per_frame = people / len(frames)
    print(f"{args.video.name}: {len(frames)} frames 768x576, {per_frame:.1f} HOG people per frame; CPU: {cpu}")
    print_table(rows, ["model", "run", "fps", "cpu_ms", "p50_ms", "p95_ms", "speedup"])
    for model in models:
        best = max(r["speedup"] for r in rows if r["model"] == model)
        verdict = "met" if best >= GOAL else "not met"
        print(f"goal: {model} compiled >= {GOAL:g}x the framework path: {verdict} ({best}x)")
    write_json(args.json, {"cpu": cpu, "load_average": round(os.getloadavg()[0], 2), "rows": rows, "goal": GOAL})
    return 0


if __name__ == "__main__":
    sys.exit(main())
