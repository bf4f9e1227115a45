"""RTMPose as a compiled engine: mmpose config + model-zoo checkpoint → ONNX Runtime / OpenVINO.

:class:`RTMPoseEstimator` builds the model in plain torch with mmpose's keys
(:mod:`engines.models.rtmpose`, backbone :mod:`engines.models.cspnext`), loads the checkpoint
strictly, exports it once as a named-tensor engine (``inputs (batch, 3, h, w)`` →
``simcc_x (batch, K, w·r)``, ``simcc_y (batch, K, h·r)``; flip test inside the graph when the
config asks for it), checks the engine against torch, and caches it under
:func:`engines.cache.cache_root` keyed by the model config, the checkpoint's hash, the
backend, the input size and the precision (``precision='auto'``, the default: bf16 on
OpenVINO where the CPU has it natively and the keypoints stay fp32's, :mod:`detectors.precision`;
else fp32). Every person of every frame given to one :meth:`estimate` call
is cropped (:mod:`detectors.topdown`, mmpose's test path) and run in one batch (split at
``max_batch``); keypoints come back in frame pixels with mmpose's SimCC scores.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detectors.errors import DetectorConfigError
from detectors.topdown import TopdownSpec, crop_people, decode_simcc, normalise, to_image
from stream.packet import Detections

log = logging.getLogger(__name__)

#: Bump when the cached RTMPose engine changes (inputs, outputs, what the graph does).
ENGINE_FORMAT = 1
#: Backends an RTMPose engine runs on: the two CPU engines, or the torch module itself.
BACKENDS = ("onnxruntime", "openvino", "torch", "torch-cuda")


def _plain(value: Any) -> Any:
    from engines.config import to_plain

    return to_plain(value)


class RTMPoseEstimator:
    """Top-down RTMPose (SimCC) from an mmpose config and checkpoint, as a compiled engine.

    Args:
        config: mmpose config file (``configs/pose/rtmpose/…`` or mmpose's own, ``_base_`` resolved).
        checkpoint: mmpose checkpoint (model-zoo ``{'state_dict', 'meta'}`` or a bare state dict).
        backend: ``auto`` (OpenVINO on x86, else ONNX Runtime), ``onnxruntime``, ``openvino``,
            ``torch`` / ``torch-cuda`` (the torch module itself, no engine).
        device: ``cpu``, or ``cuda[:N]`` with ``torch-cuda``.
        num_threads: CPU threads of the engine; None lets the backend choose.
        max_batch: Crops per inference call (more people are split into several calls).
        cfg_options: ``--cfg-options`` overrides of the config.
        trusted: Allow full unpickling of a checkpoint that needs it (``--trust-checkpoint``).
        cache: Reuse / store the built engine in the engine cache; False builds into
            ``engine_dir`` (or a fresh temporary folder) every time.
        engine_dir: Where to build when ``cache`` is False.
        precision: ``auto`` (the backend's fast precision if its keypoints agree with fp32 on
            the check frames, see :mod:`detectors.precision`; else fp32), ``fp32``, or
            ``bf16`` / ``fp16`` unchecked (OpenVINO). Ignored by the torch backends (fp32).

    Raises:
        DetectorConfigError: Not an RTMPose config, or an unknown backend / device, or
            ``max_batch`` < 1.
        ModelConfigError: The config file is missing or invalid (names file and key).
        CheckpointError: The checkpoint is missing, unreadable or does not fit the config
            (counts and first names of the missing / unexpected / mis-shaped keys).
        ExportError: The engine disagrees with torch.
    """

    name = "rtmpose"

    def __init__(
        self,
        config: str | Path,
        checkpoint: str | Path,
        *,
        backend: str = "auto",
        device: str = "cpu",
        num_threads: int | None = None,
        max_batch: int = 32,
        cfg_options: Mapping[str, Any] | None = None,
        trusted: bool = False,
        cache: bool = True,
        engine_dir: str | Path | None = None,
        precision: str = "auto",
    ) -> None:
        from engines.cache import resolve_device
        from engines.config import read_config
        from engines.errors import CheckpointError
        from engines.graph import GRAPH_PRECISIONS

        if max_batch < 1:
            raise DetectorConfigError(f"max_batch: expected >= 1, got {max_batch}")
        if precision not in GRAPH_PRECISIONS:
            raise DetectorConfigError(f"precision: expected one of {', '.join(GRAPH_PRECISIONS)}, got {precision!r}")
        self.config_path = Path(config)
        self.checkpoint_path = Path(checkpoint)
        cfg = read_config(self.config_path, cfg_options)
        where = f"config {self.config_path}"
        self.model_cfg: dict[str, Any] = _plain(cfg.get("model") or {})
        head = self.model_cfg.get("head") or {}
        if self.model_cfg.get("type") != "TopdownPoseEstimator" or head.get("type") != "RTMCCHead":
            raise DetectorConfigError(
                f"{where}: not an RTMPose model (TopdownPoseEstimator with RTMCCHead), got "
                f"{self.model_cfg.get('type')!r} with head {head.get('type')!r}; other mmpose models run "
                "with the 'mmpose' pose estimator"
            )
        self.spec = TopdownSpec.from_config(cfg, where)
        self.num_keypoints = int(head.get("out_channels", 17))
        if not self.checkpoint_path.is_file():
            raise CheckpointError(
                f"checkpoint {self.checkpoint_path}: no such file; pass the .pth of an mmpose RTMPose model "
                "(the model zoo's, or one saved by mmpose)"
            )
        name, dev = resolve_device(backend, device)
        if name not in BACKENDS:
            raise DetectorConfigError(
                f"backend {name!r}: RTMPose runs on {', '.join(BACKENDS)} (TensorRT engines are not built yet)"
            )
        self.backend = name
        self.max_batch = max_batch
        self._module: Any = None
        self._engine: Any = None
        self._torch_device = "cpu" if dev.kind == "cpu" else str(dev)
        self.precision = "fp32"
        if name in ("torch", "torch-cuda"):
            self._module = self._torch_model(trusted).to(self._torch_device)
        else:
            self._engine = self._open_engine(name, num_threads, trusted, cache, engine_dir, precision)
            self.precision = str(self._engine.manifest.precision)

    # ------------------------------------------------------------------ building

    def _torch_model(self, trusted: bool) -> Any:
        from engines.checkpoint import load_checkpoint
        from engines.models import build

        model = build(self.model_cfg)
        load_checkpoint(model, self.checkpoint_path, config_name=self.config_path, trusted=trusted)
        return model.eval()

    def _specs(self) -> tuple[list[Any], list[Any]]:
        from engines.tensors import TensorSpec

        w, h = self.spec.input_size
        r = self.spec.simcc_split_ratio
        k = self.num_keypoints
        inputs = [TensorSpec("inputs", ("batch", 3, h, w), layout="NCHW")]
        outputs = [TensorSpec("simcc_x", ("batch", k, int(w * r))), TensorSpec("simcc_y", ("batch", k, int(h * r)))]
        return inputs, outputs

    def _open_engine(
        self,
        backend: str,
        num_threads: int | None,
        trusted: bool,
        cache: bool,
        engine_dir: str | Path | None,
        precision: str = "fp32",
    ) -> Any:
        from engines.graph import resolve_graph_precision

        precision, tried = resolve_graph_precision(precision, backend)
        if cache:
            from engines.cache import cached_graph_engine
            from engines.checkpoint import file_sha256

            key = (repr(self.model_cfg), repr(self.spec), file_sha256(self.checkpoint_path))
            build = lambda out: self._build(out, backend, num_threads, trusted, precision, tried)  # noqa: E731
            return cached_graph_engine(
                "rtmpose", key, build, backend=backend, num_threads=num_threads, precision=precision
            )
        import tempfile

        from engines.engine import load_engine

        building = Path(engine_dir) if engine_dir is not None else Path(tempfile.mkdtemp(prefix="rtmpose-"))
        engine = self._build(building, backend, num_threads, trusted, precision, tried)
        if tried is None:
            return engine
        engine.close()  # reopened at the precision the check kept
        return load_engine(building, backend, num_threads=num_threads)

    def _build(
        self,
        out: Path,
        backend: str,
        num_threads: int | None,
        trusted: bool,
        precision: str = "fp32",
        tried: str | None = None,
    ) -> Any:
        from engines.graph import build_graph_engine, try_reduced_precision

        model = self._torch_model(trusted)
        inputs, outputs = self._specs()
        shape = inputs[0].shape[1:]
        rng = np.random.default_rng(0)
        example = {"inputs": rng.standard_normal((2, *shape)).astype(np.float32)}
        check = {"inputs": rng.standard_normal((3, *shape)).astype(np.float32)}
        log.info("building the %s RTMPose engine for %s in %s", backend, self.config_path.name, out)
        engine = build_graph_engine(
            model, inputs=inputs, outputs=outputs, example=example, check=check, out_dir=out, backend=backend,
            model_type="RTMPose", num_classes=self.num_keypoints, num_threads=num_threads,
            precision="fp32" if precision == "auto" else precision,
        )  # fmt: skip
        if tried is not None:
            try_reduced_precision(engine, tried, self.agree)
        return engine

    def agree(self, fp32: Any, reduced: Any, frames: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
        """Whether the ``reduced``-precision engine gives ``fp32``'s keypoints on the check frames.

        Every keypoint of every person HOG finds there (:func:`detectors.precision.check_people`)
        must stay within :data:`~detectors.precision.KEYPOINT_TOL_PX` px.

        Args:
            fp32: The fp32 engine.
            reduced: The same engine at the reduced precision.
            frames: Frames to compare on (default :func:`detectors.precision.check_frames`).

        Returns:
            ``kept``, the worst ``keypoint_px`` difference, the share of keypoints beyond the
            tolerance, the worst ``score`` difference and the ``people`` compared (or
            ``reason`` when there is nothing to compare on).
        """
        from detectors import precision as check

        tried = str(getattr(reduced.backend, "precision", "reduced"))  # its manifest still says fp32
        frames = check.check_frames() if frames is None else frames
        boxes = check.check_people(frames) if frames else []
        if not sum(len(b) for b in boxes):
            why = "no check frames" if not frames else "HOG found nobody on the check frames"
            return check.verdict({"tried": tried, "kept": False, "reason": f"{why} ({check.CHECK_VIDEO})"}, self.name)
        results = [np.concatenate(self._estimate(frames, boxes, engine)) for engine in (fp32, reduced)]
        worst, beyond = check.compare_keypoints(results[0], results[1])
        score = float(np.abs(results[0][..., 2] - results[1][..., 2]).max())
        kept = worst <= check.KEYPOINT_TOL_PX
        result: dict[str, Any] = {
            "kept": kept, "keypoint_px": round(worst, 3), "beyond_tol": round(beyond, 4), "score": round(score, 5),
            "people": int(sum(len(b) for b in boxes)), "frames": len(frames), "keypoint_tol_px": check.KEYPOINT_TOL_PX,
        }  # fmt: skip
        if not kept:
            result["reason"] = (
                f"{100 * beyond:.1f} % of the keypoints move more than {check.KEYPOINT_TOL_PX} px from fp32's "
                f"(up to {worst:.3g} px)"
            )
        return check.verdict({"tried": tried, **result}, self.name)

    # ------------------------------------------------------------------ inference

    def simcc(self, inputs: np.ndarray, engine: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """SimCC logits of normalised crops ``(N, 3, h, w)`` float32, in chunks of ``max_batch``.

        ``engine`` (default: this estimator's) is the one to run.
        """
        engine = engine if engine is not None else self._engine
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        for start in range(0, len(inputs), self.max_batch):
            chunk = np.ascontiguousarray(inputs[start : start + self.max_batch], dtype=np.float32)
            if engine is not None:
                out = engine.run({"inputs": chunk})
                xs.append(out["simcc_x"])
                ys.append(out["simcc_y"])
            else:
                import torch

                with torch.no_grad():
                    x, y = self._module(torch.from_numpy(chunk).to(self._torch_device))
                xs.append(x.cpu().numpy())
                ys.append(y.cpu().numpy())
        return np.concatenate(xs), np.concatenate(ys)

    def predict(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints ``(N, K, 2)`` (frame pixels) and scores ``(N, K)`` of ``boxes`` in one image."""
        (out,) = self._estimate([image], [np.asarray(boxes).reshape(-1, 4)])
        return out[..., :2], out[..., 2]

    def _estimate(
        self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray], engine: Any = None
    ) -> list[np.ndarray]:
        crops, centers, scales = [], [], []
        for image, xyxy in zip(images, boxes, strict=True):
            c, center, scale = crop_people(image, xyxy, self.spec)
            crops.append(c)
            centers.append(center)
            scales.append(scale)
        total = sum(len(b) for b in boxes)
        out = [np.zeros((len(b), self.num_keypoints, 3), np.float32) for b in boxes]
        if total == 0:
            return out
        inputs = normalise(np.concatenate(crops), self.spec)
        simcc_x, simcc_y = self.simcc(inputs) if engine is None else self.simcc(inputs, engine)
        keypoints, scores = decode_simcc(simcc_x, simcc_y, self.spec.simcc_split_ratio)
        row = 0
        for i, b in enumerate(boxes):
            n = len(b)
            if n:
                out[i][..., :2] = to_image(keypoints[row : row + n], centers[i], scales[i], self.spec.input_size)
                out[i][..., 2] = scores[row : row + n]
            row += n
        return out

    def estimate(self, images: Sequence[np.ndarray], detections: Sequence[Detections]) -> list[Detections]:
        if len(images) != len(detections):
            raise DetectorConfigError(
                f"estimate: expected one Detections per image, got {len(detections)} for {len(images)}"
            )
        keypoints = self._estimate(images, [d.xyxy for d in detections])
        return [
            Detections(d.xyxy, d.scores, d.labels, d.track_ids, dict(d.data), k)
            for d, k in zip(detections, keypoints, strict=True)
        ]

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
        self._engine = None
        self._module = None
