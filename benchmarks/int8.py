"""INT8 against fp32 and bf16 on trained recognizers: speed, top-1 agreement with torch fp32, what ``auto`` keeps.

Random-weight models score their classes nearly equally, so any perturbation flips their
labels; agreement is measured here on trained models only:

* ``demo``: the shipped demo recognizer (SlowOnly-R18, 1.2 M parameters, 8x64x112 clips);
* ``slowonly-r50``: a SlowOnly-R50 (32 M parameters, 8x64x112 clips) trained on the same
  synthetic actions by :mod:`pipelines.demo.train_r50` (trained first if its checkpoint is
  not cached in ``~/.cache/action-stream/models``; ``--train`` trains it again);
* ``tsn-r50-224`` (speed only): MMAction2's TSN-R50 1x1x8 at 8x224x224 with random weights,
  the issue's headline model, for the speed at full size; its agreement proves nothing.

For each model one engine directory holds the fp32 graph and the INT8 graph (ONNX Runtime's
static QDQ quantizer, calibrated on 32 clips of the demo video, :mod:`engines.quantize`);
each backend (onnxruntime, openvino) runs it in fp32, bf16 (OpenVINO, where the CPU has it)
and int8. Per run: clips/s and ms per clip at batch 1 and 4 (median of ``--iters``), top-1
agreement with torch fp32 and the max abs score difference on two held-out sets — freshly
rendered synthetic clips (independent scenes, with their true labels, so accuracy is shown
too) and windows of the demo video that calibration did not use — and finally what
``precision='auto'`` keeps when it builds each model on each backend.

Usage::

    python benchmarks/int8.py --json results/int8.json [--models demo,slowonly-r50] [--clips 256]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if sys.path[0] != str(ROOT):  # before the script folder, whose engines.py would shadow the package
    sys.path.insert(0, str(ROOT))

from benchmarks.common import cpu_name, print_table, write_json  # noqa: E402
from core.files import write_text  # noqa: E402
from engines.backends import BackendUnavailable, backend_class  # noqa: E402
from engines.config import load_config  # noqa: E402
from engines.engine import Engine, build_engine, compare, load_engine  # noqa: E402
from engines.export import DeployModel, build_recognizer, torch_scores  # noqa: E402
from engines.quantize import CalibrationSource, calibration_clips  # noqa: E402

logger = logging.getLogger("benchmarks.int8")

BACKENDS = ("onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16", "int8")
#: Seed of the rendered held-out clips (neither the training set's nor the validation set's).
HELD_OUT_SEED = 11


def demo_model() -> tuple[Path, Path, Callable[[int], tuple[np.ndarray, np.ndarray]]]:
    """Config, checkpoint and a renderer of held-out ``(clips, labels)`` for the demo recognizer."""
    from pipelines.demo import ASSETS, DEMO_CONFIG
    from pipelines.demo.train import demo_clip_spec, make_clips, to_inputs

    spec = demo_clip_spec(DEMO_CONFIG)

    def render(count: int) -> tuple[np.ndarray, np.ndarray]:
        clips, labels = make_clips(count, spec, HELD_OUT_SEED)
        return to_inputs(clips, spec).numpy()[:, None], labels  # one view: (N, 1, 3, T, H, W)

    return DEMO_CONFIG, ASSETS / "demo_recognizer.pth", render


def r50_model(retrain: bool) -> tuple[Path, Path, Callable[[int], tuple[np.ndarray, np.ndarray]]]:
    """Config, (trained) checkpoint and held-out renderer for the SlowOnly-R50."""
    from engines.clip_spec import ClipSpec
    from pipelines.demo.train_r50 import (
        R50_CHECKPOINT_NAME,
        R50_CONFIG,
        model_cache_dir,
        render_segment_clips,
        segment_inputs,
        train_and_save,
        trained_r50,
    )

    path = model_cache_dir() / R50_CHECKPOINT_NAME
    checkpoint = train_and_save(path) if retrain else trained_r50(path)
    spec = ClipSpec.from_config(R50_CONFIG)

    def render(count: int) -> tuple[np.ndarray, np.ndarray]:
        clips, labels = render_segment_clips(count, spec, HELD_OUT_SEED)
        return segment_inputs(clips, spec).numpy(), labels

    return R50_CONFIG, checkpoint, render


def tsn_r50_224(work: Path) -> tuple[Path, Path, None]:
    """MMAction2's TSN-R50 1x1x8 with its centre-crop pipeline (8x224x224) and random weights (speed only)."""
    from benchmarks.engines import CONFIGS, FAMILIES, randomize
    from engines.checkpoint import save_checkpoint
    from engines.models import build

    base = CONFIGS / FAMILIES["tsn"]
    config = work / "tsn_r50_224.py"
    write_text(  # atomic: --workdir may be a folder the user keeps
        config,
        f"_base_ = [{str(base)!r}]\n"
        "test_pipeline = [\n"
        "    dict(type='SampleFrames', clip_len=1, frame_interval=1, num_clips=8, test_mode=True),\n"
        "    dict(type='Resize', scale=(-1, 256)),\n"
        "    dict(type='CenterCrop', crop_size=224),\n"
        "    dict(type='FormatShape', input_format='NCHW'),\n"
        "    dict(type='PackActionInputs'),\n"
        "]\n",
    )
    torch.manual_seed(0)
    model = randomize(build(load_config(config).model), seed=0).eval()
    return config, save_checkpoint(model, work / "tsn_r50_224.pth"), None


def interleaved_ms(
    runners: dict[Any, Callable[[np.ndarray], Any]], clips: np.ndarray, batch: int, iters: int
) -> dict[Any, float]:
    """Median ms per clip of each runner at ``batch`` clips per call, timed in turns.

    On a shared machine the load drifts; one call of each runner per round spreads that
    drift over all of them instead of charging it to whichever ran during a busy spell.
    """
    x = np.ascontiguousarray(clips[:batch])
    times: dict[Any, list[float]] = {key: [] for key in runners}
    for run in runners.values():  # warm-up (first-call compiles, allocations)
        run(x)
        run(x)
    for _ in range(iters):
        for key, run in runners.items():
            start = time.perf_counter()
            run(x)
            times[key].append(time.perf_counter() - start)
    return {key: 1e3 * statistics.median(values) / batch for key, values in times.items()}


def bench_model(name: str, args: argparse.Namespace, work: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of one model (torch fp32 eager, then each backend and precision) and what ``auto`` kept."""
    picked: tuple[Path, Path, Any]
    if name == "slowonly-r50":
        picked = r50_model(args.train)
    elif name == "tsn-r50-224":
        picked = tsn_r50_224(work)
    else:
        picked = demo_model()
    config, checkpoint, render = picked
    cfg = load_config(config)
    spec = cfg.clip
    assert spec is not None and spec.fixed_hw is not None
    shape = spec.input_shape(*spec.fixed_hw)
    model, ckpt = build_recognizer(cfg.model, checkpoint)
    deploy = DeployModel(model, cfg.input_format).eval()
    meta = ckpt.meta if ckpt else {}
    _, video = calibration_clips(CalibrationSource.resolve(None), spec, shape, extra_held_out=args.video_clips)
    labels = None
    sets = {"video": video}
    if render is not None:
        rendered, labels = render(args.clips)
        sets["rendered"] = rendered
    timing = sets.get("rendered", video)
    torch.set_num_threads(args.threads)
    reference = {key: torch_scores(deploy, clips) for key, clips in sets.items()}
    engine_dir = work / f"{name}-int8"
    build_engine(config, checkpoint, backend="onnxruntime", precision="int8", out_dir=engine_dir).close()
    engines: dict[tuple[str, str], Engine] = {}
    for backend in args.backends:
        for precision in PRECISIONS:
            if precision not in backend_class(backend).precisions:
                continue
            try:
                engine = load_engine(engine_dir, backend, precision=precision, num_threads=args.threads)
            except BackendUnavailable as exc:
                logger.info("%s %s: skipped (%s)", backend, precision, exc)
                continue
            compiled = getattr(engine.backend, "effective_precision", None)
            if precision == "bf16" and compiled not in (None, "bf16"):
                logger.info("%s bf16: compiled as %s (no native bf16 here); skipped", backend, compiled)
                engine.close()
                continue
            engines[backend, precision] = engine
    scores = {key: {s: engine.infer(clips) for s, clips in sets.items()} for key, engine in engines.items()}

    def run_torch(x: np.ndarray) -> Any:
        with torch.no_grad():
            return deploy(torch.from_numpy(x))

    runners: dict[tuple[str, str], Callable[[np.ndarray], Any]] = {("torch", "fp32"): run_torch}
    runners.update({key: engine.infer for key, engine in engines.items()})
    ms = {b: interleaved_ms(runners, timing, b, args.iters) for b in args.batch}
    for engine in engines.values():
        engine.close()
    rows = [_row(name, "torch", "fp32", {b: ms[b]["torch", "fp32"] for b in args.batch}, reference, reference, labels)]
    for key in engines:
        rows.append(_row(name, *key, {b: ms[b][key] for b in args.batch}, reference, scores[key], labels))
    auto: dict[str, Any] = {"val_top1 (training)": meta.get("val_top1")}
    for backend in args.backends:
        built = build_engine(config, checkpoint, backend=backend, precision="auto", out_dir=work / f"{name}-{backend}")
        with built:
            validation = built.manifest.validation
            auto[backend] = {
                "precision": built.manifest.precision,
                "int8_check": validation.get("auto_int8"),
                "float_check": validation.get("auto_precision"),
            }
    return rows, auto


def _row(
    model: str,
    backend: str,
    precision: str,
    ms: dict[int, float],
    reference: dict[str, np.ndarray],
    scores: dict[str, np.ndarray],
    labels: np.ndarray | None,
) -> dict[str, Any]:
    row: dict[str, Any] = {"model": model, "backend": backend, "precision": precision}
    for batch, value in ms.items():
        row[f"ms/clip b{batch}"] = round(value, 2)
        row[f"clips/s b{batch}"] = round(1e3 / value, 1)
    for key in reference:
        result = compare(reference[key], scores[key])
        row[f"top1 {key}"] = round(result["top1_agreement"], 4)
        row[f"max|d| {key}"] = float(f"{result['max_abs_diff']:.3g}")
    if labels is not None:
        row["accuracy"] = round(float((scores["rendered"].argmax(1) == labels).mean()), 4)
    else:
        row["note"] = "random weights: speed only"
    return row


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--models",
        default="demo,slowonly-r50",
        help="comma list of demo, slowonly-r50, tsn-r50-224 (default demo,slowonly-r50)",
    )
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help=f"comma list of {', '.join(BACKENDS)} (default both)"
    )
    parser.add_argument("--clips", type=int, default=256, help="rendered held-out clips (default 256)")
    parser.add_argument("--video-clips", type=int, default=128, help="extra held-out demo-video windows (128)")
    parser.add_argument("--batch", default="1,4", help="comma list of batch sizes (default 1,4)")
    parser.add_argument("--iters", type=int, default=20, help="timed calls per batch size (median)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per backend (default 2)")
    parser.add_argument("--train", action="store_true", help="train the SlowOnly-R50 again (about 25 minutes)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--workdir", type=Path, default=None, help="keep engines here (default: a temp dir)")
    args = parser.parse_args(argv)
    args.batch = [int(b) for b in str(args.batch).split(",") if b]
    models = [m for m in args.models.split(",") if m]
    args.backends = [b for b in str(args.backends).split(",") if b]
    if not args.backends or set(args.backends) - set(BACKENDS):
        parser.error(f"--backends: expected a comma list of {', '.join(BACKENDS)}, got {','.join(args.backends)!r}")
    unknown = [m for m in models if m not in ("demo", "slowonly-r50", "tsn-r50-224")]
    if unknown:
        parser.error(f"--models: unknown {unknown}; valid: demo, slowonly-r50, tsn-r50-224")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("engines").setLevel(logging.WARNING)
    rows: list[dict[str, Any]] = []
    autos: dict[str, Any] = {}
    start_load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="int8-bench-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in models:
            model_rows, autos[name] = bench_model(name, args, work)
            rows.extend(model_rows)
    load = (start_load, os.getloadavg())
    print(f"\nCPU: {cpu_name()}, load average {load[0][0]:.2f} at start, {load[1][0]:.2f} at end")
    columns = ["model", "backend", "precision"]
    columns += [f"{kind} b{b}" for b in args.batch for kind in ("ms/clip", "clips/s")]
    columns += ["top1 rendered", "max|d| rendered", "top1 video", "max|d| video", "accuracy", "note"]
    print_table(rows, columns)
    for name, auto in autos.items():
        print(f"\nauto on {name}: " + "; ".join(
            f"{b}: {a['precision']} (int8 check: {a['int8_check']})" for b, a in auto.items() if isinstance(a, dict)
        ))  # fmt: skip
    write_json(args.json, {
        "cpu": cpu_name(), "load_average": load, "args": {k: str(v) for k, v in vars(args).items()},
        "rows": rows, "auto": autos,
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
