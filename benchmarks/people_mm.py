"""mmdet / mmpose through their own API vs this project's compiled engines, in one run.

    bash tools/install_mm.sh && python benchmarks/people_mm.py [--frames 30] [--json results/people_mm.json]

On the first ``--frames`` frames of opencv-doc's vtest.avi (768x576 pedestrians) it times the
same model and the same checkpoint both ways, behind the same interfaces
(:class:`detectors.base.PersonDetector` / :class:`~detectors.base.PoseEstimator`):

* RTMDet-tiny and YOLOX-tiny (configs/detection): ``--detector mmdet`` (``inference_detector``,
  torch eager) vs ``--detector rtmdet`` / ``yolox`` (this project's engines);
* RTMPose-m (configs/pose/rtmpose) on the people the built-in HOG detector finds in each frame:
  ``--pose mmpose`` (``inference_topdown``, all people of a frame in one batch) vs
  ``--pose rtmpose`` (one engine call per frame).

Engines: OpenVINO with ``precision='auto'`` (the default: bf16 where this CPU computes it
natively and the check of :mod:`detectors.precision` passes, else fp32), OpenVINO fp32,
OpenVINO bf16 forced (unchecked: what a checkpoint that passes the check gets), ONNX Runtime fp32.

Fairness: same frames, same config (input size), same checkpoint, the same ``--threads`` for
torch and the engines; warm-up excluded for both (one frame per distinct people count, so
that OpenVINO's static compile of each batch size is not timed, nor torch's first call);
the runs of one model are interleaved frame by frame (in rotating order), so that other load
on the machine falls on all of them alike. ``cpu_ms`` is the process's CPU time per frame
(all threads). A second table splits the compiled path's time per frame into pre-processing,
engine and post-processing.

No checkpoint can be downloaded here, so both models get seeded random weights saved in the
model-zoo layout (speed does not depend on the values; class scores are biased low so that
post-processing handles a realistic number of boxes). Goal: the compiled path >= 3x the
framework path on CPU.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import print_table, write_json
from benchmarks.people import VTEST, cpu_name, read_frames
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


Step = Callable[[int, np.ndarray], Any]


def interleaved(runs: Mapping[str, Step], frames: Sequence[np.ndarray], warmup: Sequence[int]) -> list[dict[str, Any]]:
    """Time every run on every frame, the runs of a frame one after another in rotating order.

    Args:
        runs: Name -> ``step(frame_index, frame)``.
        frames: The frames.
        warmup: Frame indices each run processes first, untimed.

    Returns:
        One row per run: ``fps`` (frames over the sum of its steps' wall time), ``cpu_ms``
        (process CPU time per frame), ``p50_ms`` / ``p95_ms`` (per-frame latency).
    """
    names = list(runs)
    for name in names:
        for index in warmup:
            runs[name](index, frames[index])
    wall = {n: [] for n in names}  # type: dict[str, list[float]]
    cpu = dict.fromkeys(names, 0.0)
    for index, frame in enumerate(frames):
        for k in range(len(names)):
            name = names[(index + k) % len(names)]
            t, c = time.perf_counter(), time.process_time()
            runs[name](index, frame)
            wall[name].append((time.perf_counter() - t) * 1e3)
            cpu[name] += time.process_time() - c
    return [
        {
            "run": name,
            "frames": len(frames),
            "fps": round(1e3 * len(frames) / sum(wall[name]), 2),
            "cpu_ms": round(cpu[name] / len(frames) * 1e3, 1),
            "p50_ms": round(float(np.percentile(wall[name], 50)), 1),
            "p95_ms": round(float(np.percentile(wall[name], 95)), 1),
        }
        for name in names
    ]


def detector_stages(detector: Any, frames: Sequence[np.ndarray]) -> dict[str, float]:
    """Median ms per frame of an engine detector's pre-processing, engine and post-processing."""
    from detectors.mmdet_common import letterbox, normalise

    pre, run, post = [], [], []
    for frame in frames:
        t0 = time.perf_counter()
        padded, factor = letterbox(frame, detector.size, detector.pad_val)
        feeds = {"inputs": normalise([padded], detector.mean, detector.std, detector.bgr_to_rgb)}
        t1 = time.perf_counter()
        out = detector.engine.run(feeds)
        t2 = time.perf_counter()
        cfg = {**detector.test_cfg, "score_thr": max(float(detector.test_cfg.get("score_thr", 0)), detector.score_thr)}
        detector.postprocess_one({k: v[0] for k, v in out.items()}, factor, cfg)
        t3 = time.perf_counter()
        pre.append(t1 - t0)
        run.append(t2 - t1)
        post.append(t3 - t2)
    return {k: round(float(np.median(v)) * 1e3, 2) for k, v in (("pre_ms", pre), ("engine_ms", run), ("post_ms", post))}


def pose_stages(estimator: Any, frames: Sequence[np.ndarray], boxes: Sequence[Any]) -> dict[str, float]:
    """Median ms per frame of RTMPose's crops + normalisation, engine and SimCC decoding."""
    from detectors.topdown import crop_people, decode_simcc, normalise, to_image

    pre, run, post = [], [], []
    for frame, dets in zip(frames, boxes, strict=True):
        if not len(dets):
            continue
        t0 = time.perf_counter()
        crops, center, scale = crop_people(frame, dets.xyxy, estimator.spec)
        inputs = normalise(crops, estimator.spec)
        t1 = time.perf_counter()
        sx, sy = estimator.simcc(inputs)
        t2 = time.perf_counter()
        keypoints, _ = decode_simcc(sx, sy, estimator.spec.simcc_split_ratio)
        to_image(keypoints, center, scale, estimator.spec.input_size)
        t3 = time.perf_counter()
        pre.append(t1 - t0)
        run.append(t2 - t1)
        post.append(t3 - t2)
    return {k: round(float(np.median(v)) * 1e3, 2) for k, v in (("pre_ms", pre), ("engine_ms", run), ("post_ms", post))}


#: Compiled runs (``--runs``): name -> (backend, precision). ``bf16`` is forced, unchecked.
ENGINE_RUNS = {
    "openvino-auto": ("openvino", "auto"),
    "openvino-fp32": ("openvino", "fp32"),
    "openvino-bf16": ("openvino", "bf16"),
    "onnxruntime-fp32": ("onnxruntime", "fp32"),
}
FORCED = " (forced, unchecked)"


def engine_variants(compiled: Any, attr: str, engine_name: str, runs: Sequence[str], threads: int) -> dict[str, Any]:
    """``compiled`` (built with ``precision='auto'`` on OpenVINO) as each of ``runs``.

    The variants open the same engine folder again with another backend or precision (what
    ``backend=`` / ``precision=`` build, without writing the 50-100 MB of files again).
    """
    from engines.engine import load_engine

    folder = getattr(compiled, attr).engine_dir
    out: dict[str, Any] = {}
    for label in runs:
        backend, precision = ENGINE_RUNS[label]
        name = f"{engine_name} {label}{FORCED if precision == 'bf16' else ''}"
        if precision == "auto":
            out[name] = compiled
            continue
        twin = copy.copy(compiled)
        setattr(twin, attr, load_engine(folder, backend, precision=precision, num_threads=threads))
        twin.precision = precision
        out[name] = twin
    return out


def auto_check(engine: Any) -> dict[str, Any] | None:
    """The ``precision='auto'`` check recorded in an engine's manifest."""
    check = engine.manifest.validation.get("auto_precision")
    return dict(check) if check else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=VTEST, help="footage (default: opencv-doc's vtest.avi)")
    parser.add_argument("--frames", type=int, default=30, help="frames per run")
    cores = len(os.sched_getaffinity(0))
    parser.add_argument("--threads", type=int, default=cores, help="threads of torch and of the engines (all cores)")
    parser.add_argument("--runs", nargs="+", default=list(ENGINE_RUNS), choices=list(ENGINE_RUNS), help="engines")
    parser.add_argument("--json", default="results/people_mm.json", help="write the results here")
    args = parser.parse_args()
    try:
        import mmdet  # noqa: F401
        import mmpose  # noqa: F401
        import torch
    except ImportError as exc:
        print(f"error: {exc}: install the mm extra first (bash tools/install_mm.sh)", file=sys.stderr)
        return 2
    if not args.video.is_file():
        print(f"error: {args.video} is missing: apt-get install opencv-doc", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    frames = read_frames(args.video, args.frames)
    hog = build_detector("hog")
    boxes = hog.detect(frames)
    people = sum(len(b) for b in boxes)
    first_of_count = sorted({len(b): i for i, b in reversed(list(enumerate(boxes)))}.values())
    rows: list[dict[str, Any]] = []
    stages: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}
    jobs: list[tuple[str, str, Path, str]] = [(m, e, c, "mmdet") for m, (e, c) in DET_CONFIGS.items()]
    jobs.append(("RTMPose-m", "rtmpose", POSE_CONFIG, "mmpose"))
    for model_name, engine_name, config, scope in jobs:
        with tempfile.TemporaryDirectory() as tmp:  # one model's files at a time (disk)
            ckpt = random_checkpoint(config, Path(tmp), scope)
            if scope == "mmdet":
                kwargs: dict[str, Any] = {"config": config, "checkpoint": ckpt, "score_thr": 0.3}
                framework: Any = build_detector("mmdet", **kwargs)
                compiled: Any = build_detector(
                    engine_name, **kwargs, backend="openvino", precision="auto", num_threads=args.threads,
                    cache_dir=Path(tmp) / "engines",
                )  # fmt: skip
                attr, warmup = "engine", [0]
            else:
                kwargs = {"config": config, "checkpoint": ckpt}
                framework = build_pose_estimator("mmpose", **kwargs)
                compiled = build_pose_estimator(
                    "rtmpose", **kwargs, backend="openvino", precision="auto", num_threads=args.threads,
                    cache=False, engine_dir=Path(tmp) / "engine",
                )  # fmt: skip
                attr, warmup = "_engine", first_of_count
            checks[model_name] = auto_check(getattr(compiled, attr))
            runners = {f"{scope} API (torch eager)": framework}
            runners.update(engine_variants(compiled, attr, engine_name, args.runs, args.threads))
            if scope == "mmdet":
                steps = {name: (lambda i, f, d=d: d.detect([f])) for name, d in runners.items()}
            else:
                steps = {name: (lambda i, f, e=e: e.estimate([f], [boxes[i]])) for name, e in runners.items()}
            for row in interleaved(steps, frames, warmup):
                runner = runners[row["run"]]
                row["precision"] = getattr(runner, "precision", "fp32")
                rows.append({"model": model_name, **row})
                if runner is not framework:
                    split = detector_stages(runner, frames) if scope == "mmdet" else pose_stages(runner, frames, boxes)
                    stages.append({"model": model_name, "run": row["run"], **split})
            for runner in {id(r): r for r in [*runners.values(), compiled]}.values():
                runner.close()
    models = [*DET_CONFIGS, "RTMPose-m"]
    for model in models:
        group = [r for r in rows if r["model"] == model]
        base = group[0]["fps"]
        for row in group:
            row["speedup"] = round(row["fps"] / base, 2)
    cpu = cpu_name()
    load_end = os.getloadavg()
    per_frame = people / len(frames)
    print(
        f"{args.video.name}: {len(frames)} frames 768x576, {per_frame:.1f} HOG people per frame; CPU: {cpu}; "
        f"{args.threads} threads; load average {load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end"
    )
    print_table(rows, ["model", "run", "precision", "fps", "cpu_ms", "p50_ms", "p95_ms", "speedup"])
    print("\ncompiled path per frame (median ms):")
    print_table(stages, ["model", "run", "pre_ms", "engine_ms", "post_ms"])
    print()
    verdicts = {}
    for model in models:
        group = [r for r in rows if r["model"] == model]
        checked = max((r["speedup"] for r in group[1:] if FORCED not in r["run"]), default=0.0)
        forced = max((r["speedup"] for r in group[1:] if FORCED in r["run"]), default=0.0)
        check = checks.get(model) or {}
        verdicts[model] = {"checked": checked, "bf16_forced": forced, "auto_check": check}
        print(
            f"goal: {model} compiled >= {GOAL:g}x the framework path: {'met' if checked >= GOAL else 'not met'} "
            f"({checked}x with checked precision; {forced}x with bf16 forced; auto check: "
            f"{'kept ' + str(check.get('tried')) if check.get('kept') else check.get('reason', 'none')})"
        )
    write_json(
        args.json,
        {
            "cpu": cpu, "threads": args.threads, "frames": len(frames), "people_per_frame": round(per_frame, 2),
            "load_average_start": round(load_start[0], 2), "load_average_end": round(load_end[0], 2),
            "rows": rows, "stages": stages, "verdicts": verdicts, "goal": GOAL,
        },
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
