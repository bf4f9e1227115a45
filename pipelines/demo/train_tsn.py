"""Train MMAction2's TSN-R50 1x1x8 to tell the synthetic scenes' backgrounds apart, for the TSN speed figures.

Usage::

    python -m pipelines.demo.train_tsn [--out CKPT] [--steps N] [--frozen-bn-steps K] [--init CKPT]
                                       [--lr LR] [--minutes M] [--force] [--quick]

``benchmarks/recognition.py`` and ``benchmarks/streams.py`` measure TSN-R50 (the speed issue's
headline model) with ``--precision auto``, which keeps bf16 / INT8 only where their top-1
labels agree with torch fp32 on held-out clips. A random-weight TSN-R50 scores its 400 classes
within 0.002 of each other, so any rounding reorders them and ``auto`` falls back to fp32:
the default precision's speed cannot be measured on it. This trains the same network
(``configs/demo/demo_tsn_r50_scenes.py``: the model-zoo config with 4 classes, ResNet-50
from scratch, 224x224 centre crops) on a task a TSN can learn: the background texture of a
synthetic scene (:data:`SCENE_CLASSES`; the object moves, grows, shrinks or rotates on it as in
the action clips, distractors drift around it). Not the synthetic *actions*: TSN averages
per-frame features, and the frames of ``move_left`` played backwards are those of
``move_right``, so a TSN cannot tell them apart. Nor the object's shape: from scratch, 250
steps on the 6 rotating shapes left the loss at chance (1.8), while textures are what a CNN
learns first.

Each step trains on clips of :data:`TRAIN_SEGMENTS` frames (the head averages any number of
segments; 2 instead of 8 frames per clip makes a step 4x cheaper and shows the model 4x more
scenes), each frame a random 224x224 crop of the pipeline's ``Resize(-1, 256)``; the held-out
clips are scored as the runtime scores them (8 frames, centre crop). The checkpoint is
written atomically in MMAction2's layout (class names in ``meta.dataset_meta``) to
``~/.cache/action-stream/models/demo_tsn_r50_scenes.pth`` (the config has no ``load_from``, as
the checkpoint is not shipped: pass it with ``--checkpoint``).

The model stays weak on 2 cores. The checkpoint measured on 2026-12-06 (AMD EPYC, 2 cores;
docs/engines.md) took three runs, as the recipe was found: 300 steps at the defaults of the
time (no frozen BN; loss left chance after about 130 steps), ``--init`` 400 more at ``--lr
2e-4`` (held-out top-1 0.38 in eval mode even with its BN statistics recalibrated, while the
same weights scored 0.7-0.8 with batch statistics), then ``--init`` 200 more at ``--lr 1e-4
--frozen-bn-steps 200``: 900 steps, 30 min, held-out top-1 **0.57** (chance 0.25; flat 0.47,
blobs 0.90, stripes 0.67, checker 0.23), median top-1 minus top-2 probability 0.065. The
default command (300 steps, the last 100 with frozen BN) is the same recipe, shorter.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see pipelines.demo.train

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engines.clip_spec import ClipSpec
from engines.transforms import crop_boxes
from pipelines.demo.synthetic import ACTIONS, Leg, _render_frames, place, random_scene, sample_motion
from pipelines.demo.train import FPS_RANGE, resize_clip, to_inputs
from pipelines.demo.train_r50 import (
    head_scaled_groups,
    initial_weights,
    lr_factor,
    model_cache_dir,
    optimize_step,
    positive_int_error,
    save_trained,
)

logger = logging.getLogger("pipelines.demo.train_tsn")

TSN_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo" / "demo_tsn_r50_scenes.py"
TSN_CHECKPOINT_NAME = "demo_tsn_r50_scenes.pth"
#: The classes, in the config's ``dataset_meta`` order: background textures of
#: :func:`pipelines.demo.synthetic.make_background` ("gradient" left out: a shallow one is flat).
SCENE_CLASSES: tuple[str, ...] = ("flat", "blobs", "stripes", "checker")
#: Frames per training clip (the head's consensus averages however many there are).
TRAIN_SEGMENTS = 2
#: Source frame sizes (width, height); the pipeline resizes the short side to 256, then crops 224.
TSN_RENDER_SIZES: tuple[tuple[int, int], ...] = ((320, 240), (341, 256), (400, 240), (384, 288))
TRAIN_SEED, VAL_SEED, RECALIBRATION_SEED = 31, 32, 33


def render_scene_clip(
    background: str, n_frames: int, fps: float, size: tuple[int, int], rng: np.random.Generator,
    frame_indices: Sequence[int] | np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Frames ``frame_indices`` of a random scene on a ``background`` texture, its object doing a random action.

    Returns:
        ``(len(frame_indices), height, width, 3)`` BGR ``uint8``.

    Raises:
        ValueError: For a background not in :data:`SCENE_CLASSES`.
    """
    if background not in SCENE_CLASSES:
        raise ValueError(f"background: expected one of {', '.join(SCENE_CLASSES)}, got {background!r}")
    scene = random_scene(size, rng, background=background)
    action = ACTIONS[int(rng.integers(len(ACTIONS)))]
    duration = (n_frames - 1) / fps
    pose, motion = place(action, sample_motion(action, size[1], rng), duration, size, rng)
    scene.legs.append(Leg(action, 0.0, duration, pose, motion))
    return _render_frames(scene, list(frame_indices), fps, rng)


def _crop(frames: np.ndarray, spec: ClipSpec, rng: np.random.Generator | None) -> np.ndarray:
    """The spec's crop of ``(T, H, W, 3)`` frames: random places (one per frame) with ``rng``, else the runtime's."""
    if rng is None:
        (box,) = crop_boxes(frames.shape[1], frames.shape[2], spec)
        return frames[:, box.y : box.y + box.height, box.x : box.x + box.width]
    height, width = spec.output_hw(1, 1)
    out = np.empty((len(frames), height, width, 3), frames.dtype)
    for i, frame in enumerate(frames):
        top = int(rng.integers(frame.shape[0] - height + 1))
        left = int(rng.integers(frame.shape[1] - width + 1))
        out[i] = frame[top : top + height, left : left + width]
    return out


def render_scene_clips(
    count: int, spec: ClipSpec, seed: int, *, segments: int | None = None, train: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``count`` clips labelled with their scene's background, as the pipeline would feed them.

    Clip ``i`` is on a ``SCENE_CLASSES[i % 4]`` background, its scene drawn from ``default_rng([seed, i])``.
    Held-out clips (``train=False``) take the frames the config samples from its window and its
    centre crop; training clips take ``segments`` random frames of the window, each randomly cropped.

    Returns:
        ``(count, frames, 224, 224, 3)`` BGR ``uint8`` clips and ``(count,)`` int64 labels.
    """
    window = spec.window_frames
    labels = np.arange(count, dtype=np.int64) % len(SCENE_CLASSES)
    clips = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        fps = float(rng.uniform(*FPS_RANGE))
        size = TSN_RENDER_SIZES[int(rng.integers(len(TSN_RENDER_SIZES)))]
        if train:
            indices = np.sort(rng.choice(window, size=segments or TRAIN_SEGMENTS, replace=False))
        else:
            indices = spec.sample(window).ravel()
        frames = resize_clip(render_scene_clip(SCENE_CLASSES[labels[i]], window, fps, size, rng, indices), spec)
        clips.append(_crop(frames, spec, rng if train else None))
    return np.stack(clips), labels


def _logits(model: Any, clips: np.ndarray, spec: ClipSpec) -> torch.Tensor:
    """Training-mode logits of ``(N, T, H, W, 3)`` BGR clips (channels-last frames, one view each)."""
    frames = to_inputs(clips, spec).permute(0, 2, 1, 3, 4).flatten(0, 1)  # (N*T, 3, H, W)
    features = model._features(frames.contiguous(memory_format=torch.channels_last))
    logits: torch.Tensor = model.cls_head(features, num_segs=clips.shape[1])
    return logits


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, spec: ClipSpec, *, clips: int = 64, batch_size: int = 8) -> None:
    """Replace every BN layer's running mean / variance with their average over fresh clips, in fp32.

    The running statistics kept during training (momentum 0.1, bf16 autocast, weights still
    moving) left the eval-mode model predicting one class for 83 % of held-out clips after the
    first 300 steps, while the same weights in train mode (batch statistics) scored 45 %; the
    cumulative average over clips the trained weights see (as runtime clips: 8 frames, centre crop)
    is what eval mode should use.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the batches below
    model.train()
    x, _ = render_scene_clips(clips, spec, RECALIBRATION_SEED)
    for i in range(0, clips, batch_size):
        model(to_inputs(x[i : i + batch_size], spec).permute(0, 2, 1, 3, 4).contiguous())
    for norm, momentum in zip(norms, saved, strict=True):
        norm.momentum = momentum
    model.eval()


def freeze_batch_norm(model: nn.Module) -> None:
    """Train mode for everything but the BN layers, which use (and keep) their running statistics."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


@torch.no_grad()
def predict(model: nn.Module, clips: np.ndarray, spec: ClipSpec, batch_size: int = 8) -> np.ndarray:
    """Eval-mode scores ``(N, classes)`` of held-out clips (the model's own forward, fp32)."""
    model.eval()
    scores = []
    for i in range(0, len(clips), batch_size):
        inputs = to_inputs(clips[i : i + batch_size], spec).permute(0, 2, 1, 3, 4).contiguous()  # (N, T, 3, H, W)
        scores.append(model(inputs))
    return torch.cat(scores).numpy()


def train_tsn(
    config: str | Path = TSN_CONFIG,
    *,
    steps: int = 300,
    batch_size: int = 8,
    val_clips: int = 120,
    lr: float = 3e-4,
    seed: int = 0,
    warmup: int = 30,
    head_lr_scale: float = 1.0,
    minutes: float | None = None,
    init: str | Path | None = None,
    recalibration_clips: int = 64,
    frozen_bn_steps: int = 100,
) -> tuple[nn.Module, dict[str, Any]]:
    """Build the config's TSN and train it from scratch on scene clips (bf16 autocast, AdamW).

    Args:
        steps: Training steps of ``batch_size`` clips of :data:`TRAIN_SEGMENTS` frames.
        minutes: If given, training also stops when this wall-clock budget is spent, and the
            cosine schedule runs on elapsed time (as in :func:`pipelines.demo.train_r50.train_r50`).
        recalibration_clips: Clips whose batch statistics replace the BN running statistics
            (:func:`recalibrate_batch_norm`) before the last ``frozen_bn_steps`` steps.
        frozen_bn_steps: The last steps train with every BN layer in eval mode, on the
            recalibrated statistics (its scale and shift still learn), as MMAction2's
            ``norm_eval`` fine-tuning does. Without them the model scored 0.38 on held-out clips
            in eval mode while the same weights scored 0.7-0.8 with batch statistics: with 16
            frames of scenes whose colours differ wildly, it had learnt features that only
            separate the classes after each batch's own normalisation. 0 recalibrates after
            the last step instead.
        init: Train on from this checkpoint instead of from scratch (another clip order).
        head_lr_scale: The classifier's rate relative to the backbone's. 1 here: at the 0.05
            the SlowOnly-R50 needed (``train_r50``), the loss stayed at chance for 110 steps,
            while one batch at the full rate is learnt by heart within 10 steps.

    Returns:
        The model (eval mode) and metrics: ``steps``, ``loss`` (mean of the last 20 steps),
        ``val_top1``, ``val_per_class``, ``val_margin`` (median top-1 minus top-2 probability),
        ``seconds``.
    """
    from engines.config import load_config
    from engines.models import build

    begin = time.perf_counter()
    spec = ClipSpec.from_config(config)
    model = build(load_config(config).model)
    initial_weights(model, init)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    first_seed = TRAIN_SEED + (0 if init is None else 10**6)  # other scenes when training on
    optim = torch.optim.AdamW(head_scaled_groups(model, lr, head_lr_scale), lr=lr, weight_decay=0.05)
    start = time.perf_counter()
    schedule = torch.optim.lr_scheduler.LambdaLR(optim, lr_factor(steps, warmup, minutes, start))
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    model.train()
    losses: list[float] = []
    frozen = False
    for step in range(steps):
        if minutes is not None and time.perf_counter() - start > 60 * minutes:
            break
        if not frozen and step >= steps - frozen_bn_steps:
            recalibrate_batch_norm(model, spec, clips=recalibration_clips)
            freeze_batch_norm(model)
            frozen = True
            logger.info("step %d: BN statistics recalibrated and frozen for the last %d steps", step, steps - step)
        clips, targets = render_scene_clips(batch_size, spec, first_seed + 1000 * step, train=True)
        order = rng.permutation(batch_size)  # the classes come in a fixed cycle; mix them within the batch
        clips, targets = clips[order], targets[order]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = _logits(model, clips, spec).float()
        optimize_step(logits, targets, optim, schedule, losses, steps=steps, begin=begin)
    model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    if not frozen:
        recalibrate_batch_norm(model, spec, clips=recalibration_clips)
    val_x, val_y = render_scene_clips(val_clips, spec, VAL_SEED)
    scores = predict(model, val_x, spec)
    pred = scores.argmax(1)
    top2 = np.sort(scores, axis=1)[:, -2:]
    metrics = {
        "steps": len(losses),
        "loss": float(np.mean(losses[-20:])) if losses else float("nan"),
        "val_top1": float((pred == val_y).mean()),
        "val_per_class": {name: float((pred[val_y == c] == c).mean()) for c, name in enumerate(SCENE_CLASSES)},
        "val_margin": float(np.median(top2[:, 1] - top2[:, 0])),
        "seconds": time.perf_counter() - begin,
    }
    return model, metrics


def trained_tsn(path: str | Path | None = None, **train_options: Any) -> Path:
    """The trained TSN-R50 checkpoint: ``path`` (default in :func:`model_cache_dir`), trained first if missing."""
    path = Path(path) if path is not None else model_cache_dir() / TSN_CHECKPOINT_NAME
    if path.is_file():
        return path
    return train_and_save(path, **train_options)


def train_and_save(path: str | Path, **train_options: Any) -> Path:
    """:func:`train_tsn` and write the checkpoint atomically to ``path`` (replacing it; ``init`` may be it)."""
    model, metrics = train_tsn(**train_options)
    meta = save_trained(
        path, model, metrics, classes=SCENE_CLASSES, trained_by="pipelines.demo.train_tsn",
        config=train_options.get("config", TSN_CONFIG), init=train_options.get("init"),
    )  # fmt: skip
    logger.info("wrote %s: held-out top-1 %.4f (median margin %.3f) after %d steps, %.0f s", path,
                meta["val_top1"], meta["val_margin"], meta["steps"], meta["seconds"])  # fmt: skip
    return Path(path)


def make_parser() -> argparse.ArgumentParser:
    """The ``pipelines.demo.train_tsn`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.demo.train_tsn",
        description="Train TSN-R50 1x1x8 on the synthetic scenes' backgrounds (for TSN speed figures) and cache it.",
    )
    parser.add_argument("--config", default=str(TSN_CONFIG), help="model config (default: the TSN-R50 scenes config)")
    parser.add_argument("--out", default=None, help=f"checkpoint (default {model_cache_dir() / TSN_CHECKPOINT_NAME})")
    parser.add_argument("--steps", type=int, default=300, help="training steps of 8 clips (default 300)")
    parser.add_argument("--val-clips", type=int, default=120, help="held-out clips (default 120)")
    parser.add_argument("--lr", type=float, default=3e-4, help="peak learning rate of the backbone (default 3e-4)")
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock budget: the schedule runs on time")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument(
        "--frozen-bn-steps", type=int, default=100, help="last steps with BN statistics frozen (default 100)"
    )
    parser.add_argument("--init", default=None, help="train on from this checkpoint (steps and time add up)")
    parser.add_argument("--quick", action="store_true", help="2 steps of 2 clips: a smoke test")
    parser.add_argument("--force", action="store_true", help="train again even if the checkpoint exists")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.frozen_bn_steps < 0:
        logger.error("--frozen-bn-steps: expected 0 or more, got %s", args.frozen_bn_steps)
        return 2
    if positive_int_error(args, ("steps", "val_clips", "threads")):
        return 2
    torch.set_num_threads(args.threads)
    options: dict[str, Any] = {
        "config": args.config, "steps": args.steps, "val_clips": args.val_clips, "lr": args.lr,
        "minutes": args.minutes, "init": args.init, "frozen_bn_steps": args.frozen_bn_steps,
    }  # fmt: skip
    if args.quick:
        options = {"config": args.config, "steps": 2, "batch_size": 2, "val_clips": 6, "recalibration_clips": 4}
    path = Path(args.out) if args.out else model_cache_dir() / TSN_CHECKPOINT_NAME
    if args.force or args.init:
        train_and_save(path, **options)
    else:
        trained_tsn(path, **options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
