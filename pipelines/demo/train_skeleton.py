"""Train the demo skeleton model (a small ST-GCN) on synthetic COCO-17 keypoint sequences.

Usage::

    python -m pipelines.demo.train_skeleton --out pipelines/demo/assets [--epochs E] [--quick]

Builds the model of ``configs/demo/demo_stgcn_coco_synthetic.py`` with **MMAction2's own
registry** (``mmaction.registry.MODELS``; MMAction2 is the ``ref`` extra), turns every
synthetic sequence of :mod:`pipelines.demo.skeleton_synthetic` into a model input with
**MMAction2's own transforms**, the config's ``test_pipeline`` (``UniformSampleFrames``,
``PoseDecode``, ``PreNormalize2D``, ``GenSkeFeat``, ``FormatGCNInput``,
``PackActionInputs``), so training inputs are exactly inference inputs, trains with AdamW
and a warm-up + cosine schedule on fresh sequences every epoch, and writes:

* ``demo_skeleton_stgcn.pth``: MMAction2 layout, ``{'state_dict': OrderedDict(...), 'meta':
  {'dataset_meta': {'classes': [...]}, 'epoch', 'trained_by', 'val_top1', ...}}``;
* ``skeleton_label_map.txt``: one class name per line.

Then, unless ``--no-eval``, it scores the model on held-out sequences (seeds disjoint
from training) per class and for robustness: person height, missing joints, windows
shorter than ``clip_len`` (a track seen for only 10 frames) and ``FormatGCNInput``
padding to 2 people. ``--quick`` is a smoke test in seconds.
"""

from __future__ import annotations

import os

# See pipelines/demo/train.py: passive OpenMP threads on a shared machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import logging
import math
import sys
import time
import types
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipelines.demo import ASSETS, SKELETON_CONFIG
from pipelines.demo.skeleton_synthetic import (
    CLASSES,
    CLEAN,
    SkeletonSequence,
    make_dataset,
    to_pose_results,
    with_nuisance,
)
from pipelines.demo.train import save_checkpoint, write_label_map

logger = logging.getLogger("pipelines.demo.train_skeleton")

CHECKPOINT_NAME = "demo_skeleton_stgcn.pth"
LABEL_MAP_NAME = "skeleton_label_map.txt"
#: Seeds of the training epochs (``[TRAIN_SEED, epoch]``), the validation set and the robustness sets.
TRAIN_SEED, VAL_SEED, ROBUST_SEED = 11, 12, 13
#: Shortest track a training window comes from (frames).
MIN_TRACK = 8

Pipeline = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters; the defaults train the shipped model (see docs/demo.md for the time it took)."""

    epochs: int = 14
    train_per_epoch: int = 3000
    val_count: int = 1200
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 40
    label_smoothing: float = 0.05
    #: Share of windows cut from a track shorter than ``clip_len`` (8 frames up), and longer (up to 2x).
    short_fraction: float = 0.2
    long_fraction: float = 0.1
    #: Share of batches padded to 2 people by ``FormatGCNInput(num_person=2)``.
    two_person_fraction: float = 0.25
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("epochs", "train_per_epoch", "val_count", "batch_size", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr: expected a positive number, got {self.lr!r}")
        for name in ("short_fraction", "long_fraction", "two_person_fraction"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
        if self.short_fraction + self.long_fraction > 1:
            raise ValueError(
                f"short_fraction + long_fraction: expected at most 1, got {self.short_fraction + self.long_fraction}"
            )


QUICK = dict(epochs=1, train_per_epoch=48, val_count=24, batch_size=16, warmup_steps=1)


# --------------------------------------------------------------------------- MMAction2


def import_mmaction() -> tuple[Any, Any]:
    """MMAction2's ``MODELS`` and ``TRANSFORMS`` registries, with every module registered.

    The MMAction2 1.2.0 wheel lacks ``mmaction/models/localizers/drn`` (a packaging bug), so
    an empty placeholder is registered first; DRN is a localizer nothing here uses. Its
    ``PoseCompact`` still uses ``np.Inf``, which NumPy 2 removed, so ``np.Inf`` is set back
    to ``np.inf`` (the same value) when it is missing.

    Raises:
        ImportError: If MMAction2 is not installed (with the command that installs it).
    """
    if "Inf" not in vars(np):
        np.Inf = np.inf  # type: ignore[attr-defined]
    for name in ("mmaction.models.localizers.drn", "mmaction.models.localizers.drn.drn"):
        sys.modules.setdefault(name, types.ModuleType(name))
    drn = sys.modules["mmaction.models.localizers.drn.drn"]
    if not hasattr(drn, "DRN"):
        drn.DRN = type("DRN", (), {})  # type: ignore[attr-defined]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from mmaction.registry import MODELS, TRANSFORMS
            from mmaction.utils import register_all_modules

            register_all_modules(init_default_scope=True)
    except ModuleNotFoundError as exc:
        raise ImportError(f"training the skeleton demo needs MMAction2: pip install -e '.[ref]' ({exc})") from exc
    return MODELS, TRANSFORMS


def load_config(config: str | Path = SKELETON_CONFIG) -> Any:
    """The mmengine ``Config`` of ``config``."""
    from mmengine.config import Config

    return Config.fromfile(str(config))


def build_model(config: str | Path = SKELETON_CONFIG) -> tuple[nn.Module, Any]:
    """MMAction2's own ``RecognizerGCN`` of ``config`` (built from its registry) and the config.

    Raises:
        ValueError: If the model does not score :data:`CLASSES`.
    """
    models, _ = import_mmaction()
    cfg = load_config(config)
    model = models.build(cfg.model)
    classes = cfg.model.cls_head.num_classes
    if classes != len(CLASSES):
        raise ValueError(f"config {config}: model.cls_head.num_classes: expected {len(CLASSES)}, got {classes}")
    return model, cfg


def clip_len_of(cfg: Any) -> int:
    """``clip_len`` of the config's ``UniformSampleFrames``.

    Raises:
        ValueError: If the test pipeline has no ``UniformSampleFrames``.
    """
    for step in cfg.test_pipeline:
        if step["type"] == "UniformSampleFrames":
            return int(step["clip_len"])
    raise ValueError("test_pipeline: expected a UniformSampleFrames step, got none")


def build_pipeline(cfg: Any, num_person: int | None = None) -> Pipeline:
    """The config's ``test_pipeline`` as MMAction2 composes it; ``num_person`` overrides ``FormatGCNInput``'s."""
    from mmengine.dataset import Compose

    import_mmaction()
    steps = [dict(step) for step in cfg.test_pipeline]
    for step in steps:
        if step["type"] == "FormatGCNInput" and num_person is not None:
            step["num_person"] = num_person
    return Compose(steps)


def to_inputs(seqs: Sequence[SkeletonSequence], pipeline: Pipeline) -> torch.Tensor:
    """Model inputs ``(N, num_clips, M, T, 17, 3)`` of one person's sequences, through ``pipeline``."""
    return torch.stack([pipeline(to_pose_results(seq))["inputs"] for seq in seqs])


def logits_of(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Class logits ``(N, C)`` of one-clip inputs: ``RecognizerGCN.extract_feat(stage='head')``."""
    return model.extract_feat(inputs, stage="head")[0]  # type: ignore[operator]


@torch.no_grad()
def predict(model: nn.Module, inputs: torch.Tensor, batch_size: int = 128) -> np.ndarray:
    """Class probabilities ``(N, C)`` (softmax, as ``average_clips='prob'``), in eval mode."""
    model.eval()
    out = [logits_of(model, inputs[i : i + batch_size]).softmax(-1) for i in range(0, len(inputs), batch_size)]
    return torch.cat(out).numpy()


# --------------------------------------------------------------------------- data


def window_lengths(count: int, clip_len: int, settings: TrainSettings, rng: np.random.Generator) -> list[int]:
    """Frames of each training window: mostly ``clip_len``, some from short tracks, some longer."""
    draw = rng.random(count)
    lengths = np.full(count, clip_len)
    short = draw < settings.short_fraction
    long = (draw >= settings.short_fraction) & (draw < settings.short_fraction + settings.long_fraction)
    lengths[short] = rng.integers(MIN_TRACK, clip_len, int(short.sum()))
    lengths[long] = rng.integers(clip_len + 1, 2 * clip_len + 1, int(long.sum()))
    return [int(v) for v in lengths]


def _cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def accuracy_per_class(pred: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Top-1 accuracy of each class present in ``labels``."""
    return {CLASSES[c]: float((pred[labels == c] == c).mean()) for c in range(len(CLASSES)) if (labels == c).any()}


def train(
    model: nn.Module,
    cfg: Any,
    settings: TrainSettings,
    val: Sequence[SkeletonSequence],
    log_every_epoch: bool = True,
) -> dict[str, Any]:
    """Train ``model`` in place on fresh synthetic sequences every epoch; score ``val`` after each.

    Epoch ``e`` draws ``settings.train_per_epoch`` sequences from seed ``[TRAIN_SEED,
    settings.seed, e]`` with window lengths from :func:`window_lengths`; a share
    ``two_person_fraction`` of the batches goes through ``FormatGCNInput(num_person=2)``
    (zero padding), the rest through the config's pipeline as it is.

    Returns:
        Metrics: ``epoch``, ``loss`` (per epoch, a list), ``train_top1``, ``val_top1``,
        ``val_per_class``, ``seconds``.
    """
    torch.manual_seed(settings.seed)
    np.random.seed(settings.seed)  # UniformSampleFrames draws from numpy's global state
    rng = np.random.default_rng([TRAIN_SEED, settings.seed])
    clip_len = clip_len_of(cfg)
    one, two = build_pipeline(cfg), build_pipeline(cfg, num_person=2)
    steps_per_epoch = math.ceil(settings.train_per_epoch / settings.batch_size)
    total = steps_per_epoch * settings.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _cosine(step, total, min(settings.warmup_steps, total))
    )
    val_inputs = to_inputs(val, one)
    val_y = np.array([s.label for s in val])
    losses: list[float] = []
    metrics: dict[str, Any] = {}
    start = time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        lengths = window_lengths(settings.train_per_epoch, clip_len, settings, rng)
        data = make_dataset(settings.train_per_epoch, [TRAIN_SEED, settings.seed, epoch], lengths)
        order = rng.permutation(len(data))
        model.train()
        epoch_losses, correct = [], 0
        for step in range(steps_per_epoch):
            batch = [data[i] for i in order[step * settings.batch_size : (step + 1) * settings.batch_size]]
            pipeline = two if rng.random() < settings.two_person_fraction else one
            inputs = to_inputs(batch, pipeline)
            target = torch.tensor([s.label for s in batch])
            logits = logits_of(model, inputs)
            loss = F.cross_entropy(logits, target, label_smoothing=settings.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            epoch_losses.append(float(loss.detach()))
            correct += int((logits.argmax(1) == target).sum())
        pred = predict(model, val_inputs).argmax(1)
        losses.append(float(np.mean(epoch_losses)))
        metrics = dict(
            epoch=epoch,
            loss=losses,
            train_top1=correct / len(data),
            val_top1=float((pred == val_y).mean()),
            val_per_class=accuracy_per_class(pred, val_y),
            seconds=time.perf_counter() - start,
        )
        if log_every_epoch:
            logger.info(
                "epoch %d/%d: loss %.3f, train top-1 %.3f, held-out top-1 %.4f, lr %.2g, %.0f s",
                epoch,
                settings.epochs,
                losses[-1],
                metrics["train_top1"],
                metrics["val_top1"],
                schedule.get_last_lr()[0],
                metrics["seconds"],
            )
    model.eval()
    return metrics


# --------------------------------------------------------------------------- evaluation


def evaluate(
    model: nn.Module, seqs: Sequence[SkeletonSequence], pipeline: Pipeline
) -> tuple[float, dict[str, float], np.ndarray]:
    """Top-1, top-1 per class and the confusion matrix (rows: truth) of ``seqs``."""
    labels = np.array([s.label for s in seqs])
    pred = predict(model, to_inputs(seqs, pipeline)).argmax(1)
    confusion = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
    np.add.at(confusion, (labels, pred), 1)
    return float((pred == labels).mean()), accuracy_per_class(pred, labels), confusion


def robustness(model: nn.Module, cfg: Any, count: int = 600) -> dict[str, dict[str, float]]:
    """Held-out top-1 under one change at a time (``count`` balanced sequences each, seed :data:`ROBUST_SEED`).

    * ``height``: person height bins in pixels (everything else as in training);
    * ``missing``: a fixed share of missing joints (score 0, coordinates 0), plus the usual
      occlusions and gaps;
    * ``window``: windows of that many frames (shorter than ``clip_len``: a track seen for
      only that long; ``UniformSampleFrames`` loops it);
    * ``persons``: ``FormatGCNInput(num_person=1)`` against zero padding to 2 people;
    * ``clean``: no keypoint noise, no outliers, no missing joints, no occlusion (:data:`CLEAN`).
    """
    clip_len = clip_len_of(cfg)
    one, two = build_pipeline(cfg), build_pipeline(cfg, num_person=2)
    out: dict[str, dict[str, float]] = {"height": {}, "missing": {}, "window": {}, "persons": {}, "clean": {}}
    for lo, hi in ((40, 80), (80, 160), (160, 400)):
        seqs = make_dataset(count, [ROBUST_SEED, 1, lo], clip_len, nuisance=with_nuisance(height_range=(lo, hi)))
        out["height"][f"{lo}-{hi} px"] = evaluate(model, seqs, one)[0]
    for rate in (0.0, 0.1, 0.2, 0.3, 0.5):
        seqs = make_dataset(
            count, [ROBUST_SEED, 2, int(rate * 100)], clip_len, nuisance=with_nuisance(missing_rate_fixed=rate)
        )
        out["missing"][f"{rate:.0%}"] = evaluate(model, seqs, one)[0]
    for frames in (10, 16, 24, 32, clip_len, 2 * clip_len):
        seqs = make_dataset(count, [ROBUST_SEED, 3, frames], frames)
        out["window"][f"{frames} frames"] = evaluate(model, seqs, one)[0]
    seqs = make_dataset(count, [ROBUST_SEED, 4], clip_len)
    out["persons"]["num_person=1"] = evaluate(model, seqs, one)[0]
    out["persons"]["num_person=2 (zero pad)"] = evaluate(model, seqs, two)[0]
    clean = make_dataset(count, [ROBUST_SEED, 5], clip_len, nuisance=CLEAN)
    out["clean"]["no keypoint noise, no missing joints"] = evaluate(model, clean, one)[0]
    return out


# --------------------------------------------------------------------------- CLI


def make_parser() -> argparse.ArgumentParser:
    """The ``pipelines.demo.train_skeleton`` argument parser."""
    defaults = TrainSettings()
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.demo.train_skeleton",
        description="Train the demo skeleton model on synthetic keypoints and write its checkpoint and label map.",
    )
    parser.add_argument("--out", default=str(ASSETS), help="output folder (default: the shipped pipelines/demo/assets)")
    parser.add_argument("--config", default=str(SKELETON_CONFIG), help="model config (default: the demo config)")
    parser.add_argument("--epochs", type=int, default=None, help=f"default {defaults.epochs}")
    parser.add_argument("--train-per-epoch", type=int, default=None, help=f"default {defaults.train_per_epoch}")
    parser.add_argument("--val-count", type=int, default=None, help=f"default {defaults.val_count}")
    parser.add_argument("--batch-size", type=int, default=None, help=f"default {defaults.batch_size}")
    parser.add_argument("--lr", type=float, default=None, help=f"peak AdamW learning rate (default {defaults.lr})")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the training data and order")
    parser.add_argument(
        "--threads", type=int, default=defaults.threads, help=f"torch threads (default {defaults.threads})"
    )
    parser.add_argument("--quick", action="store_true", help="one epoch on a tiny set: a smoke test in seconds")
    parser.add_argument("--no-eval", action="store_true", help="skip the robustness tables")
    parser.add_argument(
        "--evaluate", metavar="CHECKPOINT", default=None, help="only score CHECKPOINT (held-out and robustness tables)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def settings_from_args(args: argparse.Namespace) -> TrainSettings:
    """Defaults, ``--quick`` presets, then explicit options, in that order."""
    values: dict[str, Any] = dict(QUICK) if args.quick else {}
    for name in ("epochs", "train_per_epoch", "val_count", "batch_size", "lr"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    return TrainSettings(seed=args.seed, threads=args.threads, **values)


def _table(title: str, values: dict[str, float]) -> str:
    return f"{title}: " + ", ".join(f"{k} {v:.3f}" for k, v in values.items())


def report(model: nn.Module, cfg: Any, val: Sequence[SkeletonSequence]) -> None:
    """Log the held-out top-1 (overall, per class, confusion matrix) and the :func:`robustness` tables."""
    top1, per_class, confusion = evaluate(model, val, build_pipeline(cfg))
    logger.info("held-out top-1 %.4f (%d sequences)", top1, len(val))
    logger.info("%s", _table("held-out top-1 per class", per_class))
    logger.info("confusion (rows: truth %s):\n%s", ", ".join(CLASSES), confusion)
    for name, values in robustness(model, cfg).items():
        logger.info("%s", _table(f"held-out top-1 by {name}", values))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s")
    try:
        settings = settings_from_args(args)
        model, cfg = build_model(args.config)
    except (ValueError, ImportError) as exc:
        logger.error("%s", exc)
        return 2
    torch.set_num_threads(settings.threads)
    out = Path(args.out)
    begin = time.perf_counter()
    clip_len = clip_len_of(cfg)
    val = make_dataset(settings.val_count, [VAL_SEED], clip_len)
    if args.evaluate is not None:
        model.load_state_dict(torch.load(args.evaluate, map_location="cpu", weights_only=True)["state_dict"])
        report(model, cfg, val)
        logger.info("scored %s in %.0f s", args.evaluate, time.perf_counter() - begin)
        return 0
    logger.info(
        "model %s: %.3f M parameters; window %d frames; %d threads",
        Path(args.config).name,
        sum(p.numel() for p in model.parameters()) / 1e6,
        clip_len,
        settings.threads,
    )
    metrics = train(model, cfg, settings, val)
    train_seconds = time.perf_counter() - begin
    logger.info("held-out top-1 per class: %s", ", ".join(f"{k} {v:.3f}" for k, v in metrics["val_per_class"].items()))
    meta = {
        "dataset_meta": {"classes": list(CLASSES)},
        "epoch": metrics["epoch"],
        "trained_by": "pipelines.demo.train_skeleton",
        "val_top1": round(metrics["val_top1"], 4),
        "val_count": settings.val_count,
        "train_per_epoch": settings.train_per_epoch,
        "clip_len": clip_len,
        "config": Path(args.config).name,
        "seed": settings.seed,
    }
    checkpoint = save_checkpoint(model, out / CHECKPOINT_NAME, meta)
    write_label_map(out / LABEL_MAP_NAME, CLASSES)
    logger.info(
        "wrote %s (%.2f MB) and %s; held-out top-1 %.4f; training %.0f s",
        checkpoint,
        checkpoint.stat().st_size / 1e6,
        out / LABEL_MAP_NAME,
        metrics["val_top1"],
        train_seconds,
    )
    if not args.no_eval and not args.quick:
        report(model, cfg, val)
        logger.info("all done in %.0f s", time.perf_counter() - begin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
