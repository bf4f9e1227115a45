"""Several videos through one engine, as MMAction2 1.2's ``demo/demo_inferencer.py`` (``MMAction2Inferencer``).

Each video is sampled as ``stream.demo`` samples it (:func:`pipelines.video_demo.sample_video`)
with the test pipeline changed as MMAction2's ``ActionRecogInferencer`` changes it: ``ThreeCrop``
and ``TenCrop`` become ``CenterCrop``, and a ``Recognizer3D``'s ``SampleFrames`` takes one clip
(``num_clips=1``). The samples go through the engine ``--batch-size`` videos at a time. The
predictions are MMAction2's inferencer result::

    {"predictions": [{"rec_labels": [[top_class]], "rec_scores": [[score_0, ..., score_n]]}, ...]}

one entry per video in input order (scores as the head gives them: probabilities with
``average_clips='prob'``), printed as Python prints the dict (``--print-result``) and written
as JSON (``--pred-out-file``, whole or not at all). ``--vid-out-dir`` gets one video per input,
``NAME.mp4`` for input ``NAME.*``, with the top label drawn on every frame, at 30 fps as
MMAction2 writes it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError
from core.files import write_text
from engines.clip_spec import ClipSpec, find_pipeline
from engines.config import load_config, read_config
from pipelines.clip_buffer import Clip
from pipelines.graphs import VIDEO_SUFFIXES, DrawParams, ModelParams, OutputParams, video_input, with_outputs
from pipelines.recognizer import Recognizer
from pipelines.video_demo import AttachPrediction, VideoLabels, sample_video
from stream.annotate import AnnotateStage
from stream.annotate.labels import LabelAnnotator
from stream.cli import check_output_paths
from stream.errors import SourceNotFound
from stream.sources import FileSource
from stream.stage import Stage

log = logging.getLogger(__name__)

#: The frame rate ``ActionRecogInferencer.visualize`` writes its videos at.
VIS_FPS = 30.0
#: What ``--pred-out-file`` may be (MMAction2 also dumps YAML and pickle; pickle is never written here).
PRED_SUFFIXES = (".json",)


@dataclass(frozen=True)
class InferencerParams:
    """``python -m stream.inferencer``'s arguments (demo_inferencer.py's)."""

    inputs: tuple[Path, ...]
    model: ModelParams
    vid_out_dir: Path | None = None
    show: bool = False
    print_result: bool = False
    pred_out_file: Path | None = None
    draw: DrawParams = field(default_factory=DrawParams)


def expand_inputs(inputs: Sequence[Path]) -> list[Path]:
    """The videos of ``inputs``: files as given, folders as their video files (sorted by name).

    Raises:
        SourceNotFound: If an input does not exist or a folder holds no video.
    """
    videos: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise SourceNotFound(
                    f"inputs {path}: a folder without video files ({', '.join(VIDEO_SUFFIXES)}); "
                    "demo_inferencer.py reads videos, not frame folders"
                )
            videos += found
        elif path.is_file():
            videos.append(path)
        else:
            raise SourceNotFound(f"inputs {path}: no such video file or folder")
    return videos


def inferencer_options(config: Path, cfg_options: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg_options`` plus the test-pipeline changes of MMAction2's ``ActionRecogInferencer``.

    Raises:
        ModelConfigError: If the config does not load.
    """
    cfg = read_config(config, cfg_options)
    key = "test_pipeline" if cfg.get("test_pipeline") is not None else "test_dataloader.dataset.pipeline"
    options = dict(cfg_options)
    is_3d = (cfg.get("model") or {}).get("type") == "Recognizer3D"
    for i, step in enumerate(find_pipeline(cfg) or []):
        kind = step.get("type") if isinstance(step, Mapping) else None
        if kind in ("ThreeCrop", "TenCrop"):
            options[f"{key}.{i}.type"] = "CenterCrop"
        elif kind == "SampleFrames" and is_3d and step.get("num_clips", 1) != 1:
            options[f"{key}.{i}.num_clips"] = 1
    return options


def prediction(scores: np.ndarray) -> dict[str, list[list[Any]]]:
    """One video's entry of MMAction2's inferencer result: ``pred2dict``, wrapped as ``MMAction2Inferencer`` does."""
    row = np.asarray(scores, np.float32)
    return {"rec_labels": [[int(np.argmax(row))]], "rec_scores": [[float(v) for v in row]]}


def _input_key(spec: ClipSpec, frame_size: tuple[int, int] | None) -> tuple[int, ...]:
    """Videos with the same key share an engine input shape (the frame size matters only without a fixed size)."""
    if spec.fixed_hw is not None or frame_size is None:
        return tuple(spec.fixed_hw or ())
    return spec.input_shape(frame_size[1], frame_size[0])


def run_inferencer(p: InferencerParams) -> dict[str, Any]:
    """Score every video, write the annotated videos and the predictions; returns the result dict.

    Raises:
        ConfigError / SourceNotFound / OutputError: Bad input, before any model work.
        EngineError: The model does not build or the checkpoint does not fit.
    """
    videos = expand_inputs(p.inputs)
    if p.pred_out_file is not None and p.pred_out_file.suffix.lower() not in PRED_SUFFIXES:
        raise ConfigError(f"--pred-out-file {p.pred_out_file}: expected a .json file")
    outputs: dict[str, Path | None] = {"--pred-out-file": p.pred_out_file}
    if p.vid_out_dir is not None:
        outputs.update({f"--vid-out-dir ({v.name})": p.vid_out_dir / f"{v.stem}.mp4" for v in videos})
    check_output_paths(outputs, {**{f"inputs {v}": v for v in videos}, **p.model.paths(positional=True)})
    options = inferencer_options(p.model.config, p.model.cfg_options)
    model = replace(p.model, cfg_options=options)
    spec = load_config(model.config, options).clip
    if spec is None:
        raise ConfigError(f"config {model.config}: no test_pipeline; the inferencer samples videos with it")
    sizes = {v: _frame_size(v) for v in videos}
    recognizers: dict[tuple[int, ...], Recognizer] = {}
    labels: dict[Path, tuple[VideoLabels, int]] = {}
    results: list[dict[str, Any]] = []
    try:
        pending: list[tuple[Path, Clip]] = []
        for i, video in enumerate(videos):
            key = _input_key(spec, sizes[video])
            if key not in recognizers:
                recognizers[key] = model.open(frame_size=sizes[video])
            try:
                clip = sample_video(recognizers[key].spec, video_input(video, False))
            except SourceNotFound as exc:
                raise SourceNotFound(f"inputs {video}: {exc}") from exc
            pending.append((video, clip))
            nxt = videos[i + 1] if i + 1 < len(videos) else None
            if len(pending) == model.batch_size or nxt is None or _input_key(spec, sizes[nxt]) != key:
                recognizer = recognizers[key]
                scores = recognizer.scores([clip for _, clip in pending])
                for (path, clip), row in zip(pending, scores, strict=True):
                    results.append(prediction(row))
                    top = int(np.argmax(row))
                    names = (recognizer.class_names[top],)
                    labels[path] = (VideoLabels(names, (float(row[top]),), clip.frame_idx + 1), top)
                    log.info("%s: %s (%.4f)", path, names[0], float(row[top]))
                pending = []
    finally:
        for recognizer in recognizers.values():
            recognizer.close()
    if p.vid_out_dir is not None or p.show:
        for video in videos:
            _write_video(p, video, *labels[video])
    result = {"predictions": results}
    if p.print_result:
        print(result, flush=True)
    if p.pred_out_file is not None:
        write_text(p.pred_out_file, json.dumps(result))
        log.info("wrote %s (%d predictions)", p.pred_out_file, len(results))
    return result


def _frame_size(video: Path) -> tuple[int, int] | None:
    source = FileSource(video)
    source.setup()  # a broken file fails here, before any model work
    info = source.info
    source.close()
    return (info.width, info.height) if info is not None else None


def _write_video(p: InferencerParams, video: Path, labels: VideoLabels, class_id: int) -> None:
    out = OutputParams(
        out_file=None if p.vid_out_dir is None else p.vid_out_dir / f"{video.stem}.mp4",
        output_fps=VIS_FPS,
        show=p.show,
        drawing_fps=VIS_FPS,
    )
    annotate = LabelAnnotator(top_k=1, font_scale=p.draw.font_scale, font_color=p.draw.font_color)
    stages: list[Stage] = [AttachPrediction(labels.prediction([class_id])), AnnotateStage([annotate])]
    graph = with_outputs(
        [video_input(video, False)()], stages, out, live=False, window="stream.inferencer", include_frames="none"
    )
    report = graph.execute()
    if report.status == "interrupted":
        raise KeyboardInterrupt
