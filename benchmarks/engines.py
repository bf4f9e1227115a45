"""Benchmark the engine backends on the shipped recognizer configs, with random weights.

For each family it builds the model from its shipped config, saves random weights in
MMAction2 layout, builds one engine directory (ONNX + weights) and then runs it with
every backend available here: torch eager (the reference), ONNX Runtime, OpenVINO
fp32/bf16, and on an NVIDIA GPU torch-cuda fp16 and TensorRT fp16. It reports clips/s
at each batch size, the max abs error and top-1 agreement against torch fp32 on smooth
"real-looking" clips, and what ``auto`` picks with its speed-up over torch eager.

Input shape: one sample is what a real-time pipeline scores per decision: 2D models
get ``--segments`` frames (TSN/TSM: 8), 3D models one clip, each a single centre crop
of the config's test crop size (``--size`` overrides). ``--full-test-views`` uses the
config's whole multi-clip multi-crop test shape instead (slow on a CPU).

Usage::

    python benchmarks/engines.py --families tsn,tsm --batch 1,4 --iters 10 --json out.json
    python benchmarks/engines.py --quick          # TSN only, 112 px, batch 1, 3 iterations
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if sys.path[0] != str(ROOT):  # before the script folder, whose engines.py would shadow the package
    sys.path.insert(0, str(ROOT))

from engines.backends import BackendUnavailable, backend_class, select_backend  # noqa: E402
from engines.checkpoint import save_checkpoint  # noqa: E402
from engines.config import load_config  # noqa: E402
from engines.engine import AUTO_MIN_TOP1, build_engine, compare, load_engine  # noqa: E402
from engines.export import DeployModel, sample_inputs, torch_scores  # noqa: E402
from engines.models import build  # noqa: E402

logger = logging.getLogger("benchmarks.engines")

CONFIGS = ROOT / "configs" / "recognition"
#: Family -> shipped config (the model-zoo's headline variant).
FAMILIES: dict[str, str] = {
    "tsn": "tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x8-100e_kinetics400-rgb.py",
    "tsm": "tsm/tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_kinetics400-rgb.py",
    "i3d": "i3d/i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb.py",
    "slowonly": "slowonly/slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb.py",
    "slowfast": "slowfast/slowfast_r50_8xb8-4x16x1-256e_kinetics400-rgb.py",
    "x3d": "x3d/x3d_s_13x6x1_facebook-kinetics400-rgb.py",
    "c3d": "c3d/c3d_sports1m-pretrained_8xb30-16x1x1-45e_ucf101-rgb.py",
    "r2plus1d": "r2plus1d/r2plus1d_r34_8xb8-8x8x1-180e_kinetics400-rgb.py",
    "c2d": "c2d/c2d_r50-in1k-pre_8xb32-8x8x1-100e_kinetics400-rgb.py",
    "csn": "csn/ircsn_ig65m-pretrained-r50-bnfrozen_8xb12-32x2x1-58e_kinetics400-rgb.py",
    "tsm-mobilenetv2": "tsm/tsm_imagenet-pretrained-mobilenetv2_8xb16-1x1x8-100e_kinetics400-rgb.py",
    "tanet": "tanet/tanet_imagenet-pretrained-r50_8xb8-dense-1x1x8-100e_kinetics400-rgb.py",
    "tin": "tin/tin_kinetics400-pretrained-tsm-r50_1x1x8-50e_kinetics400-rgb.py",
    "trn": "trn/trn_imagenet-pretrained-r50_8xb16-1x1x8-50e_sthv2-rgb.py",
    "tpn": "tpn/tpn-slowonly_imagenet-pretrained-r50_8xb8-8x8x1-150e_kinetics400-rgb.py",
    "omnisource": "omnisource/slowonly_r50_8xb16-8x8x1-256e_imagenet-kinetics400-rgb.py",
    "timesformer": "timesformer/timesformer_divST_8xb8-8x32x1-15e_kinetics400-rgb.py",
    "videomae": "videomae/vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400.py",
    "uniformerv2": "uniformerv2/uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb.py",
    "swin": "swin/swin-tiny-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb.py",
    "mvit": "mvit/mvit-small-p244_32xb16-16x4x1-200e_kinetics400-rgb.py",
    "uniformer": "uniformer/uniformer-small_imagenet1k-pre_16x4x1_kinetics400-rgb.py",
}
#: The default --families: the original six (every family takes minutes on a 2-core CPU).
DEFAULT_FAMILIES = ("tsn", "tsm", "i3d", "slowonly", "slowfast", "x3d")
#: (backend, precision) pairs tried, in table order; unavailable ones are skipped.
RUNS = [
    ("torch", "fp32"),
    ("onnxruntime", "fp32"),
    ("openvino", "fp32"),
    ("openvino", "bf16"),
    ("torch-cuda", "fp32"),
    ("torch-cuda", "fp16"),
    ("tensorrt", "fp16"),
]


@dataclass
class Result:
    """One (family, backend, precision) measurement."""

    family: str
    backend: str
    precision: str
    input_shape: list[int]
    clips_per_s: dict[str, float] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    max_abs_diff: float | None = None
    top1_agreement: float | None = None
    note: str = ""


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random but well-conditioned weights: non-trivial BN statistics, a confident classifier."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
                n = module.num_features
                module.running_mean.copy_(torch.rand(n, generator=gen) * 0.2 - 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)  # type: ignore[union-attr]
                if module.weight is not None:
                    module.weight.copy_(torch.rand(n, generator=gen) * 0.5 + 0.5)
            elif isinstance(module, nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * 0.05)
    return model


def sample_shape(config: Path, args: argparse.Namespace) -> tuple[int, ...]:
    """Per-sample input shape for a family (see the module docstring)."""
    cfg = load_config(config)
    if cfg.clip is None:
        raise SystemExit(f"{config}: no test_pipeline")
    hw = cfg.clip.fixed_hw or (224, 224)
    if args.full_test_views:
        return cfg.clip.input_shape(*hw)
    height, width = hw
    if args.size:
        height = width = args.size
    if cfg.input_format == "NCHW":
        return (args.segments, 3, height, width)
    return (1, 3, cfg.clip.clip_len, height, width)


def time_engines(engines: dict[str, Any], inputs: np.ndarray, iters: int, warmup: int) -> dict[str, float]:
    """Median seconds per ``infer`` call of each engine.

    The engines take turns, one call each per round, so a load spike from another
    process on a shared machine slows them all alike instead of skewing one.
    """
    for engine in engines.values():
        for _ in range(warmup):
            engine.infer(inputs)
    times: dict[str, list[float]] = {key: [] for key in engines}
    for _ in range(iters):
        for key, engine in engines.items():
            start = time.perf_counter()
            engine.infer(inputs)
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def bench_family(family: str, args: argparse.Namespace, work: Path) -> list[Result]:
    """Build one family's engine and time every available backend on it."""
    config = CONFIGS / FAMILIES[family]
    shape = sample_shape(config, args)
    logger.info("%s: %s, input %s", family, config.name, shape)
    cfg = load_config(config)
    torch.manual_seed(0)
    model = randomize(build(cfg.model), seed=0).eval()
    ckpt = save_checkpoint(model, work / f"{family}.pth")
    engine_dir = work / family
    t0 = time.perf_counter()
    base = build_engine(
        config,
        ckpt,
        backend="onnxruntime",
        max_batch=max(args.batch),
        out_dir=engine_dir,
        input_shape=shape,
        copy_weights=True,
        validate=False,
        average_clips="score",  # raw scores: errors in logit units, not squashed probabilities
    )
    base.close()
    logger.info("%s: engine built in %.1fs", family, time.perf_counter() - t0)
    mean, std = list(cfg.model["data_preprocessor"]["mean"]), list(cfg.model["data_preprocessor"]["std"])
    check = sample_inputs(shape, args.check, mean=mean, std=std, seed=5)
    model.cls_head.average_clips = "score"  # type: ignore[union-attr]
    reference = torch_scores(DeployModel(model, cfg.input_format), check)
    results: dict[str, Result] = {}
    engines: dict[str, Any] = {}
    for name, precision in RUNS:
        if args.backends and name not in args.backends:
            continue
        key = f"{name}/{precision}"
        try:
            backend_class(name).check_available()
            engine = load_engine(engine_dir, backend=name, precision=precision)
        except BackendUnavailable as exc:
            logger.info("%s %s: skipped (%s)", name, precision, str(exc).splitlines()[0][:100])
            continue
        result = Result(family, name, precision, list(shape))
        report = compare(reference, engine.infer(check))
        result.max_abs_diff = report["max_abs_diff"]
        result.top1_agreement = report["top1_agreement"]
        compiled = getattr(engine.backend, "effective_precision", None)
        if compiled and compiled != {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}[precision]:
            result.note = f"compiled as {compiled} (no native {precision} on this CPU)"
        results[key], engines[key] = result, engine
    for size in args.batch:
        inputs = sample_inputs(shape, size, mean=mean, std=std, seed=size)
        medians = time_engines(engines, inputs, args.iters, args.warmup)
        for key, seconds in medians.items():
            results[key].latency_ms[str(size)] = round(seconds * 1e3, 2)
            results[key].clips_per_s[str(size)] = round(size / seconds, 3)
    for key, engine in engines.items():
        engine.close()
        logger.info("%s %s: %s clips/s", family, key, results[key].clips_per_s)
    return list(results.values())


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": gpu,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def auto_picks(results: list[Result], auto: str) -> dict[str, str]:
    """The precision ``auto`` ends with per family: the backend's fast precision on this machine
    where its top-1 agreement with torch fp32 is at least ``AUTO_MIN_TOP1``, else fp32
    (what :func:`engines.engine.build_engine` does with ``precision='auto'``)."""
    tried = backend_class(auto).auto_precision()
    picks = {}
    for family in {r.family for r in results}:
        row = next((r for r in results if (r.family, r.backend, r.precision) == (family, auto, tried)), None)
        agreement = row.top1_agreement if row is not None else None
        picks[family] = tried if agreement is not None and agreement >= AUTO_MIN_TOP1 else "fp32"
    return picks


def print_table(results: list[Result], batches: list[int], auto: str, picks: dict[str, str]) -> None:
    """Clips/s with the speed-up over torch eager (same family, batch), and accuracy vs torch fp32."""
    head = f"{'family':9} {'backend':12} {'prec':5} " + " ".join(f"{'b' + str(b) + ' clips/s':>16}" for b in batches)
    print(head + f" {'max|err|':>9} {'top1':>5}  note")
    torch_rates = {(r.family, b): r.clips_per_s.get(str(b)) for r in results if r.backend == "torch" for b in batches}
    for r in results:
        cells = []
        for b in batches:
            rate = r.clips_per_s.get(str(b))
            ref = torch_rates.get((r.family, b))
            ratio = f"({rate / ref:.2f}x)" if rate and ref else ""
            cells.append(f"{rate:9.2f} {ratio:>6}" if rate else f"{'-':>16}")
        err = f"{r.max_abs_diff:9.2e}" if r.max_abs_diff is not None else " " * 9
        top1 = f"{r.top1_agreement:5.2f}" if r.top1_agreement is not None else ""
        mark = " <- auto" if r.backend == auto and r.precision == picks.get(r.family) else ""
        print(f"{r.family:9} {r.backend:12} {r.precision:5} " + " ".join(cells) + f" {err} {top1}  {r.note}{mark}")


def auto_speedups(
    results: list[Result], auto: str, picks: dict[str, str], batches: list[int]
) -> dict[str, dict[str, float]]:
    """``auto``'s backend and precision over torch eager, per family and batch."""
    out: dict[str, dict[str, float]] = {}
    for family in sorted({r.family for r in results}):
        rows = {(r.backend, r.precision): r for r in results if r.family == family}
        base, pick = rows.get(("torch", "fp32")), rows.get((auto, picks.get(family, "fp32")))
        if base and pick:
            out[family] = {
                str(b): round(pick.clips_per_s[str(b)] / base.clips_per_s[str(b)], 3)
                for b in batches
                if str(b) in pick.clips_per_s and str(b) in base.clips_per_s
            }
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--families", default=",".join(DEFAULT_FAMILIES), help=f"comma list from {', '.join(FAMILIES)}, or all"
    )
    parser.add_argument("--batch", default="1,4", help="comma list of batch sizes (default 1,4)")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations per batch size")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    parser.add_argument("--check", type=int, default=8, help="clips in the accuracy check batch")
    parser.add_argument("--segments", type=int, default=8, help="frames per sample for 2D models (default 8)")
    parser.add_argument("--size", type=int, default=None, help="crop size override (default: the config's)")
    parser.add_argument("--backends", default="", help="comma list to restrict the backends")
    parser.add_argument("--full-test-views", action="store_true", help="use the config's whole test shape")
    parser.add_argument("--quick", action="store_true", help="TSN only, 112 px, batch 1, 3 iterations")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--workdir", type=Path, default=None, help="keep engines here (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.quick:
        args.families, args.batch, args.iters, args.warmup, args.check = "tsn", "1", 3, 1, 4
        args.size = args.size or 112
    args.batch = [int(b) for b in str(args.batch).split(",") if b]
    args.backends = [b for b in args.backends.split(",") if b]
    families = list(FAMILIES) if args.families == "all" else [f for f in args.families.split(",") if f]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        parser.error(f"unknown families {unknown}; valid: {', '.join(FAMILIES)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("engines").setLevel(logging.WARNING)

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="engines-bench-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for family in families:
            results.extend(bench_family(family, args, work))
    auto = select_backend()
    picks = auto_picks(results, auto)
    print(f"\nmachine: {machine()}\nauto picks: {auto}, precision {picks}\n")
    print_table(results, args.batch, auto, picks)
    speedups = auto_speedups(results, auto, picks, args.batch)
    print(f"\nauto ({auto}) speed-up over torch eager: {speedups}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": machine(),
            "auto": auto,
            "auto_precision": picks,
            "auto_speedup_vs_torch": speedups,
            "args": {k: v for k, v in vars(args).items() if k not in ("json", "workdir")},
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
