"""Decode → annotate → encode of a 720p file: threaded runner vs one sequential loop.

    python benchmarks/pipeline.py [--frames 300] [--json results/pipeline.json]

In one run, on the same generated 720p H.264 file, it measures frames/s of

* each step alone (decode only; annotate pre-decoded frames; encode pre-annotated frames),
* the three steps in one sequential loop (what a simple demo script does),
* the same three steps as stages of :class:`stream.runner.Pipeline` (one thread each,
  ZeroMQ inproc links, lossless policy).

Goal: the runner reaches ≥ 90% of the slowest step alone, and beats the sequential loop.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import print_table, write_json
from stream.annotate import AnnotateStage, default_annotators
from stream.packet import FramePacket
from stream.runner import Pipeline
from stream.sinks import VideoWriterSink
from stream.sources import FileSource
from tests.media import make_video


def decode_all(path: Path) -> list[FramePacket]:
    source = FileSource(path)
    source.setup()
    try:
        return [p for p in source if isinstance(p, FramePacket)]
    finally:
        source.close()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--json", default="results/pipeline.json", help="where to write the results ('' for none)")
    args = parser.parse_args(argv)
    n = args.frames
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "in.mp4", frames=n, fps=30, size=(1280, 720)).path
        frames = decode_all(video)  # warm caches, and inputs for the per-step timings

        def decode_only() -> None:
            decode_all(video)

        annotate = AnnotateStage(default_annotators())
        annotated: list[FramePacket] = []

        def annotate_only() -> None:
            annotated.clear()
            annotate.setup()
            annotated.extend(annotate.process(p) for p in frames)  # type: ignore[misc]

        def encode_only() -> None:
            sink = VideoWriterSink(Path(tmp) / "enc.mp4")
            sink.setup()
            for p in annotated:
                sink.process(p)
            sink.finish()
            sink.close()

        def sequential() -> None:
            source = FileSource(video)
            stage = AnnotateStage(default_annotators())
            sink = VideoWriterSink(Path(tmp) / "seq.mp4")
            source.setup()
            stage.setup()
            sink.setup()
            for p in source:
                if isinstance(p, FramePacket):
                    sink.process(stage.process(p))  # type: ignore[arg-type]
            sink.finish()
            for x in (sink, stage, source):
                x.close()

        def threaded() -> None:
            Pipeline(
                [FileSource(video)],
                [AnnotateStage(default_annotators()), VideoWriterSink(Path(tmp) / "run.mp4")],
                metrics_interval_s=0,
            ).run()

        t_decode = timed(decode_only)
        t_annotate = timed(annotate_only)
        t_encode = timed(encode_only)
        t_seq = timed(sequential)
        t_run = timed(threaded)
    rows = [
        {"what": "decode alone", "fps": n / t_decode},
        {"what": "annotate alone", "fps": n / t_annotate},
        {"what": "encode alone", "fps": n / t_encode},
        {"what": "sequential loop", "fps": n / t_seq},
        {"what": "runner (3 threads)", "fps": n / t_run},
    ]
    slowest = min(rows[:3], key=lambda r: r["fps"])
    for r in rows:
        r["vs_slowest_step"] = r["fps"] / slowest["fps"]
        r["vs_sequential"] = r["fps"] / rows[3]["fps"]
    print_table(rows, ["what", "fps", "vs_slowest_step", "vs_sequential"])
    ok = rows[4]["vs_slowest_step"] >= 0.9 and rows[4]["fps"] > rows[3]["fps"]
    print(
        f"goal: runner {rows[4]['vs_slowest_step']:.2f}× the slowest step ({slowest['what']}), "
        f"{rows[4]['vs_sequential']:.2f}× sequential -> {'met' if ok else 'NOT met'}"
    )
    write_json(args.json, {"benchmark": "pipeline", "frames": n, "size": "1280x720", "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
