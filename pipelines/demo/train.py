"""Train the demo recognizer on synthetic actions and write the shipped assets.

Usage::

    python -m pipelines.demo.train --out pipelines/demo/assets [--epochs E] [--quick]

Builds the model of ``configs/demo/demo_slowonly_r18_synthetic.py`` with
:func:`engines.models.build`, renders a balanced training set and a held-out validation
set with :mod:`pipelines.demo.synthetic` (each clip at a random frame rate of 20-30 fps
and a random frame size, sampled and preprocessed exactly as the config's test pipeline
does at inference), trains with AdamW and a warm-up + cosine schedule, and writes:

* ``demo_recognizer.pth``: MMAction2 layout, ``{'state_dict': OrderedDict(...), 'meta':
  {'dataset_meta': {'classes': [...]}, 'epoch', 'trained_by', 'val_top1', ...}}``;
* ``label_map.txt``: one class name per line (MMAction2's label-map format);
* unless ``--no-video``: ``demo.mp4`` and ``demo_gt.json`` (:func:`make_demo_video`), and
  the frame accuracy of the new model on that video (:func:`score_video`).

``--quick`` trains one epoch on a tiny set in a few seconds (a smoke test of the script).
"""

from __future__ import annotations

import os

# Passive OpenMP threads sleep instead of spinning at every barrier. On a machine shared
# with other jobs, spinning threads wait for descheduled peers at each of the network's
# hundreds of small ops: one training step took 7 s instead of 0.9 s on 2 shared cores.
# Takes effect only if torch is not imported yet (as when run with ``python -m``).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import logging
import math
import sys
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.files import atomic_path, write_text
from engines.clip_spec import ClipSpec
from engines.transforms import preprocess, resize_frame
from pipelines.demo import DEMO_CONFIG
from pipelines.demo.synthetic import (
    ACTIONS,
    HFLIP,
    REVERSE,
    VFLIP,
    GroundTruth,
    make_demo_video,
    render_clip,
    render_transition_clip,
)
from stream.errors import ConfigError

logger = logging.getLogger("pipelines.demo.train")

CHECKPOINT_NAME = "demo_recognizer.pth"
LABEL_MAP_NAME = "label_map.txt"
VIDEO_NAME = "demo.mp4"
GT_NAME = "demo_gt.json"
#: Frame sizes (width, height) training clips are rendered at, before the config's resize.
RENDER_SIZES: tuple[tuple[int, int], ...] = ((640, 360), (480, 270), (384, 216), (640, 480), (320, 240))
FPS_RANGE = (20.0, 30.0)
#: Seeds of the training set, the validation set and the demo video: disjoint by construction.
TRAIN_SEED, VAL_SEED, VIDEO_SEED = 1, 2, 0
#: Seed of the training clips that straddle an action change.
TRANSITION_SEED = 3


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters; the defaults train the shipped model (9.3 minutes on 2 shared CPU cores)."""

    epochs: int = 6
    train_clips: int = 3200
    transition_clips: int = 1600
    val_clips: int = 800
    batch_size: int = 16
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_steps: int = 50
    label_smoothing: float = 0.05
    seed: int = 0
    threads: int = 2
    render_sizes: tuple[tuple[int, int], ...] = RENDER_SIZES

    def __post_init__(self) -> None:
        for name in ("epochs", "train_clips", "val_clips", "batch_size", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if not isinstance(self.transition_clips, int) or self.transition_clips < 0:
            raise ValueError(f"transition_clips: expected a non-negative int, got {self.transition_clips!r}")
        if not self.lr > 0:
            raise ValueError(f"lr: expected a positive number, got {self.lr!r}")


QUICK = dict(
    epochs=1, train_clips=16, transition_clips=8, val_clips=8, batch_size=8, warmup_steps=1, render_sizes=((160, 90),)
)


# --------------------------------------------------------------------------- data


def demo_clip_spec(config: str | Path | ClipSpec = DEMO_CONFIG) -> ClipSpec:
    """The runtime's :class:`~engines.clip_spec.ClipSpec` of a demo config, checked for what training assumes.

    Raises:
        ConfigError: If the test pipeline is not one ``SampleFrames`` clip (``NCTHW``) of
            whole frames resized to a fixed size (``Resize(scale=(W, H), keep_ratio=False)``,
            no crop smaller than that).
    """
    spec = config if isinstance(config, ClipSpec) else ClipSpec.from_config(config)
    where = f"{config}: " if not isinstance(config, ClipSpec) else ""
    if spec.sampler != "SampleFrames" or spec.clips_per_sample != 1 or spec.input_format != "NCTHW":
        raise ConfigError(
            f"{where}expected one SampleFrames clip in NCTHW, got {spec.sampler} with "
            f"{spec.clips_per_sample} clips in {spec.input_format}"
        )
    if spec.resize is None or spec.resize.keep_ratio:
        raise ConfigError(
            f"{where}expected Resize(scale=(W, H), keep_ratio=False) of the whole frame, got {spec.resize}"
        )
    if spec.crop != "none" and spec.crop_size != spec.resize.scale:
        raise ConfigError(f"{where}expected no crop (the demo keeps the whole frame), got {spec.crop} {spec.crop_size}")
    return spec


def resize_clip(frames_bgr: Iterable[np.ndarray], spec: ClipSpec) -> np.ndarray:
    """The pipeline's ``Resize`` on every frame (:func:`engines.transforms.resize_frame`): BGR ``(T, H, W, 3)``."""
    return np.stack([resize_frame(frame, spec.resize) for frame in frames_bgr])


def make_clips(
    count: int, spec: ClipSpec, seed: int, sizes: Sequence[tuple[int, int]] = RENDER_SIZES
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``count`` labelled clips, each cut from its window as the runtime cuts a stream.

    Clip ``i`` shows action ``ACTIONS[i % 8]`` (so classes are balanced) in a fresh scene
    drawn from ``numpy.random.default_rng([seed, i])`` at a random frame rate in
    :data:`FPS_RANGE` and a random size from ``sizes``. Of a window of
    ``spec.window_frames`` frames, only those ``spec.sample`` picks (MMAction2's
    ``SampleFrames``) are rendered, then resized by the pipeline's ``Resize``.

    Returns:
        ``(count, clip_len, H, W, 3)`` BGR ``uint8`` clips and ``(count,)`` int64 labels.
    """
    window = spec.window_frames
    indices = spec.sample(window).ravel()
    height, width = spec.output_hw(1, 1)
    clips = np.empty((count, spec.clip_len, height, width, 3), np.uint8)
    labels = np.arange(count, dtype=np.int64) % len(ACTIONS)
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        fps = float(rng.uniform(*FPS_RANGE))
        size = sizes[int(rng.integers(len(sizes)))]
        frames = render_clip(ACTIONS[labels[i]], window, fps, size, rng, frame_indices=indices)
        clips[i] = resize_clip(frames, spec)
    return clips, labels


def make_transition_clips(
    count: int, spec: ClipSpec, seed: int, sizes: Sequence[tuple[int, int]] = RENDER_SIZES
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``count`` windows that straddle an action change, with soft labels.

    In a long video, half of the windows near a boundary show the end of one action and
    the start of the next. Clip ``i`` renders such a window
    (:func:`~pipelines.demo.synthetic.render_transition_clip`: the second action continues
    from where the first left the object) with a fresh scene from
    ``numpy.random.default_rng([seed, i])``, a random frame rate in :data:`FPS_RANGE` and a
    random size from ``sizes``. Action ``ACTIONS[i % 8]`` covers the larger part of the
    window (so the majority labels are balanced), the other action is drawn from the
    remaining seven, and the change falls on a random frame between the first and the last
    sampled frame. The target of each action is the fraction of the window's frames it
    covers: a model that learns it scores a window by how much of it each action fills,
    so the scores of successive windows move linearly across a boundary and the runtime's
    interpolated frame labels (``RecognitionParams(anchor='interpolate')``) switch where
    the action does.

    Returns:
        ``(count, clip_len, H, W, 3)`` BGR ``uint8`` clips and ``(count, 8)`` float32 targets
        (each row sums to 1).
    """
    window = spec.window_frames
    indices = spec.sample(window).ravel()
    height, width = spec.output_hw(1, 1)
    clips = np.empty((count, spec.clip_len, height, width, 3), np.uint8)
    targets = np.zeros((count, len(ACTIONS)), np.float32)
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        fps = float(rng.uniform(*FPS_RANGE))
        size = sizes[int(rng.integers(len(sizes)))]
        major = i % len(ACTIONS)
        minor = int(rng.choice([c for c in range(len(ACTIONS)) if c != major]))
        # The change falls between two sampled frames, so both actions are seen.
        switch = int(rng.integers(int(indices[0]) + 1, int(indices[-1]) + 1))
        first, second = (major, minor) if 2 * switch >= window else (minor, major)
        frames = render_transition_clip(
            ACTIONS[first], ACTIONS[second], switch, window, fps, size, rng, frame_indices=indices
        )
        clips[i] = resize_clip(frames, spec)
        targets[i, first] = switch / window
        targets[i, second] = 1.0 - switch / window
    return clips, targets


def one_hot(labels: np.ndarray, classes: int = len(ACTIONS)) -> np.ndarray:
    """``(N,)`` class indices as ``(N, classes)`` float32 targets."""
    return np.eye(classes, dtype=np.float32)[labels]


def _label_table(mapping: dict[str, str]) -> np.ndarray:
    return np.array([ACTIONS.index(mapping.get(name, name)) for name in ACTIONS], np.int64)


_HFLIP, _VFLIP, _REVERSE = _label_table(HFLIP), _label_table(VFLIP), _label_table(REVERSE)


def _relabel(target: np.ndarray, table: np.ndarray) -> np.ndarray:
    out = np.empty_like(target)
    out[table] = target  # class c's share moves to class table[c]
    return out


def augment(clips: np.ndarray, targets: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random horizontal flips, vertical flips and time reversal, each with the labels it implies.

    A horizontal flip turns ``move_left`` into ``move_right`` and clockwise into
    counter-clockwise; a vertical flip swaps up/down and the rotations; playing a clip
    backwards shows the opposite of every action (and in a transition clip, the actions'
    shares of the window stay as they were).

    Args:
        clips: ``(N, T, H, W, 3)``.
        targets: ``(N, C)`` class probabilities (one-hot for pure clips).
    """
    clips, targets = clips.copy(), targets.copy()
    for i in range(len(clips)):
        if rng.random() < 0.5:
            clips[i], targets[i] = clips[i][:, :, ::-1].copy(), _relabel(targets[i], _HFLIP)
        if rng.random() < 0.5:
            clips[i], targets[i] = clips[i][:, ::-1].copy(), _relabel(targets[i], _VFLIP)
        if rng.random() < 0.5:
            clips[i], targets[i] = clips[i][::-1].copy(), _relabel(targets[i], _REVERSE)
    return clips, targets


def to_inputs(clips: np.ndarray, spec: ClipSpec) -> torch.Tensor:
    """Resized BGR ``uint8`` ``(N, T, H, W, 3)`` to model inputs ``(N, 3, T, H, W)`` float32 (one view each).

    Uses the runtime's own lookup table (:meth:`ClipSpec.lookup_table`: BGR to the
    model's channel order and ``(x - mean) / std`` in float32), so the values equal what
    :func:`engines.transforms.preprocess` gives for the same frames.
    """
    table = torch.from_numpy(spec.lookup_table())
    x = torch.from_numpy(np.ascontiguousarray(clips)).long()
    sources = (2, 1, 0) if spec.bgr_to_rgb else (0, 1, 2)
    return torch.stack([table[c][x[..., c]] for c in sources], dim=1)


# --------------------------------------------------------------------------- model


def build_model(config: str | Path = DEMO_CONFIG) -> tuple[nn.Module, ClipSpec]:
    """The recognizer of ``config`` (built with :func:`engines.models.build`) and its clip spec.

    Raises:
        ModelConfigError: If the config is unreadable or the model does not score 8 classes.
        ConfigError: If its test pipeline is not a demo pipeline (see :func:`demo_clip_spec`).
    """
    from engines.config import load_config
    from engines.errors import ModelConfigError
    from engines.models import build

    cfg = load_config(config)
    spec = demo_clip_spec(config)
    model = build(cfg.model)
    if model.num_classes != len(ACTIONS):
        raise ModelConfigError(
            f"config {config}: model.cls_head.num_classes: expected {len(ACTIONS)}, got {model.num_classes}"
        )
    return model, spec


@torch.no_grad()
def predict(model: nn.Module, inputs: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Class probabilities ``(N, num_classes)`` of ``(N, 3, T, H, W)`` inputs, in eval mode."""
    model.eval()
    out = [model(inputs[i : i + batch_size, None]) for i in range(0, len(inputs), batch_size)]
    return torch.cat(out).numpy()


def _cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def train(model: nn.Module, spec: ClipSpec, settings: TrainSettings, data: tuple[np.ndarray, ...]) -> dict[str, Any]:
    """Train ``model`` in place; ``data`` is ``(train_clips, train_targets, val_clips, val_labels)``.

    ``train_targets`` are ``(N, 8)`` class probabilities (one-hot for pure clips, the
    actions' shares of the window for transition clips); ``val_labels`` are class indices
    of pure clips. The loss is cross-entropy against the targets, with label smoothing.

    Returns:
        Metrics of the last epoch: ``epoch``, ``loss``, ``train_top1``, ``val_top1``,
        ``val_per_class`` and ``seconds``.
    """
    train_x, train_y, val_x, val_y = data
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    steps_per_epoch = math.ceil(len(train_x) / settings.batch_size)
    total = steps_per_epoch * settings.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _cosine(step, total, min(settings.warmup_steps, total))
    )
    val_inputs = to_inputs(val_x, spec)
    metrics: dict[str, Any] = {}
    start = time.perf_counter()
    # Channels-last 3D tensors make oneDNN's CPU convolutions several times faster here.
    model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    for epoch in range(1, settings.epochs + 1):
        model.train()
        order = rng.permutation(len(train_x))
        losses, correct = [], 0
        for step in range(steps_per_epoch):
            batch = order[step * settings.batch_size : (step + 1) * settings.batch_size]
            clips, targets = augment(train_x[batch], train_y[batch], rng)
            target = torch.from_numpy(targets)
            inputs = to_inputs(clips, spec).contiguous(memory_format=torch.channels_last_3d)
            logits = model.cls_head(model.backbone(inputs))  # type: ignore[operator]
            loss = F.cross_entropy(logits, target, label_smoothing=settings.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            correct += int((logits.argmax(1) == target.argmax(1)).sum())
        pred = predict(model, val_inputs).argmax(1)
        per_class = [float((pred[val_y == c] == c).mean()) for c in range(len(ACTIONS))]
        metrics = dict(
            epoch=epoch,
            loss=float(np.mean(losses)),
            train_top1=correct / len(train_x),
            val_top1=float((pred == val_y).mean()),
            val_per_class=dict(zip(ACTIONS, per_class, strict=True)),
            seconds=time.perf_counter() - start,
        )
        logger.info(
            "epoch %d/%d: loss %.3f, train top-1 %.3f, val top-1 %.4f, lr %.2g, %.0f s",
            epoch,
            settings.epochs,
            metrics["loss"],
            metrics["train_top1"],
            metrics["val_top1"],
            schedule.get_last_lr()[0],
            metrics["seconds"],
        )
    logger.info(
        "validation top-1 per class: %s", ", ".join(f"{k} {v:.3f}" for k, v in metrics["val_per_class"].items())
    )
    model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    model.eval()
    return metrics


def save_checkpoint(model: nn.Module, path: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``model`` in MMAction2's layout: ``{'state_dict': OrderedDict, 'meta': meta}``, float tensors fp32.

    ``meta`` must hold only plain Python values, so the file loads with ``weights_only=True``.
    """
    state = OrderedDict(
        (key, value.detach().float().clone() if value.is_floating_point() else value.detach().clone())
        for key, value in model.state_dict().items()
    )
    path = Path(path)
    with atomic_path(path) as tmp:  # an interrupted training never leaves half a checkpoint
        torch.save({"state_dict": state, "meta": meta}, tmp)
    return path


def write_label_map(path: str | Path, classes: Sequence[str] = ACTIONS) -> Path:
    """Write one class name per line (MMAction2's label-map format)."""
    path = Path(path)
    return write_text(path, "".join(f"{name}\n" for name in classes))


# --------------------------------------------------------------------------- long-video check


def decode_video(path: str | Path, spec: ClipSpec) -> np.ndarray:
    """Decode every frame with PyAV and apply the pipeline's ``Resize`` as it arrives.

    ``Resize`` works frame by frame, so resizing at decode time (the runtime's
    ``resize_on_push``) gives the same model inputs and keeps a long video small.

    Returns:
        ``(num_frames, H, W, 3)`` BGR ``uint8``.
    """
    import av

    with av.open(str(path)) as container:
        return resize_clip((frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)), spec)


def window_starts(num_frames: int, window: int, step: int) -> np.ndarray:
    """Starts of the sliding windows, as the runtime's clip buffer schedules them.

    The first window is due when ``window`` frames have arrived, then one every ``step``
    frames while whole windows fit (:class:`pipelines.clip_buffer.ClipBuffer` with
    ``stride``); a video shorter than a window gets none.
    """
    return np.arange(0, max(num_frames - window + 1, 0), max(step, 1), dtype=np.int64)


def frame_scores(window_scores: np.ndarray, starts: np.ndarray, window: int, num_frames: int) -> np.ndarray:
    """Per-frame class scores from sliding windows, as ``stream.long_video`` assigns them.

    The runtime's ``RecognitionParams(anchor='interpolate')``: every frame blends the scores
    of the windows whose middles (``start + (window - 1) / 2``) are nearest before and after
    it, linearly by distance; frames before the first middle or after the last take that
    window's scores.

    Returns:
        ``(num_frames, num_classes)``.
    """
    centres = starts + (window - 1) / 2
    frames = np.arange(num_frames, dtype=np.float64)
    return np.stack([np.interp(frames, centres, window_scores[:, c]) for c in range(window_scores.shape[1])], 1)


@dataclass(frozen=True)
class VideoScore:
    """How well sliding-window predictions label a video's frames.

    Attributes:
        frame_accuracy: Correct frames / all frames of the video.
        window_accuracy: Accuracy of the windows lying entirely inside one segment.
        windows: Number of such windows.
        frame_pred: Predicted class of every frame.
    """

    frame_accuracy: float
    window_accuracy: float
    windows: int
    frame_pred: np.ndarray


def score_video(
    model: nn.Module, spec: ClipSpec, frames: np.ndarray, truth: GroundTruth, stride: float = 0.5
) -> VideoScore:
    """Label a video's frames as ``stream.long_video`` does and compare them with the ground truth.

    Windows of ``spec.window_frames`` frames start every ``stride × window`` frames
    (:func:`window_starts`; ``stream.long_video --stride``, default half a window); each
    becomes a model input exactly as in the runtime (``spec.sample`` +
    :func:`engines.transforms.preprocess`) and is classified; every frame then takes the
    top class of its interpolated scores (:func:`frame_scores`). All frames count,
    including those next to an action change.

    Args:
        frames: Resized BGR frames from :func:`decode_video`.
        truth: The video's ground truth.
        stride: Window step as a fraction of the window (0: every frame).

    Raises:
        ValueError: If the video is shorter than one window.
    """
    window = spec.window_frames
    num_frames = len(frames)
    starts = window_starts(num_frames, window, round(stride * window))
    if not len(starts):
        raise ValueError(f"video: expected at least one window of {window} frames, got {num_frames} frames")
    inputs = []
    for start in starts:
        chunk = frames[start : start + window]
        picks = spec.sample(len(chunk)).ravel()
        inputs.append(preprocess([chunk[i] for i in picks], spec, resized=True))
    window_probs = predict(model, torch.from_numpy(np.stack(inputs))[:, 0])
    frame_pred = frame_scores(window_probs, starts, window, num_frames).argmax(1)
    labels = truth.frame_labels()[:num_frames]
    inside = [i for i, s in enumerate(starts) if len(set(labels[s : s + window])) == 1]
    window_hits = [window_probs[i].argmax() == labels[starts[i]] for i in inside]
    return VideoScore(
        frame_accuracy=float((frame_pred == labels).mean()),
        window_accuracy=float(np.mean(window_hits)) if window_hits else float("nan"),
        windows=len(inside),
        frame_pred=frame_pred,
    )


# --------------------------------------------------------------------------- CLI


def make_parser() -> argparse.ArgumentParser:
    """The ``pipelines.demo.train`` argument parser."""
    defaults = TrainSettings()
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.demo.train",
        description="Train the demo recognizer on synthetic actions and write its checkpoint and label map.",
    )
    parser.add_argument("--out", required=True, help="output folder (the shipped one is pipelines/demo/assets)")
    parser.add_argument("--config", default=str(DEMO_CONFIG), help="model config (default: the demo config)")
    parser.add_argument("--epochs", type=int, default=None, help=f"training epochs (default {defaults.epochs})")
    parser.add_argument("--train-clips", type=int, default=None, help=f"default {defaults.train_clips}")
    parser.add_argument(
        "--transition-clips",
        type=int,
        default=None,
        help=f"training clips across an action change (default {defaults.transition_clips})",
    )
    parser.add_argument("--val-clips", type=int, default=None, help=f"default {defaults.val_clips}")
    parser.add_argument("--batch-size", type=int, default=None, help=f"default {defaults.batch_size}")
    parser.add_argument("--lr", type=float, default=None, help=f"peak AdamW learning rate (default {defaults.lr})")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the training order and augmentation")
    parser.add_argument("--threads", type=int, default=defaults.threads, help="torch CPU threads (default 2)")
    parser.add_argument("--quick", action="store_true", help="one epoch on 16 tiny clips: a smoke test in seconds")
    parser.add_argument("--no-video", action="store_true", help="do not write and score demo.mp4 + demo_gt.json")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def settings_from_args(args: argparse.Namespace) -> TrainSettings:
    """Defaults, ``--quick`` presets, then explicit options, in that order."""
    values: dict[str, Any] = dict(QUICK) if args.quick else {}
    for name in ("epochs", "train_clips", "transition_clips", "val_clips", "batch_size", "lr"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    return TrainSettings(seed=args.seed, threads=args.threads, **values)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s")
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        logger.error("%s", exc)
        return 2
    torch.set_num_threads(settings.threads)
    out = Path(args.out)
    begin = time.perf_counter()
    model, spec = build_model(args.config)
    logger.info(
        "model %s: %.2f M parameters; input %s, window %d frames",
        Path(args.config).name,
        sum(p.numel() for p in model.parameters()) / 1e6,
        spec.input_shape(*spec.output_hw(1, 1)),
        spec.window_frames,
    )
    pure_x, pure_y = make_clips(settings.train_clips, spec, TRAIN_SEED, settings.render_sizes)
    mixed_x, mixed_y = make_transition_clips(settings.transition_clips, spec, TRANSITION_SEED, settings.render_sizes)
    train_x, train_y = np.concatenate([pure_x, mixed_x]), np.concatenate([one_hot(pure_y), mixed_y])
    del pure_x, mixed_x
    val_x, val_y = make_clips(settings.val_clips, spec, VAL_SEED, settings.render_sizes)
    logger.info(
        "rendered %d training clips (%d of them across an action change) and %d validation clips in %.0f s",
        len(train_x),
        settings.transition_clips,
        len(val_x),
        time.perf_counter() - begin,
    )
    metrics = train(model, spec, settings, (train_x, train_y, val_x, val_y))
    meta = {
        "dataset_meta": {"classes": list(ACTIONS)},
        "epoch": metrics["epoch"],
        "trained_by": "pipelines.demo.train",
        "val_top1": round(metrics["val_top1"], 4),
        "val_clips": settings.val_clips,
        "train_clips": settings.train_clips,
        "transition_clips": settings.transition_clips,
        "config": Path(args.config).name,
        "seed": settings.seed,
    }
    checkpoint = save_checkpoint(model, out / CHECKPOINT_NAME, meta)
    write_label_map(out / LABEL_MAP_NAME)
    logger.info(
        "wrote %s (%.2f MB) and %s; validation top-1 %.4f; %.0f s in all",
        checkpoint,
        checkpoint.stat().st_size / 1e6,
        out / LABEL_MAP_NAME,
        metrics["val_top1"],
        time.perf_counter() - begin,
    )
    if not args.no_video and not args.quick:
        truth = make_demo_video(out / VIDEO_NAME, seed=VIDEO_SEED, gt_path=out / GT_NAME)
        frames = decode_video(out / VIDEO_NAME, spec)
        scores = {stride: score_video(model, spec, frames, truth, stride) for stride in (0.5, 0.25)}
        logger.info(
            "wrote %s (%d frames, %.2f MB): all-frames accuracy %.4f (stride 0.5), %.4f (stride 0.25); "
            "windows inside one segment %.4f (%d)",
            out / VIDEO_NAME,
            truth.num_frames,
            (out / VIDEO_NAME).stat().st_size / 1e6,
            scores[0.5].frame_accuracy,
            scores[0.25].frame_accuracy,
            scores[0.5].window_accuracy,
            scores[0.5].windows,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
