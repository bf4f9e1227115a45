"""Cameras per machine: N local RTSP cameras into ``python -m stream.rtsp``, N = 1, 2, 4, 8, ...

    python benchmarks/streams.py [--max-cameras 16] [--seconds 30] [--warmup 10]
                                 [--json results/streams.json] [--plot results/streams.png]
    python benchmarks/streams.py --config configs/recognition/tsn/...py --random-weights

For each N, N GStreamer RTSP servers (``tests/rtsp_server.py``, one process and port per
camera, ``127.0.0.1`` only) each loop the same 720p25 H.264 clip, and the real monitor command
runs on all of them with the recognizer (the shipped demo by default)::

    python -m stream.rtsp --config CFG --source rtsp://127.0.0.1:P1/cam ... \\
        --health-file health.jsonl --health-interval 1 --metrics metrics.json

Once every camera delivers frames it runs ``--warmup`` seconds more, then is measured for
``--seconds`` and stopped with SIGINT. Figures per N, all read from the command's outputs:

* fps per camera: from the health records (one per camera per ``--health-interval``) inside
  the measured span, ``Δframes / Δwall_time`` between the first and last record; the table
  gives the slowest camera and the mean.
* capture-to-label latency p50 / p95: every health record carries the latency of the newest
  label of its camera (``label_latency_ms``: from the capture of the clip's newest frame to the
  label reaching the health stage on the next frame of that camera); the percentiles are over
  those samples, each label counted once, all cameras pooled (per camera in the JSON). The
  recognizer's own capture-to-inference-done p50 / p95 over the whole run is in the JSON too.
* dropped: frames that never reached the health stage (its ``dropped`` counter, frame-index
  gaps: dropped anywhere upstream), summed over cameras, within the measured span.
* CPU %: the monitor process's user + system time over the span (``/proc/PID/stat``; 100 % is
  one core), RSS: its resident memory at the end of the span (``/proc/PID/status``).

Stop rule: N stops growing once the latency bound breaks,
``p95 > window span + 1.5 × inference time``, where the window span is the clip the model sees
(``ClipSpec.window_frames_at(25) / 25`` s of the config's test pipeline) and the inference time
is one engine call, ``infer_p50_ms`` of the recognizer in ``--metrics`` (per clip) times the
clips per call (``min(N, --batch-size)``); or once the slowest camera falls below 90 % of 25 fps.
The machine's load average is recorded beside every row. All servers and the monitor are
stopped at the end, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks.common import cpu_name, print_table, write_json
from tests.media import RtspServer, make_video

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "configs/demo/demo_slowonly_r18_synthetic.py"
CAMERA_FPS = 25
CAMERA_SIZE = (1280, 720)
FPS_FLOOR = 0.9  # a camera below this share of CAMERA_FPS is not kept up with
COLUMNS = [
    "cameras", "fps_min", "fps_mean", "label_p50_ms", "label_p95_ms", "bound_ms",
    "dropped", "clips_per_cam_s", "stale_pct", "cpu_pct", "rss_mb", "infer_ms", "load1", "verdict",
]  # fmt: skip


@dataclass(frozen=True)
class Model:
    """How the monitor opens its recognizer.

    Attributes:
        args: the model flags passed to ``python -m stream.rtsp``.
        window_s: seconds of stream one clip spans at :data:`CAMERA_FPS`.
        batch_size: clips per engine call (``--batch-size``).
    """

    args: tuple[str, ...]
    window_s: float
    batch_size: int


def model_for(
    config: Path,
    checkpoint: str | None = None,
    label_file: str | None = None,
    *,
    backend: str = "auto",
    batch_size: int = 4,
    cfg_options: Sequence[str] = (),
) -> Model:
    """The monitor's model flags and the window span of ``config``'s test pipeline."""
    from engines.config import load_config

    spec = load_config(config, parse_cfg_options(cfg_options)).clip
    if spec is None:
        raise SystemExit(f"--config {config}: no test_pipeline; the window span is unknown")
    args = ["--config", str(config), "--backend", backend, "--batch-size", str(batch_size)]
    args += ["--checkpoint", checkpoint] if checkpoint else []
    args += ["--label-file", label_file] if label_file else []
    args += ["--cfg-options", *cfg_options] if cfg_options else []
    return Model(tuple(args), spec.window_frames_at(CAMERA_FPS) / CAMERA_FPS, batch_size)


def parse_cfg_options(raw: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings parsed as the monitor parses its ``--cfg-options``."""
    from engines.cli import CfgOptionsAction

    parser = argparse.ArgumentParser(prog="--cfg-options")
    parser.add_argument("--cfg-options", nargs="+", action=CfgOptionsAction, default={})
    return dict(parser.parse_args(["--cfg-options", *raw]).cfg_options) if raw else {}


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete JSON lines of a file being appended to (a half-written last line is skipped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            records.append(json.loads(line))
    return records


@contextlib.contextmanager
def cameras(clip: Path, n: int) -> Iterator[list[str]]:
    """``n`` RTSP servers looping ``clip`` on 127.0.0.1; all stopped on leaving, whatever happens."""
    with contextlib.ExitStack() as stack:
        urls = []
        for i in range(n):
            server = stack.enter_context(RtspServer(clip, mount=f"/cam{i}"))
            urls.append(server.url)
        yield urls


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored and children inherit that; the monitor
    # is stopped with SIGINT (its clean stop: metrics written), so it must not ignore it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def monitor(cmd: Sequence[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run the monitor command; on leaving, SIGINT it (then SIGKILL) if it still runs."""
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            list(cmd), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True, preexec_fn=_default_sigint,
        )  # fmt: skip
        try:
            yield proc
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)


def _running(proc: subprocess.Popen[bytes], log_path: Path) -> None:
    if proc.poll() is not None:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"stream.rtsp exited with code {proc.returncode}:\n{tail}")


def measure(
    n: int, clip: Path, model: Model, work: Path, *, seconds: float, warmup: float,
    health_interval: float = 1.0, start_timeout: float = 180.0,
) -> dict[str, Any]:  # fmt: skip
    """Run the monitor on ``n`` cameras and measure it (see the module docstring).

    Returns:
        One row: the table's columns plus ``per_camera`` (fps, label p50/p95, dropped of each),
        the recognizer's own counters from ``--metrics`` and the window/inference terms of the bound.

    Raises:
        RuntimeError: If a server or the monitor fails, or the cameras do not all stream within
            ``start_timeout`` seconds.
    """
    work.mkdir(parents=True, exist_ok=True)
    health, metrics, log_path = work / f"health_{n}.jsonl", work / f"metrics_{n}.json", work / f"rtsp_{n}.log"
    for path in (health, metrics):
        path.unlink(missing_ok=True)
    with cameras(clip, n) as urls:
        cmd = [sys.executable, "-m", "stream.rtsp", *model.args, *(a for u in urls for a in ("--source", u)),
               "--health-file", str(health), "--health-interval", str(health_interval),
               "--metrics", str(metrics), "--metrics-interval", "0", "-q"]  # fmt: skip
        with monitor(cmd, log_path) as proc:
            deadline = time.monotonic() + start_timeout
            while True:  # every camera delivers frames
                _running(proc, log_path)
                streaming = {r["source_id"] for r in jsonl(health) if r["frames"] > 0}
                if streaming >= set(urls):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{n} cameras: not all streaming within {start_timeout} s:\n{log_path}")
                time.sleep(0.2)
            time.sleep(warmup)
            _running(proc, log_path)
            t0, cpu0, load0 = time.time(), proc_cpu_s(proc.pid), os.getloadavg()[0]
            time.sleep(seconds)
            _running(proc, log_path)
            t1, cpu1, rss, load1 = time.time(), proc_cpu_s(proc.pid), proc_rss_mb(proc.pid), os.getloadavg()[0]
            time.sleep(health_interval * 1.5)  # the record that closes the span
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
    report = json.loads(metrics.read_text()) if metrics.exists() else {}
    rec = report.get("stages", {}).get("recognizer", {})
    per_camera = [camera_figures(jsonl(health), url, t0, t1 + health_interval) for url in urls]
    samples = [s for c in per_camera for s in c.pop("label_samples_ms")]
    fps = [c["fps"] for c in per_camera]
    infer_ms = rec.get("infer_p50_ms")
    window_ms = model.window_s * 1000
    call_ms = None if infer_ms is None else infer_ms * min(n, model.batch_size)
    row: dict[str, Any] = {
        "cameras": n,
        "fps_min": min(fps),
        "fps_mean": float(np.mean(fps)),
        "label_p50_ms": _pct(samples, 50),
        "label_p95_ms": _pct(samples, 95),
        "bound_ms": None if call_ms is None else window_ms + 1.5 * call_ms,
        "dropped": sum(c["dropped"] for c in per_camera),
        "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
        "rss_mb": rss,
        "infer_ms": infer_ms,
        "load1": round((load0 + load1) / 2, 2),
        "window_ms": window_ms,
        "engine_call_ms": call_ms,
        "label_samples": len(samples),
        **clip_rates(rec, n),
        "seconds": round(t1 - t0, 2),
        "recognizer": rec,
        "per_camera": per_camera,
    }
    row["verdict"] = verdict(row)
    return row


def clip_rates(rec: dict[str, Any], n: int) -> dict[str, float | None]:
    """Clips scored per camera per second, and the share of due clips dropped as stale, over the whole run.

    Live recognition scores the newest clip of each camera and drops older waiting ones, so a
    machine past its capacity still shows full fps and a bounded latency but scores fewer
    clips: these two say how many labels each camera really gets.
    """
    clips, stale, frames, fps = (rec.get(k) for k in ("clips", "dropped_clips", "frames", "fps"))
    if not clips or not frames or not fps:
        return {"clips_per_cam_s": None, "stale_pct": None}
    return {
        "clips_per_cam_s": clips / (frames / fps) / n,
        "stale_pct": 100 * (stale or 0) / (clips + (stale or 0)),
    }


def camera_figures(records: list[dict[str, Any]], url: str, t0: float, t1: float) -> dict[str, Any]:
    """fps, dropped frames and label latency samples of one camera from its health records in ``[t0, t1]``."""
    mine = [r for r in records if r["source_id"] == url and t0 <= r["wall_time"] <= t1]
    if len(mine) < 2:
        raise RuntimeError(f"{url}: {len(mine)} health records in the measured span; expected a few")
    first, last = mine[0], mine[-1]
    # A record repeats its camera's newest label latency until a newer label comes: a repeated
    # value is the same label, counted once (a camera whose labels stall gets few samples).
    values = [r["label_latency_ms"] for r in mine]
    samples = [v for prev, v in itertools.pairwise(values) if v is not None and v != prev]
    return {
        "source": url,
        "fps": (last["frames"] - first["frames"]) / (last["wall_time"] - first["wall_time"]),
        "dropped": last["dropped"] - first["dropped"],
        "disconnects": last["disconnects"] - first["disconnects"],
        "label_p50_ms": _pct(samples, 50),
        "label_p95_ms": _pct(samples, 95),
        "label_samples_ms": samples,
    }


def _pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def verdict(row: dict[str, Any]) -> str:
    """``ok``, or why this N is past what the machine keeps up with."""
    floor = FPS_FLOOR * CAMERA_FPS
    why = []
    if row["fps_min"] < floor:
        why.append(f"fps<{floor:g}")
    if row["label_p95_ms"] is None:
        why.append("no labels")
    elif row["bound_ms"] is not None and row["label_p95_ms"] > row["bound_ms"]:
        why.append("p95>bound")
    return ",".join(why) or "ok"


def plot(rows: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """fps and clips scored per camera, and label latency p95, against N, as a PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if "fps_min" in r]  # a failed N has no figures
    n = [r["cameras"] for r in rows]
    fig, left = plt.subplots(figsize=(7, 4.2), dpi=120)
    left.plot(n, [r["fps_min"] for r in rows], "o-", color="tab:blue", label="fps, slowest camera")
    left.plot(n, [r["fps_mean"] for r in rows], "o--", color="tab:cyan", label="fps, mean")
    left.axhline(FPS_FLOOR * CAMERA_FPS, color="tab:blue", lw=0.8, ls=":", label=f"{FPS_FLOOR:.0%} of {CAMERA_FPS}")
    scored = [(c, r["clips_per_cam_s"]) for c, r in zip(n, rows, strict=True) if r.get("clips_per_cam_s") is not None]
    if scored:  # how many labels each camera really gets (live recognition drops stale clips)
        left.plot(*zip(*scored, strict=True), "^-", color="tab:green", label="clips scored/s per camera")
    left.set_xscale("log", base=2)
    left.set_xticks(n, [str(v) for v in n])
    left.set_xlabel("cameras")
    left.set_ylabel("per camera per second")
    left.set_ylim(bottom=0)
    right = left.twinx()
    right.plot(n, [r["label_p95_ms"] for r in rows], "s-", color="tab:red", label="label latency p95")
    right.plot(n, [r["bound_ms"] for r in rows], "s:", color="tab:red", lw=0.8, label="bound")
    right.set_ylabel("ms")
    right.set_ylim(bottom=0)
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    left.legend(handles=handles, fontsize=7, loc="center left")
    left.set_title(title, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    print(f"wrote {path}")


def camera_counts(max_cameras: int) -> list[int]:
    """1, 2, 4, ... up to ``max_cameras`` (included even when not a power of two)."""
    counts = [1]
    while counts[-1] * 2 <= max_cameras:
        counts.append(counts[-1] * 2)
    return counts if counts[-1] == max_cameras else [*counts, max_cameras]


def run(
    counts: Sequence[int], model: Model, work: Path, *, seconds: float, warmup: float, stop_on_break: bool = True,
    health_interval: float = 1.0, size: tuple[int, int] = CAMERA_SIZE, start_timeout: float = 180.0,
) -> list[dict[str, Any]]:  # fmt: skip
    """Measure each N in ``counts`` (stopping after the first that breaks, with ``stop_on_break``).

    An N whose measurement fails after the first one (cameras not all streaming, the monitor
    exiting) gets a row with verdict ``failed`` and the ``error``, and ends the curve.

    The cameras loop a 10 s clip of ``size`` at :data:`CAMERA_FPS` (a keyframe every second),
    written into ``work`` by :func:`tests.media.make_video`.
    """
    clip = work / f"cam_{size[0]}x{size[1]}_{CAMERA_FPS}.mp4"
    if not clip.exists():
        make_video(clip, frames=10 * CAMERA_FPS, fps=CAMERA_FPS, size=size, gop=CAMERA_FPS)
    rows: list[dict[str, Any]] = []
    for n in counts:
        try:
            row = measure(
                n, clip, model, work, seconds=seconds, warmup=warmup, health_interval=health_interval,
                start_timeout=start_timeout,
            )  # fmt: skip
        except RuntimeError as exc:  # e.g. the cameras never all stream: a break too, with its reason kept
            if not rows:
                raise
            row = {"cameras": n, "verdict": "failed", "error": str(exc)[-2000:]}
        rows.append(row)
        print(f"{n} cameras: {row['verdict']}", flush=True)
        if row["verdict"] == "failed" or (stop_on_break and row["verdict"] != "ok"):
            break
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-cameras", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30, help="measured seconds per N")
    parser.add_argument("--warmup", type=float, default=10, help="seconds after every camera streams")
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG)
    parser.add_argument("--checkpoint", help="default: the config's load_from")
    parser.add_argument("--label-file", help="default: the config's label_file")
    parser.add_argument("--random-weights", action="store_true", help="seeded random weights instead of a checkpoint")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--batch-size", type=int, default=4, help="clips per engine call (the monitor's default)")
    parser.add_argument("--health-interval", type=float, default=1.0, help="seconds between health records")
    parser.add_argument(
        "--start-timeout", type=float, default=180.0,
        help="seconds for every camera to stream, the engine build included (default 180; a first TSN-R50 "
        "build with precision auto takes longer)",
    )  # fmt: skip
    parser.add_argument("--keep-going", action="store_true", help="measure every N, also past the first break")
    parser.add_argument("--json", default="results/streams.json", help="where to write the results ('' for none)")
    parser.add_argument("--plot", default="results/streams.png", help="where to write the PNG ('' for none)")
    args = parser.parse_args(argv)
    if args.max_cameras < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--max-cameras >= 1, --seconds > 0 and --warmup >= 0 expected")
    # SIGTERM unwinds like Ctrl-C, so the servers and the monitor are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    with tempfile.TemporaryDirectory(prefix="streams_") as tmp:
        checkpoint, label_file = args.checkpoint, args.label_file
        if args.random_weights:
            from benchmarks.recognition import random_weights
            from engines.config import read_config

            cfg = read_config(args.config, parse_cfg_options(args.cfg_options))
            checkpoint, label_file = (str(p) for p in random_weights(cfg, Path(tmp)))
        model = model_for(
            args.config, checkpoint, label_file, backend=args.backend, batch_size=args.batch_size,
            cfg_options=args.cfg_options,
        )  # fmt: skip
        rows = run(
            camera_counts(args.max_cameras), model, Path(tmp), seconds=args.seconds, warmup=args.warmup,
            stop_on_break=not args.keep_going, health_interval=args.health_interval,
            start_timeout=args.start_timeout,
        )  # fmt: skip
    cpu = cpu_name()
    print(f"{cpu}; {CAMERA_SIZE[0]}x{CAMERA_SIZE[1]} H.264 at {CAMERA_FPS} fps per camera; {args.config.name}")
    print(f"bound = window {model.window_s * 1000:.0f} ms + 1.5 x engine call (infer_p50_ms x min(N, batch))")
    first = (rows[0].get("recognizer") or {}) if rows else {}
    print(f"engine precision {first.get('precision')}, frame-reuse pair {first.get('reuse_precision')}")
    print_table(rows, COLUMNS)
    if args.plot:
        plot(rows, Path(args.plot), f"stream.rtsp, {args.config.name}, {cpu}")
    write_json(
        args.json,
        {
            "benchmark": "streams", "cpu": cpu, "config": str(args.config), "random_weights": args.random_weights,
            "seconds": args.seconds, "warmup": args.warmup, "camera": {"size": CAMERA_SIZE, "fps": CAMERA_FPS},
            "window_ms": model.window_s * 1000, "rows": rows,
        },
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
