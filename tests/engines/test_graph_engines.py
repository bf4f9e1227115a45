"""Named-tensor engines: a two-input RoI head with a dynamic number of boxes, on every CPU backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from engines.engine import load_engine
from engines.errors import InputShapeError
from engines.graph import build_graph_engine
from engines.manifest import Manifest
from engines.tensors import TensorSpec, check_feeds


class TinyRoIHead(nn.Module):
    """Per-box scores from a clip's features and its boxes (``rois``: batch index + x1 y1 x2 y2)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(8 + 4, 3)

    def forward(self, features: torch.Tensor, rois: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = features.mean(dim=(2, 3))[rois[:, 0].long()]
        scores = torch.sigmoid(self.fc(torch.cat([pooled, rois[:, 1:] / 100.0], dim=1)))
        return scores, scores.argmax(dim=1)


INPUTS = [TensorSpec("features", ("batch", 8, 4, 4), layout="NCHW"), TensorSpec("rois", ("boxes", 5))]
OUTPUTS = [TensorSpec("scores", ("boxes", 3)), TensorSpec("labels", ("boxes",), "int64")]


def feeds(batch: int, boxes: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    rois = np.concatenate([rng.integers(0, batch, (boxes, 1)), rng.uniform(0, 100, (boxes, 4))], axis=1).astype(
        np.float32
    )
    return {"features": rng.standard_normal((batch, 8, 4, 4)).astype(np.float32), "rois": rois}


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_roi_head_engine_matches_torch_for_any_number_of_boxes(tmp_path: Path, backend: str) -> None:
    head = TinyRoIHead()
    engine = build_graph_engine(
        head, inputs=INPUTS, outputs=OUTPUTS, example=feeds(1, 2), check=feeds(2, 5, seed=1),
        out_dir=tmp_path / "head", backend=backend, model_type="TinyRoIHead", num_classes=3,
    )  # fmt: skip
    assert engine.manifest.validation["max_abs_diff"] <= 1e-4
    reopened = load_engine(tmp_path / "head")
    assert [t.name for t in reopened.inputs] == ["features", "rois"]
    assert reopened.outputs == OUTPUTS
    for batch, boxes in [(1, 1), (3, 7), (2, 0)]:
        f = feeds(batch, boxes, seed=batch + boxes)
        got = reopened.run(f)
        with torch.no_grad():
            want_scores, want_labels = head(torch.from_numpy(f["features"]), torch.from_numpy(f["rois"]))
        assert got["scores"].shape == (boxes, 3)
        np.testing.assert_allclose(got["scores"], want_scores.numpy(), atol=1e-5)
        np.testing.assert_array_equal(got["labels"], want_labels.numpy())
    reopened.close()
    engine.close()


def test_named_feeds_are_checked() -> None:
    good = feeds(2, 3)
    check_feeds(INPUTS, good)
    with pytest.raises(InputShapeError, match="missing rois"):
        check_feeds(INPUTS, {"features": good["features"]})
    with pytest.raises(InputShapeError, match="unknown extra"):
        check_feeds(INPUTS, {**good, "extra": good["rois"]})
    with pytest.raises(InputShapeError, match="axis 1 must be 8"):
        check_feeds(INPUTS, {**good, "features": np.zeros((2, 7, 4, 4), np.float32)})
    with pytest.raises(InputShapeError, match="expected dtype float32"):
        check_feeds(INPUTS, {**good, "rois": good["rois"].astype(np.int64)})
    shared = [TensorSpec("a", ("boxes", 2)), TensorSpec("b", ("boxes",))]
    with pytest.raises(InputShapeError, match="another input has boxes=3"):
        check_feeds(shared, {"a": np.zeros((3, 2), np.float32), "b": np.zeros(4, np.float32)})


def test_recognizer_manifest_lists_its_one_input_and_output() -> None:
    manifest = Manifest(
        model_type="Recognizer2D", backbone_type="ResNet", head_type="TSNHead", input_format="NCHW",
        input_shape=(8, 3, 224, 224), output_shape=(400,), num_classes=400, backend="onnxruntime",
    )  # fmt: skip
    assert manifest.inputs == [TensorSpec("inputs", ("batch", 8, 3, 224, 224), "float32", "NVCHW")]
    assert manifest.outputs == [TensorSpec("scores", ("batch", 400))]
    again = Manifest.from_dict(manifest.to_dict())
    assert again.inputs == manifest.inputs and again.outputs == manifest.outputs


def test_openvino_compiles_each_shape_statically_then_one_dynamic(tmp_path: Path, monkeypatch) -> None:
    from engines.backends import ov

    head = TinyRoIHead()
    engine = build_graph_engine(
        head, inputs=INPUTS, outputs=OUTPUTS, example=feeds(1, 2), out_dir=tmp_path / "head", backend="openvino",
        model_type="TinyRoIHead", num_classes=3,
    )  # fmt: skip
    backend = engine.backend
    backend._named.clear()
    monkeypatch.setattr(ov, "MAX_STATIC_SHAPES", 2)
    runs = [(1, 2), (3, 7), (1, 2), (2, 4), (2, 5)]
    for batch, boxes in runs:
        f = feeds(batch, boxes, seed=batch + boxes)
        got = engine.run(f)
        with torch.no_grad():
            want, _ = head(torch.from_numpy(f["features"]), torch.from_numpy(f["rois"]))
        np.testing.assert_allclose(got["scores"], want.numpy(), atol=1e-5)
    # the first two shape sets are static (the repeat reuses its compile), the others share the dynamic one
    assert sorted(backend._named) == [
        (("features", (1, 8, 4, 4)), ("rois", (2, 5))),
        (("features", (3, 8, 4, 4)), ("rois", (7, 5))),
    ]
    static = backend._named[(("features", (1, 8, 4, 4)), ("rois", (2, 5)))]
    assert all(d.is_static for d in static.model_inputs[0].get_partial_shape())
    assert backend._dynamic is not None
    engine.close()
