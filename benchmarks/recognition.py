"""Long-video labelling: a sequential demo-style loop vs this project's pipeline, one run.

    python benchmarks/recognition.py [--config CFG --checkpoint CKPT] [--video V] [--json OUT]
    python benchmarks/recognition.py --config CFG --random-weights [--cfg-options K=V ...]

On the same video and model it measures frames/s of

(i)   a sequential loop equivalent to MMAction2's ``long_video_demo.py``: decode one frame,
      push it into the window, when a clip is due preprocess it and run the **torch eager**
      model, draw the label, encode the frame; one frame at a time, one thread;
(ii)  the same loop with the compiled engine (ONNX Runtime / OpenVINO) instead of torch;
(iii) this project's long-video labelling: the threaded ``Pipeline`` (decode, recognition
      with clips batched across windows, annotate, encode, each in its own thread), every
      clip on the full engine (``--no-reuse``);
(iv)  (iii) with frame reuse (TSN-style models on ONNX Runtime / OpenVINO, at the precision
      ``--precision`` picks for the frame + head engines, see :mod:`pipelines.frame_reuse`):
      frames shared by overlapping windows go through the backbone once; in fp32 its labels
      must equal (iii)'s (``same_as_iii``; in bf16 they may differ by rounding, and
      ``max_score_diff_vs_iii`` says by how much); ``backbone_frames`` counts the frame
      views the backbone ran on;
(v)   when MMAction2 is installed (``--no-mmaction`` skips it): MMAction2's own model through
      its own API, in ``long_video_demo.py``'s loop: ``mmaction.apis.init_recognizer`` with the
      same config and checkpoint, OpenCV decoding, a deque of ``clip_len × num_clips`` RGB frames,
      the test pipeline without its sampling and decoding steps, ``model.test_step``, then
      ``int(window × stride)`` frames popped; label drawn, frame encoded.

All sample the same clips (``--stride`` of the window, as the long-video demo), so their
labels should be identical (the table shows it; (v) decodes with OpenCV, whose pixels may
differ from PyAV's by rounding). Defaults: the shipped demo model on the
shipped demo video. ``--random-weights`` measures any config without a checkpoint (seeded
random weights saved in MMAction2's layout, classes named ``class_<i>``), e.g. TSN-R50 with
its validation sampling (8 segments, one centre crop) as a long-video job would run it::

    python benchmarks/recognition.py --random-weights \
        --config configs/recognition/tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x8-100e_kinetics400-rgb.py \
        --cfg-options "test_pipeline.0.num_clips=8" "test_pipeline.2.type=CenterCrop" \
                      "test_pipeline.2.crop_size=224"

Goals on this CPU: (iii) ≥ 5× (i) and ≥ 1.2× (ii).
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmengine.config import DictAction

from benchmarks.common import print_table, write_json
from engines.checkpoint import save_checkpoint
from engines.config import read_config
from engines.export import build_recognizer
from engines.models import build
from pipelines.clip_buffer import ClipBuffer
from pipelines.recognition import RecognitionParams, RecognitionStage
from pipelines.recognizer import Recognizer, open_recognizer
from stream.annotate import AnnotateStage
from stream.annotate.labels import LabelAnnotator
from stream.packet import FramePacket, Prediction
from stream.runner import Pipeline
from stream.sinks import VideoWriterSink
from stream.sources import FileSource
from stream.stage import Outputs, Stage

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "configs/demo/demo_slowonly_r18_synthetic.py"


class Collect(Stage):
    """Records (frame_idx, top-1 label) of every prediction; passes frames on."""

    def __init__(self) -> None:
        super().__init__("collect")
        self.labels: list[tuple[int, str]] = []
        self.scores: list[float] = []

    def process(self, packet: FramePacket) -> Outputs:
        self.labels += [(packet.frame_idx, p.names[0] if p.names else "") for p in packet.predictions]
        self.scores += [float(p.scores[0]) if len(p.scores) else float("nan") for p in packet.predictions]
        return packet


def sequential(video: Path, out: Path, recognizer: Recognizer, infer: Any, stride: float) -> list[tuple[int, str]]:
    """The demo-style loop: everything in one thread, one frame at a time."""
    source = FileSource(video)
    buffer = ClipBuffer(recognizer.spec, stride=stride)
    labels = LabelAnnotator(top_k=1)
    sink = VideoWriterSink(out)
    source.setup()
    sink.setup()
    found: list[tuple[int, str]] = []
    for packet in source:
        if not isinstance(packet, FramePacket):
            continue
        clip = buffer.poll() if buffer.push(packet) else None
        if clip:
            scores = infer(clip.to_input(recognizer.spec, normalize=recognizer.normalize)[None])
            top = int(np.argmax(scores[0]))
            name = recognizer.class_names[top]
            packet.predictions.append(
                Prediction(
                    np.array([top]),
                    np.array([scores[0, top]], np.float32),
                    (name,),
                    clip.start_s,
                    clip.end_s,
                    clip.capture_ns,
                )
            )
            found.append((packet.frame_idx, name))
        packet.image = labels.annotate(packet.image.copy(), packet)
        sink.process(packet)
    sink.finish()
    sink.close()
    source.close()
    return found


def threaded(
    video: Path, out: Path, recognizer: Recognizer, stride: float, batch: int, collect: Collect | None = None
) -> list[tuple[int, str]]:
    collect = collect or Collect()
    params = RecognitionParams(stride=stride, top_k=1, batch_size=batch)
    stages: list[Stage] = [
        RecognitionStage(recognizer, params),
        collect,
        AnnotateStage([LabelAnnotator(top_k=1)]),
        VideoWriterSink(out),
    ]
    Pipeline([FileSource(video)], stages, metrics_interval_s=0).run()
    return collect.labels


def mmaction2_loop(
    video: Path, out: Path, config: str, cfg_options: dict[str, Any], checkpoint: Path, names: list[str], stride: float
) -> Any:
    """MMAction2's model and API in ``long_video_demo.py``'s loop (see the module docstring); None without MMAction2.

    Returns:
        A function running the loop and giving ``(frame_idx, top-1 label)`` per prediction.
    """
    import cv2

    try:
        from tests.engines.mmaction_ref import import_reference, mmaction_registry

        mmaction_registry()  # registers MMAction2's modules (and works around its 1.2 wheel's missing DRN)
        init_recognizer = import_reference("mmaction.apis").init_recognizer
        dataset = import_reference("mmengine.dataset")
        mm_config = import_reference("mmengine.config").Config
    except Exception as exc:  # pytest's Skipped when MMAction2 is missing: no column then
        print(f"(v) skipped: MMAction2 is not usable here ({type(exc).__name__}: {exc})")
        return None
    cfg = mm_config.fromfile(config)
    cfg.merge_from_dict(cfg_options)
    model = init_recognizer(cfg, str(checkpoint), device="cpu")
    excluded = {"OpenCVInit", "OpenCVDecode", "DecordInit", "DecordDecode", "PyAVInit", "PyAVDecode", "RawFrameDecode"}
    data: dict[str, Any] = {"img_shape": None, "modality": "RGB", "label": -1}
    steps, sample_length = [], 0
    for step in model.cfg.test_pipeline:
        if "SampleFrames" in step["type"]:
            sample_length = step["clip_len"] * step["num_clips"]
            data["num_clips"], data["clip_len"] = step["num_clips"], step["clip_len"]
        elif step["type"] not in excluded:
            steps.append(step)
    pipeline = dataset.Compose(steps)

    def run() -> list[tuple[int, str]]:
        cap = cv2.VideoCapture(str(video))
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
        queue: collections.deque[np.ndarray] = collections.deque(maxlen=sample_length)
        found: list[tuple[int, str]] = []
        text = ""
        index = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            queue.append(np.array(frame)[:, :, ::-1])
            if len(queue) == sample_length:
                cur = data.copy()
                cur["img_shape"] = queue[0].shape[:2]
                cur["imgs"] = list(np.array(queue))
                batch = dataset.pseudo_collate([pipeline(cur)])
                with torch.no_grad():
                    scores = model.test_step(batch)[0].pred_score.numpy()
                if stride > 0:
                    for _ in range(int(sample_length * stride)):
                        queue.popleft()
                top = int(np.argmax(scores))
                text = f"{names[top]}: {round(float(scores[top]), 2)}"
                found.append((index, names[top]))
            if text:
                cv2.putText(frame, text, (0, 40), cv2.FONT_HERSHEY_COMPLEX_SMALL, 1, (255, 255, 255), 1, 1)
            writer.write(frame)
            index += 1
        cap.release()
        writer.release()
        return found

    return run


def random_weights(cfg: Any, tmp: Path) -> tuple[Path, Path]:
    """Seeded random weights for ``cfg.model`` in MMAction2's checkpoint layout, and a label file."""
    torch.manual_seed(0)
    model = build(cfg.model)
    checkpoint = save_checkpoint(model, tmp / "random_weights.pth")
    labels = tmp / "labels.txt"
    labels.write_text("".join(f"class_{i}\n" for i in range(cfg.model.cls_head.num_classes)))
    return checkpoint, labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(DEMO_CONFIG))
    parser.add_argument("--checkpoint", help="default: the config's load_from")
    parser.add_argument("--label-file", help="default: the config's label_file")
    parser.add_argument("--video", help="default: the config's demo_video")
    parser.add_argument("--backend", default="auto", help="engine backend for (ii) and (iii)")
    parser.add_argument("--precision", default="auto", help="engine precision: auto, fp32, fp16, bf16 or int8")
    parser.add_argument("--stride", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch / engine threads (default: all cores)")
    parser.add_argument("--random-weights", action="store_true", help="seeded random weights instead of a checkpoint")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={}, help="config overrides")
    parser.add_argument("--no-mmaction", action="store_true", help="skip (v), MMAction2's own model and API")
    parser.add_argument("--json", default="results/recognition.json", help="where to write the results ('' for none)")
    args = parser.parse_args(argv)
    cfg = read_config(args.config, args.cfg_options)
    video = Path(args.video or read_config(DEMO_CONFIG).get("demo_video"))
    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp())
    checkpoint, label_file = args.checkpoint, args.label_file
    if args.random_weights:
        checkpoint, label_file = random_weights(cfg, tmp)
    opened = [
        open_recognizer(
            args.config,
            checkpoint,
            backend=args.backend,
            precision=args.precision,
            max_batch=args.batch_size,
            cfg_options=args.cfg_options,
            label_file=label_file,
            num_threads=args.threads,
            reuse=reuse,
        )
        for reuse in (False, True)
    ]
    recognizer, reusing = opened
    checkpoint = recognizer.engine.manifest.source["checkpoint"]
    model, _ = build_recognizer(cfg.model, checkpoint)

    def torch_infer(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(batch)).numpy()

    engine_infer = recognizer.engine.infer
    collected = {"iii": Collect(), "iv": Collect()}
    runs = {
        "(i) sequential, torch eager": lambda: sequential(video, tmp / "a.mp4", recognizer, torch_infer, args.stride),
        "(ii) sequential, engine": lambda: sequential(video, tmp / "b.mp4", recognizer, engine_infer, args.stride),
        "(iii) pipeline, engine": lambda: threaded(
            video, tmp / "c.mp4", recognizer, args.stride, args.batch_size, collected["iii"]
        ),
    }
    if reusing.reuse is not None:
        runs["(iv) pipeline, engine, frame reuse"] = lambda: threaded(
            video, tmp / "d.mp4", reusing, args.stride, args.batch_size, collected["iv"]
        )
    else:
        print("(iv) skipped: frame reuse does not apply to this model / engine (see the log)")
    mm_run = None
    if not args.no_mmaction:
        mm_run = mmaction2_loop(
            video, tmp / "e.mp4", args.config, args.cfg_options, Path(checkpoint), recognizer.class_names, args.stride
        )
    if mm_run is not None:
        runs["(v) MMAction2 API loop, torch"] = mm_run
    dummy = np.zeros((1, *recognizer.engine.manifest.input_shape), np.float32)
    for warm in (torch_infer, engine_infer):  # first calls allocate; keep them out of the timings
        warm(dummy)
    rows: list[dict[str, Any]] = []
    results: dict[str, list[tuple[int, str]]] = {}
    for name, fn in runs.items():
        rec = reusing if "reuse" in name else recognizer
        computed = rec.backbone_frames
        start = time.perf_counter()
        results[name] = fn()
        row: dict[str, Any] = {"run": name, "seconds": time.perf_counter() - start, "clips": len(results[name])}
        if name.startswith(("(iii)", "(iv)")):
            row["backbone_frames"] = rec.backbone_frames - computed
        rows.append(row)
    source = FileSource(video)
    source.setup()
    frames = (source.info.frames if source.info else None) or 0
    source.close()
    reference = results[rows[0]["run"]]
    mm_seconds = next((r["seconds"] for r in rows if r["run"].startswith("(v)")), None)
    for row in rows:
        row["fps"] = frames / row["seconds"]
        row["speedup_vs_i"] = rows[0]["seconds"] / row["seconds"]
        row["speedup_vs_ii"] = rows[1]["seconds"] / row["seconds"]
        row["speedup_vs_mmaction"] = None if mm_seconds is None else mm_seconds / row["seconds"]
        got = results[row["run"]]
        row["labels_identical"] = got == reference
        matching = sum(a == b for a, b in zip(got, reference, strict=False))
        row["label_agreement"] = matching / max(len(reference), len(got), 1)
    reuse_row = next((r for r in rows if r["run"].startswith("(iv)")), None)
    if reuse_row is not None:
        full, reused = collected["iii"], collected["iv"]
        reuse_row["same_as_iii"] = full.labels == reused.labels
        if len(full.scores) == len(reused.scores) and full.scores:
            reuse_row["max_score_diff_vs_iii"] = float(np.max(np.abs(np.subtract(full.scores, reused.scores))))
    print(f"video {video.name}: {frames} frames; backend {recognizer.engine.backend.name}; stride {args.stride}")
    precision = recognizer.engine.manifest.precision
    reuse_precision = reusing.reuse.engines.precision if reusing.reuse is not None else None
    print(f"engine precision {precision}, frame reuse engines {reuse_precision} "
          "(torch eager in (i) is fp32: reduced precision may flip near-tied labels)")  # fmt: skip
    columns = [
        "run", "seconds", "fps", "clips", "backbone_frames", "speedup_vs_i", "speedup_vs_ii", "speedup_vs_mmaction",
        "labels_identical", "label_agreement", "same_as_iii",
    ]  # fmt: skip
    print_table(rows, columns)
    if reuse_row is not None:
        print(f"(iv) vs (iii): labels identical {reuse_row['same_as_iii']}, max |top-1 score difference| "
              f"{reuse_row.get('max_score_diff_vs_iii')}")  # fmt: skip
    ok = rows[2]["speedup_vs_i"] >= 5 and rows[2]["speedup_vs_ii"] >= 1.2 and all(r["labels_identical"] for r in rows)
    print(f"goal (iii) >= 5x (i) and >= 1.2x (ii) with identical labels -> {'met' if ok else 'NOT met'}")
    for rec in opened:
        rec.close()
    write_json(
        args.json,
        {
            "benchmark": "recognition",
            "video": str(video),
            "frames": frames,
            "config": str(args.config),
            "backend": recognizer.engine.backend.name,
            "precision": precision,
            "reuse_precision": reuse_precision,
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
