"""Frames/s and per-hop latency of one link: the project's transport vs bare pyzmq vs queue.Queue.

    python benchmarks/transport.py [--frames 300] [--json results/transport.json]

For 720p and 1080p BGR frames over inproc, ipc and tcp-loopback it measures, in one run:

* ``project``: :class:`stream.transport.Sender`/``Receiver`` with full :class:`FramePacket`
  encoding (msgpack header + zero-copy pixels), lossless policy;
* ``bare_zmq``: a PUSH/PULL pair sending an 8-byte timestamp and the pixels with ``copy=False``;
* ``queue``: a ``queue.Queue`` hand-off of the same array (the floor: no transport at all).

Latency is one-way, producer send to consumer receive (same process, monotonic clock),
with the producer paced so queues stay empty; throughput is unpaced.
"""

from __future__ import annotations

import argparse
import functools
import queue
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import print_table, write_json
from stream.packet import EndOfStream, FramePacket
from stream.transport import QueuePolicy, Receiver, Sender

SIZES = {"720p": (720, 1280), "1080p": (1080, 1920)}


def _address(scheme: str, tmp: str, tag: str) -> str:
    return {"inproc": f"inproc://{tag}", "ipc": f"ipc://{tmp}/{tag}", "tcp": "tcp://127.0.0.1:*"}[scheme]


def run_project(ctx: zmq.Context, scheme: str, tmp: str, image: np.ndarray, n: int, pace_s: float) -> list[float]:
    receiver = Receiver(ctx, _address(scheme, tmp, f"p{time.monotonic_ns()}"), QueuePolicy("block", 8))
    lat: list[float] = []

    def produce() -> None:
        sender = Sender(ctx, receiver.address, QueuePolicy("block", 8))
        for i in range(n):
            sender.send(FramePacket(image, "bench", i, i, Fraction(1, 30), time.monotonic_ns()))
            if pace_s:
                time.sleep(pace_s)
        sender.send(EndOfStream("bench"))
        sender.close()

    t = threading.Thread(target=produce)
    t.start()
    while True:
        p = receiver.recv(5000)
        if p is None or isinstance(p, EndOfStream):
            break
        lat.append((time.monotonic_ns() - p.capture_ns) / 1e3)  # type: ignore[union-attr]
    t.join()
    receiver.close()
    return lat


def run_bare(ctx: zmq.Context, scheme: str, tmp: str, image: np.ndarray, n: int, pace_s: float) -> list[float]:
    pull = ctx.socket(zmq.PULL)
    pull.set_hwm(8)
    pull.bind(_address(scheme, tmp, f"b{time.monotonic_ns()}"))
    address = pull.getsockopt_string(zmq.LAST_ENDPOINT)
    lat: list[float] = []

    def produce() -> None:
        push = ctx.socket(zmq.PUSH)
        push.set_hwm(8)
        push.connect(address)
        for _ in range(n):
            push.send(struct.pack("q", time.monotonic_ns()), zmq.SNDMORE)
            push.send(image, copy=False)
            if pace_s:
                time.sleep(pace_s)
        push.send(b"end")
        push.close(linger=-1)

    t = threading.Thread(target=produce)
    t.start()
    while True:
        parts = pull.recv_multipart(copy=False)
        if len(parts) == 1:
            break
        np.frombuffer(parts[1].buffer, np.uint8).reshape(image.shape)
        lat.append((time.monotonic_ns() - struct.unpack("q", parts[0].bytes)[0]) / 1e3)
    t.join()
    pull.close(0)
    return lat


def run_queue(image: np.ndarray, n: int, pace_s: float) -> list[float]:
    q: queue.Queue = queue.Queue(maxsize=8)
    lat: list[float] = []

    def produce() -> None:
        for _ in range(n):
            q.put((time.monotonic_ns(), image))
            if pace_s:
                time.sleep(pace_s)
        q.put(None)

    t = threading.Thread(target=produce)
    t.start()
    while (item := q.get()) is not None:
        lat.append((time.monotonic_ns() - item[0]) / 1e3)
    t.join()
    return lat


def measure(fn: Callable[[float], list[float]], n: int) -> tuple[float, float, float]:
    """(frames/s unpaced, p50 latency µs paced, p95 latency µs paced)."""
    fn(0.0)  # warm-up
    start = time.perf_counter()
    got = fn(0.0)
    fps = len(got) / (time.perf_counter() - start)
    paced = np.asarray(fn(0.002)[5:])
    return fps, float(np.percentile(paced, 50)), float(np.percentile(paced, 95))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300, help="frames per measurement")
    parser.add_argument("--sizes", default="720p,1080p")
    parser.add_argument("--schemes", default="inproc,ipc,tcp")
    parser.add_argument("--json", default="results/transport.json", help="where to write the results ('' for none)")
    args = parser.parse_args(argv)
    rows = []
    ctx = zmq.Context()
    with tempfile.TemporaryDirectory() as tmp:
        for size_name in args.sizes.split(","):
            image = np.random.default_rng(0).integers(0, 255, (*SIZES[size_name], 3), dtype=np.uint8)
            n = args.frames
            q_fps, q_p50, q_p95 = measure(functools.partial(run_queue, image, n), n)
            rows.append(dict(size=size_name, scheme="-", impl="queue", fps=q_fps, p50_us=q_p50, p95_us=q_p95))
            for scheme in args.schemes.split(","):
                m = max(30, n // 10) if scheme != "inproc" else n
                b = measure(functools.partial(run_bare, ctx, scheme, tmp, image, m), m)
                p = measure(functools.partial(run_project, ctx, scheme, tmp, image, m), m)
                for impl, (fps, p50, p95) in (("bare_zmq", b), ("project", p)):
                    rows.append(dict(size=size_name, scheme=scheme, impl=impl, fps=fps, p50_us=p50, p95_us=p95))
                rows[-1]["fps_vs_bare"] = p[0] / b[0]
                rows[-1]["p50_vs_bare"] = p[1] / b[1]
    ctx.term()
    print_table(rows, ["size", "scheme", "impl", "fps", "p50_us", "p95_us", "fps_vs_bare", "p50_vs_bare"])
    goals = [r for r in rows if r["impl"] == "project" and r["scheme"] == "inproc"]
    for r in goals:
        ok = r["p50_vs_bare"] <= 1.5 and r["p50_us"] < 200
        print(
            f"goal {r['size']} inproc: p50 {r['p50_us']:.0f} µs, {r['p50_vs_bare']:.2f}× bare"
            f" -> {'met' if ok else 'NOT met'}"
        )
    write_json(args.json, {"benchmark": "transport", "frames": args.frames, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
