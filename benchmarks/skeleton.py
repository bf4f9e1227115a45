"""Per-person skeleton action recognition: MMAction2's demo loop vs this project's SkeletonStage, one run.

    python benchmarks/skeleton.py [--people 1 5 20] [--frames 96] [--live-seconds 20]
                                  [--backend auto] [--json results/skeleton.json]
    python benchmarks/skeleton.py --people 20 --live-seconds 600 --only-live   # the issue's 10-minute memory run

Goal on this CPU: ``engine (file mode)`` at ≥ 3× the frames/s of ``sequential mmaction2`` at
every people count; live, memory flat and capture-to-label latency p95 bounded when the model
is slower than the camera (windows are dropped and counted instead of queued).

Input: synthetic packets (``benchmarks/people_synthetic.py``) whose ``Detections`` already
carry ``N`` tracked people with COCO-17 keypoints at 25 fps, so only the per-person action
part is measured (detection, tracking and pose: ``benchmarks/people.py``). Every person is in
every frame from frame 0, so their windows fall due on the same frames (``--stagger`` spreads
their first frames over one step instead: smaller batches in file mode).

Models: (a) ``zoo``: ST-GCN++ joint (``configs/skeleton/stgcnpp/...joint-u100...``, NTU-60
size, clip_len 100 as shipped) with seeded random weights saved in model-zoo layout to a temp
dir; (b) ``demo``: the project's demo ST-GCN (``configs/demo/demo_stgcn_coco_synthetic.py``
and its shipped checkpoint) when that config exists. All rows score one clip per window
(``num_clips=1``; the model-zoo test config averages 10 clips over a whole video, the live
pipeline's default is 1) and make a label per person every ``--predict-stepsize`` frames of
their track, the first once ``window // 4`` frames are in (SkeletonStage's schedule), so every
row produces the same number of person-labels; the script checks that it does.

Rows, for each model and people count ``N``:

* ``sequential mmaction2``: what MMAction2's ``demo_skeleton.py`` does per prediction, one
  person at a time: ``mmaction.apis.inference_skeleton`` (its results dict, MMAction2's own
  test-pipeline transforms composed by ``mmengine.dataset.Compose``) on MMAction2's own model
  (built by its registry from the same config, same state dict), torch eager, in a plain loop
  over the frames;
* ``torch eager, batched``: this project's transforms and torch model behind
  :class:`~pipelines.skeleton.SkeletonStage` (file mode), the people due on a frame batched,
  called in a plain loop (no threads);
* ``engine (file mode)``: ``SkeletonStage(lambda: open_skeleton_recognizer(...))`` (the compiled
  ONNX Runtime / OpenVINO engine) in a :class:`~stream.runner.Pipeline`, fed as fast as it
  takes frames (lossless);
* ``engine (live, 25 fps)``: the same with a source paced at 25 fps and the stage in live
  mode, for ``--live-seconds``: sustained frames/s, person-labels/s, capture-to-label latency
  p50 / p95 (the stage's metrics), windows dropped because a newer one of the same person came
  first, frames dropped at the stage's input, and the process's RSS after one second and at
  the end (the JSON keeps the samples).

How to read a row: ``fps`` is frames through the action part per second (the camera gives 25);
``labels/s`` person-labels per second; ``x_seq`` the row's fps over the sequential loop's at the
same ``N`` (the goal column; not given for live rows, which drop work the other rows do).
Before timing, the script checks on one batch of windows that
the engine's scores equal the torch model's and that those equal MMAction2's; it stops with
an error otherwise. The machine may be shared: compare rows of one run; ``cpu_ms`` per frame
(all threads of the process) moves much less with other load than ``fps``.
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
from dataclasses import dataclass, replace
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
    people_at,
    run_stage,
)
from engines.checkpoint import load_checkpoint, save_checkpoint
from engines.config import read_config, to_plain
from engines.models import build
from engines.skeleton.transforms import SkeletonPipeline
from pipelines.model_files import checkpoint_path
from pipelines.skeleton import PersonWindow, SkeletonParams, SkeletonStage
from pipelines.skeleton_model import SkeletonModel, open_skeleton_recognizer
from stream.packet import FramePacket

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "configs/skeleton/stgcnpp/stgcnpp_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d.py"
DEMO = ROOT / "configs/demo/demo_stgcn_coco_synthetic.py"
GOAL = 3.0


@dataclass
class Model:
    """One model under test: its config, checkpoint, and the pieces every row builds from them."""

    name: str
    config: Path
    checkpoint: Path
    steps: list[dict[str, Any]]  # the test pipeline, one clip per window
    clip_len: int
    class_names: list[str]
    random_weights: bool


def _one_clip(cfg: Any) -> list[dict[str, Any]]:
    steps = [to_plain(s) for s in cfg.test_pipeline]
    for step in steps:
        if step.get("type") == "UniformSampleFrames":
            step["num_clips"] = 1
            return steps
    raise BenchmarkError("the test_pipeline has no UniformSampleFrames: not a skeleton config")


def zoo_model(tmp: Path) -> Model:
    """ST-GCN++ at model-zoo size with seeded random weights, saved in model-zoo layout."""
    cfg = read_config(ZOO)
    torch.manual_seed(0)
    net = build(to_plain(cfg.model))
    with torch.no_grad():  # away from the initialisation, so that classes differ; 0.1 saturates the softmax
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.06)
    names = [f"class_{i}" for i in range(net.num_classes)]
    checkpoint = save_checkpoint(net, tmp / "stgcnpp_random.pth", meta={"dataset_meta": {"classes": names}})
    steps = _one_clip(cfg)
    clip_len = next(int(s["clip_len"]) for s in steps if s["type"] == "UniformSampleFrames")
    return Model("zoo ST-GCN++", ZOO, checkpoint, steps, clip_len, names, True)


def demo_model() -> Model:
    """The project's demo ST-GCN and its shipped checkpoint."""
    cfg = read_config(DEMO)
    checkpoint = checkpoint_path(DEMO, None, cfg.get("load_from"))
    steps = _one_clip(cfg)
    clip_len = next(int(s["clip_len"]) for s in steps if s["type"] == "UniformSampleFrames")
    net = build(to_plain(cfg.model))
    ckpt = load_checkpoint(net, checkpoint)
    names = list(ckpt.classes or [f"class_{i}" for i in range(net.num_classes)])
    return Model("demo ST-GCN", DEMO, checkpoint, steps, clip_len, names, False)


# ---------------------------------------------------------------------------------------- MMAction2


def mmaction2(model: Model) -> tuple[torch.nn.Module, Any, Callable[..., Any]]:
    """MMAction2's own model (same config, same state dict), its test pipeline and ``inference_skeleton``."""
    try:
        from tests.engines.mmaction_ref import build_mmaction_model, import_reference
    except ImportError as exc:
        raise BenchmarkError(f"the MMAction2 reference helpers do not import: {exc}") from exc
    import pytest

    try:
        net = build_mmaction_model(to_plain(read_config(model.config).model))
        compose = import_reference("mmengine.dataset").Compose(model.steps)
        inference_skeleton = import_reference("mmaction.apis").inference_skeleton
    except pytest.skip.Exception as exc:  # the helpers skip a test when MMAction2 is missing
        raise BenchmarkError(f"MMAction2 1.2 is needed for the sequential row: {exc}") from exc
    if not hasattr(np, "Inf"):
        np.Inf = np.inf  # type: ignore[attr-defined]  # MMAction2 1.2's PoseCompact uses np.Inf (gone in numpy 2)
    state = torch.load(model.checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    net.load_state_dict(state, strict=True)
    return net.eval(), compose, inference_skeleton


def pose_results(keypoints: np.ndarray) -> list[dict[str, np.ndarray]]:
    """One person's window as ``demo_skeleton.py`` hands frames to ``inference_skeleton``."""
    return [{"keypoints": k[None, :, :2], "keypoint_scores": k[None, :, 2]} for k in keypoints]


# ---------------------------------------------------------------------------------------- rows


class Schedule:
    """SkeletonStage's per-person schedule, for the sequential loop (a label at ``min_frames``, then every step)."""

    def __init__(self, window: int, stepsize: int) -> None:
        self.window, self.stepsize = window, stepsize
        self.min_frames = max(2, window // 4)
        self.tracks: dict[int, list[Any]] = {}  # track id -> [keypoints deque, seen, since]

    def feed(self, frame: FramePacket) -> list[tuple[int, np.ndarray]]:
        detections = frame.detections
        assert detections is not None and detections.track_ids is not None and detections.keypoints is not None
        due = []
        for row, track_id in enumerate(detections.track_ids.tolist()):
            track = self.tracks.setdefault(track_id, [collections.deque(maxlen=self.window), 0, 0])
            track[0].append(detections.keypoints[row])
            track[1] += 1
            track[2] += 1
            if track[1] >= self.min_frames and (track[1] == self.min_frames or track[2] >= self.stepsize):
                track[2] = 0
                due.append((track_id, np.stack(track[0])))
        return due


def timed_loop(name: str, frames: list[FramePacket], step: Callable[[FramePacket], int]) -> dict[str, Any]:
    labels = 0
    start, cpu = time.perf_counter(), time.process_time()
    for frame in frames:
        labels += step(frame)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "row": name, "frames": len(frames), "fps": len(frames) / elapsed, "labels": labels,
        "labels_per_s": labels / elapsed, "cpu_ms": cpu / len(frames) * 1e3,
    }  # fmt: skip


def sequential_row(frames: list[FramePacket], model: Model, stepsize: int) -> dict[str, Any]:
    net, compose, inference_skeleton = mmaction2(model)
    schedule = Schedule(model.clip_len, stepsize)
    first = frames[0].detections
    assert first is not None and first.keypoints is not None
    inference_skeleton(net, pose_results(first.keypoints[:1].repeat(8, 0)), SIZE, compose)  # warm-up

    def step(frame: FramePacket) -> int:
        due = schedule.feed(frame)
        for _, keypoints in due:  # one person at a time, as the demo
            inference_skeleton(net, pose_results(keypoints), (frame.height, frame.width), compose)
        return len(due)

    return timed_loop("sequential mmaction2", frames, step)


def torch_recognizer(model: Model, batch_size: int) -> SkeletonModel:
    """This project's transforms and torch model behind SkeletonStage's recognizer contract."""
    net = build(to_plain(read_config(model.config).model)).eval()
    load_checkpoint(net, model.checkpoint)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(batch)).numpy()

    pipeline = SkeletonPipeline.from_config(model.steps)
    return SkeletonModel(pipeline, run, lambda: None, model.class_names, model.clip_len, batch_size)


def torch_row(frames: list[FramePacket], model: Model, params: SkeletonParams) -> dict[str, Any]:
    stage = SkeletonStage(lambda: torch_recognizer(model, params.batch_size), params)
    stage.setup()
    recognizer = stage._recognizer
    assert recognizer is not None
    first = frames[0].detections
    assert first is not None and first.keypoints is not None
    recognizer.scores([PersonWindow("warm-up", 0, first.keypoints[:1].repeat(8, 0), SIZE, first.xyxy[0], 0, 1, 0)])

    def step(frame: FramePacket) -> int:
        frame.predictions = []
        stage.process(frame)
        return len(frame.predictions)

    try:
        return timed_loop("torch eager, batched", frames, step)
    finally:
        stage.close()


def engine_factory(model: Model, args: argparse.Namespace, cache: Path) -> Callable[[], SkeletonModel]:
    return lambda: open_skeleton_recognizer(
        model.config, str(model.checkpoint), backend=args.backend, max_batch=args.batch_size, cache_dir=cache
    )


def engine_file_row(frames: list[FramePacket], factory: Callable[[], SkeletonModel], params: SkeletonParams) -> dict:
    stage = SkeletonStage(factory, params)
    run = run_stage(stage, PacketSource(frames))
    if run.sink.frames != len(frames):
        raise BenchmarkError(f"engine (file mode): {run.sink.frames} of {len(frames)} frames came out (lossless)")
    return {
        "row": "engine (file mode)", "frames": run.sink.frames, "fps": run.sink.fps, "labels": run.sink.labels,
        "labels_per_s": run.sink.labels_per_s, "cpu_ms": run.cpu_ms_per_frame,
        "batches": run.report.stages[stage.name]["batches"],
    }  # fmt: skip


def live_row(
    count: int, seconds: float, factory: Callable[[], SkeletonModel], params: SkeletonParams, interval: float
) -> dict[str, Any]:
    image = np.zeros((*SIZE, 3), np.uint8)
    stage = SkeletonStage(factory, replace(params, live=True))
    run = run_stage(stage, PacedPeople(count, seconds, image), rss_interval_s=interval)
    metrics = run.report.stages[stage.name]
    return {
        "row": "engine (live, 25 fps)", "frames": run.sink.frames, "fps": run.sink.fps, "labels": run.sink.labels,
        "labels_per_s": run.sink.labels_per_s, "cpu_ms": run.cpu_ms_per_frame,
        "latency_p50_ms": metrics["latency_p50_ms"], "latency_p95_ms": metrics["latency_p95_ms"],
        "dropped_windows": metrics["dropped_windows"], "dropped_frames": metrics.get("dropped", 0),
        "rss_start_mb": run.rss_mb[0][1], "rss_end_mb": run.rss_mb[-1][1], "rss_max_mb": max(m for _, m in run.rss_mb),
        "rss_samples": run.rss_mb, "batches": metrics["batches"],
    }  # fmt: skip


# ---------------------------------------------------------------------------------------- checks


def check_scores(model: Model, factory: Callable[[], SkeletonModel], batch: int = 4) -> float:
    """Engine == torch == MMAction2 on one batch of ``batch`` people's full windows; the largest difference seen."""
    people = [people_at(i, batch) for i in range(model.clip_len)]
    keypoints = np.stack([d.keypoints for d in people], 1)  # type: ignore[misc]  # (batch, T, 17, 3)
    windows = [PersonWindow("cam", k + 1, keypoints[k], SIZE, people[-1].xyxy[k], 0.0, 1.0, 0) for k in range(batch)]
    engine = factory()
    try:
        got = engine.scores(windows)
    finally:
        engine.close()
    want = torch_recognizer(model, batch).scores(windows)
    net, compose, inference_skeleton = mmaction2(model)
    ref = np.stack(
        [inference_skeleton(net, pose_results(w.keypoints), SIZE, compose).pred_score.numpy() for w in windows]
    )
    worst = 0.0
    for what, a, b, tol in (("engine vs torch", got, want, 1e-4), ("torch vs MMAction2", want, ref, 1e-5)):
        diff = float(np.abs(a - b).max())
        worst = max(worst, diff)
        if a.shape != b.shape or not diff <= tol:
            raise BenchmarkError(
                f"{model.name}: {what} scores differ by {diff:.2e} (> {tol}) on {len(windows)} windows"
            )
    if model.random_weights and (float(np.ptp(want, axis=1).min()) < 1e-3 or float(want.max()) > 0.99):
        raise BenchmarkError(f"{model.name}: the scores are nearly uniform or one-hot: the check would prove little")
    return worst


# ---------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, nargs="+", default=[1, 5, 20], help="people per frame")
    parser.add_argument("--frames", type=int, default=96, help="frames per file-mode row (25 fps stream time)")
    parser.add_argument(
        "--live-seconds", type=float, default=20, help="seconds of the live row (600: the issue's 10 minutes)"
    )
    parser.add_argument("--backend", default="auto", help="engine backend: auto, onnxruntime or openvino")
    parser.add_argument("--predict-stepsize", type=int, default=8, help="frames of a track between its labels")
    parser.add_argument("--batch-size", type=int, default=16, help="people per engine call")
    parser.add_argument(
        "--models", nargs="+", choices=["zoo", "demo"], help="default: zoo, and demo if its config exists"
    )
    parser.add_argument("--stagger", action="store_true", help="people start on different frames of a step")
    parser.add_argument("--only-live", action="store_true", help="the live row alone (long memory runs)")
    parser.add_argument("--json", default="results/skeleton.json", help="write the results here ('' for none)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    wanted = args.models or (["zoo", "demo"] if DEMO.is_file() else ["zoo"])
    params = SkeletonParams(predict_stepsize=args.predict_stepsize, batch_size=args.batch_size)
    cpu = cpu_name()
    rows: list[dict[str, Any]] = []
    checks: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "engines"
        for kind in wanted:
            model = zoo_model(Path(tmp)) if kind == "zoo" else demo_model()
            factory = engine_factory(model, args, cache)
            image = np.zeros((*SIZE, 3), np.uint8)
            for count in args.people:
                frames = [packet(i, count, image) for i in range(args.frames)]
                if args.stagger:  # person k's track starts k frames later (modulo one step)
                    for k in range(count):
                        for frame in frames[: k % args.predict_stepsize]:
                            d = frame.detections
                            assert d is not None and d.track_ids is not None
                            frame.detections = d[d.track_ids != k + 1]
                found: list[dict[str, Any]] = []
                if not args.only_live:
                    if model.name not in checks:
                        checks[model.name] = check_scores(model, factory)
                    found.append(sequential_row(frames, model, args.predict_stepsize))
                    found.append(torch_row(frames, model, params))
                    found.append(engine_file_row(frames, factory, params))
                    labels = {r["row"]: r["labels"] for r in found}
                    if len(set(labels.values())) != 1:
                        raise BenchmarkError(f"{model.name}, {count} people: rows made different label counts {labels}")
                else:
                    factory().close()  # build the engine before the camera starts
                found.append(live_row(count, args.live_seconds, factory, params, max(1.0, args.live_seconds / 60)))
                seq = found[0]["fps"] if not args.only_live else None
                for row in found:
                    row.update(
                        model=model.name,
                        people=count,
                        x_seq=row["fps"] / seq if seq and "live" not in row["row"] else None,
                    )
                    print(f"  {model.name}, {count} people: {row['row']}: {row['fps']:.1f} fps", file=sys.stderr)
                rows.extend(found)
    load = os.getloadavg()[0]
    print(f"CPU: {cpu}; backend {args.backend}; predict_stepsize {args.predict_stepsize}; {args.frames} frames per "
          f"file-mode row; live {args.live_seconds:.0f} s; load average {load:.1f}")  # fmt: skip
    if checks:
        print("scores checked before timing (engine = torch = MMAction2): " +
              ", ".join(f"{k}: max |diff| {v:.1e}" for k, v in checks.items()))  # fmt: skip
    columns = [
        "model", "people", "row", "fps", "labels_per_s", "cpu_ms", "x_seq", "latency_p50_ms", "latency_p95_ms",
        "dropped_windows", "dropped_frames", "rss_start_mb", "rss_end_mb",
    ]  # fmt: skip
    print_table(rows, columns)
    goal: dict[str, Any] = {}
    for row in rows:
        if row["row"] == "engine (file mode)":
            goal[f"{row['model']}, {row['people']} people"] = round(row["x_seq"], 2)
    if goal:
        met = all(v >= GOAL for v in goal.values())
        print(f"goal engine >= {GOAL}x sequential: {'met' if met else 'not met'} ({goal})")
    for row in rows:
        if row["row"].startswith("engine (live"):
            flat = row["rss_end_mb"] <= 1.1 * row["rss_start_mb"]
            print(
                f"  live {row['model']}, {row['people']} people: {row['fps']:.1f} fps sustained, latency p95 "
                f"{row['latency_p95_ms']} ms, {row['dropped_windows']} windows dropped, RSS {row['rss_start_mb']} -> "
                f"{row['rss_end_mb']} MiB ({'flat' if flat else 'grew > 10%'})"
            )
    write_json(
        args.json,
        {
            "benchmark": "skeleton", "cpu": cpu, "load_average": round(load, 2), "backend": args.backend,
            "predict_stepsize": args.predict_stepsize, "frames": args.frames, "live_seconds": args.live_seconds,
            "stagger": args.stagger, "score_checks": checks, "goal_x_sequential": GOAL, "x_sequential": goal,
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
