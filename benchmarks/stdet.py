"""Spatio-temporal action detection (AVA) per person: a demo-style sequential loop vs StdetStage, one run.

    python benchmarks/stdet.py [--people 1 5 20] [--frames 120] [--live-seconds 20]
                               [--backend auto] [--json results/stdet.json]
    python benchmarks/stdet.py --people 20 --live-seconds 600 --only-live   # the issue's 10-minute memory run

Goal on this CPU: ``engine (file mode)`` at ≥ 3× the frames/s of ``sequential torch eager``
at every people count; live, memory flat and capture-to-label latency p95 bounded when the
model is slower than the camera (keyframes are dropped and counted instead of queued).

Input: synthetic 640×480 frames at 25 fps whose ``Detections`` already carry ``N`` tracked
people (``benchmarks/people_synthetic.py``), so only the action part is measured (detection
and tracking: ``benchmarks/people.py``). Model: the shipped SlowOnly-R50 AVA config
(``configs/detection/slowonly/...4x16x1...ava21-rgb.py``: 4 frames 16 apart, short side 256,
81 classes) at model-zoo size with seeded random weights saved in model-zoo layout to a temp
dir; engines are cached in that temp dir too. Every row resizes each frame to the short side
256 (640×480 → 341×256) once, on arrival, and scores every person of each keyframe (one every
``--predict-stepsize`` frames) on the clip centred on it, as ``SampleAVAFrames`` samples it.

Rows, for each people count ``N``:

* ``sequential torch eager``: what MMAction2's ``demo_spatiotemporal_det.py`` loop does per
  keyframe, one keyframe at a time in one thread: gather the clip, normalise, run the model,
  here this project's torch FastRCNN (MMAction2's own AVA model needs mmdet and mmcv's compiled
  RoIAlign, which are not installed: no MMAction2 row here);
* ``engine (file mode)``: ``StdetStage(lambda: open_stdet_detector(...))`` (the compiled ONNX
  Runtime / OpenVINO engine) in a :class:`~stream.runner.Pipeline`, fed as fast as it takes
  frames (lossless);
* ``engine (live, 25 fps)``: the same with a source paced at 25 fps and the stage in live
  mode, for ``--live-seconds``: sustained frames/s, person-labels/s, capture-to-label latency
  p50 / p95 (the stage's metrics: capture of the frame that completed the clip → scores), keyframes
  dropped because the next one of the camera came first, frames dropped at the stage's
  input, and the process's RSS after one second and at the end (the JSON keeps the samples).

How to read a row: ``fps`` is frames through the action part per second (the camera gives 25);
``labels/s`` person-labels per second; ``x_seq`` the row's fps over the sequential loop's at the
same ``N`` (the goal column; not given for live rows, which drop work the other rows do).
Before timing the script checks, on one clip with 5 people, that
the engine's scores equal the torch model's, and after the file-mode rows that both made the
same number of person-labels; it stops with an error otherwise. The machine may be shared:
compare rows of one run; ``cpu_ms`` per frame (all threads) moves less with other load.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import cpu_name, print_table, write_json
from benchmarks.people_synthetic import (
    SIZE,
    BenchmarkError,
    PacedPeople,
    PacketSource,
    packet,
    run_stage,
)
from engines.checkpoint import save_checkpoint
from engines.stdet import StdetSpec, build_stdet_model, load_stdet_config
from pipelines.stdet import StdetParams, StdetStage
from pipelines.stdet_model import StdetModel, open_stdet_detector
from stream.packet import FramePacket

ROOT = Path(__file__).resolve().parents[1]
SLOWONLY = ROOT / "configs/detection/slowonly/slowonly_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb.py"
GOAL = 3.0


def random_model(tmp: Path) -> tuple[torch.nn.Module, StdetSpec, Path]:
    """SlowOnly-R50 AVA at model-zoo size, seeded random weights, saved in model-zoo layout."""
    model_cfg, cfg = load_stdet_config(SLOWONLY)
    torch.manual_seed(0)
    net = build_stdet_model(model_cfg)
    with torch.no_grad():  # the classifier away from its initialisation, so that the scores differ per class
        for p in net.roi_head.bbox_head.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    checkpoint = save_checkpoint(net, tmp / "slowonly_ava_random.pth")
    return net.eval(), StdetSpec.from_config(cfg, net), checkpoint


class Keyframes:
    """StdetStage's schedule (frames resized on arrival, a keyframe every step, the clip centred on it)."""

    def __init__(self, spec: StdetSpec, stepsize: int) -> None:
        self.spec, self.stepsize = spec, stepsize
        self.before = (spec.clip_len // 2) * spec.frame_interval
        self.after = ((spec.clip_len + 1) // 2 - 1) * spec.frame_interval
        self.span = self.before + self.after + 1
        self.frames: collections.deque[tuple[np.ndarray, FramePacket, float]] = collections.deque(maxlen=self.span)
        self.count = 0

    def feed(self, frame: FramePacket) -> tuple[np.ndarray, np.ndarray] | None:
        """The clip ``(T, h, w, 3)`` BGR and the keyframe's boxes in its pixels, when a keyframe is due."""
        resized = self.spec.resize(frame.image)
        self.frames.append((resized, frame, self.spec.short_side / min(frame.height, frame.width)))
        self.count += 1
        if len(self.frames) < self.span or (self.count - 1 - self.after - self.before) % self.stepsize:
            return None
        _, key, scale = self.frames[self.before]
        if key.detections is None or not len(key.detections):
            return None
        clip = np.stack([self.frames[i][0] for i in range(0, self.span, self.spec.frame_interval)])
        return clip, (key.detections.xyxy * scale).astype(np.float32)


def torch_scores(net: torch.nn.Module, spec: StdetSpec, clip: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """What the demo does per keyframe: BGR → RGB, normalise, ``(1, 3, T, H, W)``, the model on every box."""
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    imgs = (clip[..., ::-1].astype(np.float32) - mean) / std
    imgs = np.ascontiguousarray(imgs.transpose(3, 0, 1, 2)[None])
    rois = np.concatenate([np.zeros((len(boxes), 1), np.float32), boxes], 1)
    with torch.inference_mode():
        scores = net(torch.from_numpy(imgs), torch.from_numpy(rois)).numpy().copy()
    if spec.background_class:
        scores[:, 0] = 0.0  # never reported (as StdetModel does)
    return scores


def sequential_row(frames: list[FramePacket], net: torch.nn.Module, spec: StdetSpec, stepsize: int) -> dict[str, Any]:
    keyframes = Keyframes(spec, stepsize)
    labels = 0
    warm = Keyframes(spec, 1)
    for frame in frames[: warm.span]:
        due = warm.feed(frame)
    assert due is not None
    torch_scores(net, spec, *due)  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    for frame in frames:
        due = keyframes.feed(frame)
        if due is not None:
            labels += len(torch_scores(net, spec, *due))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "row": "sequential torch eager", "frames": len(frames), "fps": len(frames) / elapsed, "labels": labels,
        "labels_per_s": labels / elapsed, "cpu_ms": cpu / len(frames) * 1e3,
    }  # fmt: skip


def engine_file_row(frames: list[FramePacket], factory: Callable[[], StdetModel], params: StdetParams) -> dict:
    stage = StdetStage(factory, params)
    run = run_stage(stage, PacketSource(frames))
    if run.sink.frames != len(frames):
        raise BenchmarkError(f"engine (file mode): {run.sink.frames} of {len(frames)} frames came out (lossless)")
    metrics = run.report.stages[stage.name]
    return {
        "row": "engine (file mode)", "frames": run.sink.frames, "fps": run.sink.fps, "labels": run.sink.labels,
        "labels_per_s": run.sink.labels_per_s, "cpu_ms": run.cpu_ms_per_frame, "keyframes": metrics["keyframes"],
        "infer_p50_ms": metrics["infer_p50_ms"],
    }  # fmt: skip


def live_row(
    count: int, seconds: float, factory: Callable[[], StdetModel], params: StdetParams, interval: float
) -> dict:
    stage = StdetStage(factory, replace(params, live=True))
    run = run_stage(stage, PacedPeople(count, seconds, frame_image()), rss_interval_s=interval)
    metrics = run.report.stages[stage.name]
    return {
        "row": "engine (live, 25 fps)", "frames": run.sink.frames, "fps": run.sink.fps, "labels": run.sink.labels,
        "labels_per_s": run.sink.labels_per_s, "cpu_ms": run.cpu_ms_per_frame, "keyframes": metrics["keyframes"],
        "infer_p50_ms": metrics["infer_p50_ms"], "latency_p50_ms": metrics["latency_p50_ms"],
        "latency_p95_ms": metrics["latency_p95_ms"], "dropped_keyframes": metrics["dropped_keyframes"],
        "dropped_frames": metrics.get("dropped", 0), "rss_start_mb": run.rss_mb[0][1],
        "rss_end_mb": run.rss_mb[-1][1], "rss_max_mb": max(m for _, m in run.rss_mb), "rss_samples": run.rss_mb,
    }  # fmt: skip


def frame_image() -> np.ndarray:
    """A textured 640×480 BGR frame (the content does not change the model's cost)."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)


def check_scores(net: torch.nn.Module, spec: StdetSpec, factory: Callable[[], StdetModel]) -> float:
    """The engine's scores equal the torch model's on one clip with 5 people; the largest difference."""
    image = frame_image()
    keyframes = Keyframes(spec, 1)
    due = None
    for i in range(keyframes.span):
        due = keyframes.feed(packet(i, 5, image))
    assert due is not None
    clip, boxes = due
    want = torch_scores(net, spec, clip, boxes)
    engine = factory()
    try:
        got = engine.scores(list(clip), boxes)
    finally:
        engine.close()
    diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
    if not diff <= 1e-4:
        raise BenchmarkError(f"the engine's scores differ from torch's by {diff:.2e} (> 1e-4) on one clip")
    actions = want[:, 1:]
    if float(np.ptp(actions, axis=1).min()) < 1e-3 or float(actions.max()) > 0.999 or float(actions.min()) < 1e-3:
        raise BenchmarkError("the random model's scores are nearly constant or saturated: the check would prove little")
    return diff


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, nargs="+", default=[1, 5, 20], help="people per frame")
    parser.add_argument("--frames", type=int, default=120, help="frames per file-mode row (25 fps stream time)")
    parser.add_argument("--live-seconds", type=float, default=20, help="seconds of the live row (600: 10 minutes)")
    parser.add_argument("--backend", default="auto", help="engine backend: auto, onnxruntime or openvino")
    parser.add_argument("--predict-stepsize", type=int, default=8, help="frames between keyframes")
    parser.add_argument("--only-live", action="store_true", help="the live row alone (long memory runs)")
    parser.add_argument("--json", default="results/stdet.json", help="write the results here ('' for none)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    params = StdetParams(predict_stepsize=args.predict_stepsize, threshold=0.0)
    cpu = cpu_name()
    rows: list[dict[str, Any]] = []
    diff = None
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ACTION_STREAM_CACHE"] = tmp  # a random checkpoint's engine is of no use after the run
        net, spec, checkpoint = random_model(Path(tmp))

        def factory() -> StdetModel:
            return open_stdet_detector(SLOWONLY, str(checkpoint), backend=args.backend)

        if args.only_live:
            factory().close()  # build the engine before the camera starts
        else:
            diff = check_scores(net, spec, factory)
        image = frame_image()
        for count in args.people:
            found: list[dict[str, Any]] = []
            if not args.only_live:
                frames = [packet(i, count, image) for i in range(args.frames)]
                found.append(sequential_row(frames, net, spec, args.predict_stepsize))
                found.append(engine_file_row(frames, factory, params))
                labels = {r["row"]: r["labels"] for r in found}
                if len(set(labels.values())) != 1 or not found[0]["labels"]:
                    raise BenchmarkError(f"{count} people: the rows made different person-label counts {labels}")
                del frames
            found.append(live_row(count, args.live_seconds, factory, params, max(1.0, args.live_seconds / 60)))
            seq = None if args.only_live else found[0]["fps"]
            for row in found:
                row.update(people=count, x_seq=row["fps"] / seq if seq and "live" not in row["row"] else None)
                print(f"  {count} people: {row['row']}: {row['fps']:.1f} fps", file=sys.stderr)
            rows.extend(found)
    load = os.getloadavg()[0]
    h, w = spec.input_size(*SIZE)
    print(
        f"CPU: {cpu}; backend {args.backend}; SlowOnly-R50 AVA (random weights), {spec.clip_len}x{spec.frame_interval} "
        f"clips, 640x480 frames resized to {w}x{h}; keyframe every {args.predict_stepsize} frames; "
        f"{args.frames} frames per file-mode row; live {args.live_seconds:.0f} s; load average {load:.1f}"
    )
    if diff is not None:
        print(f"scores checked before timing (engine = torch eager): max |diff| {diff:.1e}")
    columns = [
        "people", "row", "fps", "labels_per_s", "cpu_ms", "x_seq", "infer_p50_ms", "latency_p50_ms", "latency_p95_ms",
        "dropped_keyframes", "dropped_frames", "rss_start_mb", "rss_end_mb",
    ]  # fmt: skip
    print_table(rows, columns)
    goal = {f"{r['people']} people": round(r["x_seq"], 2) for r in rows if r["row"] == "engine (file mode)"}
    if goal:
        met = all(v >= GOAL for v in goal.values())
        print(f"goal engine >= {GOAL}x sequential: {'met' if met else 'not met'} ({goal})")
    for row in rows:
        if row["row"].startswith("engine (live"):
            flat = row["rss_end_mb"] <= 1.1 * row["rss_start_mb"]
            print(
                f"  live, {row['people']} people: {row['fps']:.1f} fps sustained, latency p95 {row['latency_p95_ms']} "
                f"ms, {row['dropped_keyframes']} keyframes dropped, RSS {row['rss_start_mb']} -> {row['rss_end_mb']} "
                f"MiB ({'flat' if flat else 'grew > 10%'})"
            )
    write_json(
        args.json,
        {
            "benchmark": "stdet", "cpu": cpu, "load_average": round(load, 2), "backend": args.backend,
            "predict_stepsize": args.predict_stepsize, "frames": args.frames, "live_seconds": args.live_seconds,
            "frame_size": [SIZE[1], SIZE[0]], "model_input": [w, h], "score_check_max_diff": diff,
            "goal_x_sequential": GOAL, "x_sequential": goal,
            "rows": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
        },
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
