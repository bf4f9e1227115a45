"""ClipSpec parsing and preprocessing, checked against MMAction2's own pipeline and preprocessor."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engines.clip_spec import UNIFORM_SEGMENT_FRAMES, ClipSpec, ResizeSpec
from engines.sampling import uniform_sample
from engines.transforms import crop_boxes, output_shape, preprocess, resize_frame
from stream.errors import ConfigError
from tests.engines.mmaction_ref import import_reference

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "recognition"
MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]


def _pipeline(sampler: dict[str, Any], *steps: dict[str, Any], fmt: str) -> list[dict[str, Any]]:
    return [
        dict(type="DecordInit"),
        sampler,
        dict(type="DecordDecode"),
        *steps,
        dict(type="FormatShape", input_format=fmt),
        dict(type="PackActionInputs"),
    ]


def _video(num_frames: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)
    return [f for f in frames]


def _mmaction_reference(
    pipeline: list[dict[str, Any]], preprocessor: dict[str, Any], video_bgr: list[np.ndarray]
) -> np.ndarray:
    """Run MMAction2's transforms and ActionDataPreprocessor on the RGB version of the video,
    as its decoders would hand it over; returns the per-sample input ``(V, ...)``."""
    from tests.engines.mmaction_ref import mmaction_registry

    models = mmaction_registry()
    import torch
    from mmaction.registry import TRANSFORMS

    rgb = [np.ascontiguousarray(f[..., ::-1]) for f in video_bgr]
    results: dict[str, Any] = {"total_frames": len(rgb), "start_index": 0, "modality": "RGB"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in pipeline:
            if step["type"] in ("DecordInit", "PackActionInputs"):
                continue
            if step["type"] == "DecordDecode":
                results["imgs"] = [rgb[i] for i in results["frame_inds"]]
                results["img_shape"] = results["original_shape"] = rgb[0].shape[:2]
                continue
            results = TRANSFORMS.build(dict(step)).transform(results)
        inputs = torch.from_numpy(np.ascontiguousarray(results["imgs"]))
        pre = models.build(dict(type="ActionDataPreprocessor", **preprocessor))
        out = pre({"inputs": [inputs], "data_samples": None})["inputs"]
    return out[0].numpy()


def _ours(pipeline: list[dict[str, Any]], preprocessor: dict[str, Any], video_bgr: list[np.ndarray]) -> np.ndarray:
    spec = ClipSpec.from_pipeline(pipeline, preprocessor)
    inds = spec.sample(len(video_bgr))
    return preprocess([video_bgr[i] for i in inds.ravel()], spec)


PRE_2D = dict(mean=MEAN, std=STD, format_shape="NCHW")
PRE_3D = dict(mean=MEAN, std=STD, format_shape="NCTHW")

PARITY: list[tuple[str, list[dict[str, Any]], dict[str, Any], tuple[int, int, int]]] = [
    (
        "tsn-1x1x3-centercrop",
        _pipeline(
            dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=3, test_mode=True),
            dict(type="Resize", scale=(-1, 256)),
            dict(type="CenterCrop", crop_size=224),
            fmt="NCHW",
        ),
        PRE_2D,
        (30, 240, 320),
    ),
    (
        "3d-8x8x1-threecrop",
        _pipeline(
            dict(type="SampleFrames", clip_len=8, frame_interval=8, num_clips=1, test_mode=True),
            dict(type="Resize", scale=(-1, 256)),
            dict(type="ThreeCrop", crop_size=256),
            fmt="NCTHW",
        ),
        PRE_3D,
        (64, 180, 320),
    ),
    (
        "3d-4x2x3-threecrop-portrait",
        _pipeline(
            dict(type="SampleFrames", clip_len=4, frame_interval=2, num_clips=3, test_mode=True),
            dict(type="Resize", scale=(-1, 64)),
            dict(type="ThreeCrop", crop_size=64),
            fmt="NCTHW",
        ),
        PRE_3D,
        (40, 120, 90),
    ),
    (
        "c3d-keep-ratio-false",
        _pipeline(
            dict(type="SampleFrames", clip_len=16, frame_interval=1, num_clips=1, test_mode=True),
            dict(type="Resize", scale=(171, 128), keep_ratio=False),
            dict(type="CenterCrop", crop_size=112),
            fmt="NCTHW",
        ),
        PRE_3D,
        (20, 240, 320),
    ),
    (
        "tsn-1x1x2-tencrop-bicubic",
        _pipeline(
            dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=2, test_mode=True),
            dict(type="Resize", scale=(-1, 100), interpolation="bicubic"),
            dict(type="TenCrop", crop_size=(80, 72)),
            fmt="NCHW",
        ),
        PRE_2D,
        (9, 120, 160),
    ),
    (
        "tsm-twice-sample-float-scale-to-rgb",
        _pipeline(
            dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=4, twice_sample=True, test_mode=True),
            dict(type="Resize", scale=0.5),
            dict(type="CenterCrop", crop_size=(60, 50)),
            fmt="NCHW",
        ),
        dict(mean=MEAN, std=STD, to_rgb=True, format_shape="NCHW"),
        (17, 130, 170),
    ),
    (
        "dense-2x4x1-area-bound",
        _pipeline(
            dict(
                type="DenseSampleFrames",
                clip_len=2,
                frame_interval=4,
                num_clips=1,
                sample_range=8,
                num_sample_positions=3,
                test_mode=True,
            ),
            dict(type="Resize", scale=(120, 60), interpolation="area"),
            dict(type="ThreeCrop", crop_size=60),
            fmt="NCTHW",
        ),
        PRE_3D,
        (30, 150, 200),
    ),
    (
        "no-resize-no-crop-no-normalise",
        _pipeline(dict(type="SampleFrames", clip_len=3, frame_interval=2, num_clips=2, test_mode=True), fmt="NCTHW"),
        dict(format_shape="NCTHW"),
        (12, 24, 32),
    ),
]


@pytest.mark.parametrize(("pipeline", "pre", "video"), [p[1:] for p in PARITY], ids=[p[0] for p in PARITY])
def test_preprocess_matches_mmaction(
    pipeline: list[dict[str, Any]], pre: dict[str, Any], video: tuple[int, int, int]
) -> None:
    frames = _video(*video)
    ours = _ours(pipeline, pre, frames)
    ref = _mmaction_reference(pipeline, pre, frames)
    assert ours.dtype == np.float32 and ours.flags.c_contiguous
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4)
    spec = ClipSpec.from_pipeline(pipeline, pre)
    assert ours.shape == output_shape(spec, video[1], video[2])
    assert ours.shape[0] == spec.num_views


def test_fold_normalisation_gives_raw_rgb() -> None:
    pipeline = PARITY[0][1]
    spec = ClipSpec.from_pipeline(pipeline, PRE_2D)
    frames = _video(3, 240, 320)
    raw = preprocess(frames, spec, normalize=False)
    norm = preprocess(frames, spec)
    resized = resize_frame(frames[0], spec.resize)
    box = crop_boxes(*resized.shape[:2], spec)[0]
    crop = resized[box.y : box.y + box.height, box.x : box.x + box.width]
    np.testing.assert_array_equal(raw[0], crop[..., ::-1].transpose(2, 0, 1).astype(np.float32))
    mean, std = np.float32(MEAN).reshape(3, 1, 1), np.float32(STD).reshape(3, 1, 1)
    np.testing.assert_allclose(norm, (raw - mean) / std, atol=1e-5)


def test_repeated_frames_and_resized_input() -> None:
    spec = ClipSpec.from_pipeline(PARITY[1][1], PRE_3D)
    frames = _video(2, 180, 320)
    sampled = [frames[i % 2] for i in range(spec.frames_per_sample)]  # same arrays reused
    direct = preprocess(sampled, spec)
    small = [resize_frame(f, spec.resize) for f in frames]
    pre_resized = preprocess([small[i % 2] for i in range(spec.frames_per_sample)], spec, resized=True)
    np.testing.assert_array_equal(direct, pre_resized)
    out = np.empty_like(direct)
    assert preprocess(sampled, spec, out=out) is out
    np.testing.assert_array_equal(out, direct)


@pytest.mark.parametrize(
    ("frames", "kwargs", "match"),
    [
        (_video(7, 240, 320), {}, "expected 8 frames"),
        ([np.zeros((240, 320), np.uint8)] * 8, {}, "H×W×3 uint8"),
        (_video(4, 240, 320) + _video(4, 200, 320), {}, "all frames of a sample must match"),
        (_video(8, 240, 320), {"out": np.empty((1, 3, 8, 256, 256), np.float32)}, "out: expected"),
    ],
)
def test_preprocess_rejects_bad_input(frames: list[np.ndarray], kwargs: dict[str, Any], match: str) -> None:
    spec = ClipSpec.from_pipeline(PARITY[1][1], PRE_3D)
    with pytest.raises(ValueError, match=match):
        preprocess(frames, spec, **kwargs)


def test_crop_must_fit() -> None:
    spec = ClipSpec(clip_len=1, crop="CenterCrop", crop_size=(300, 100), input_format="NCHW")
    with pytest.raises(ValueError, match="larger than the resized frame"):
        crop_boxes(200, 250, spec)
    three = dataclasses.replace(spec, crop="ThreeCrop", crop_size=(100, 100))
    with pytest.raises(ValueError, match="full height or width"):
        crop_boxes(200, 250, three)


@pytest.mark.parametrize(
    ("scale", "keep_ratio", "size", "expected"),
    [
        ((-1, 256), True, (1920, 1080), (455, 256)),
        ((-1, 256), True, (1080, 1920), (256, 455)),
        ((256, -1), True, (640, 480), (341, 256)),
        ((340, 256), True, (1920, 1080), (340, 191)),  # bounded by the long side
        ((340, 256), True, (400, 400), (256, 256)),
        ((171, 128), False, (1920, 1080), (171, 128)),
        (0.5, True, (101, 51), (51, 26)),  # int(x * 0.5 + 0.5)
    ],
)
def test_resize_size_rule(scale: Any, keep_ratio: bool, size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert ResizeSpec(scale, keep_ratio).output_size(*size) == expected


def test_resize_size_rule_matches_mmcv() -> None:
    mmcv = import_reference("mmcv")
    for w, h in [(1920, 1080), (1280, 720), (641, 479), (333, 777), (17, 9)]:
        for scale in [(-1, 256), (-1, 182), (340, 256), (-1, 128)]:
            bound = (np.inf, max(scale)) if min(scale) == -1 else scale
            assert ResizeSpec(scale).output_size(w, h) == mmcv.rescale_size((w, h), bound), (w, h, scale)


BASE = [
    dict(type="SampleFrames", clip_len=1, num_clips=8, test_mode=True),
    dict(type="FormatShape", input_format="NCHW"),
]


@pytest.mark.parametrize(
    ("pipeline", "pre", "match"),
    [
        (
            [*BASE[:1], dict(type="RandomResizedCrop"), *BASE[1:]],
            None,
            r"unsupported transform 'RandomResizedCrop'.*"
            r"supported: SampleFrames, DenseSampleFrames, UniformSample, Resize, CenterCrop, ThreeCrop, TenCrop, "
            r"FormatShape",
        ),
        (BASE[1:], None, "no frame sampler"),
        ([dict(type="UniformSample", clip_len=8), *BASE[1:]], None, "UniformSample needs test_mode=True"),
        (
            [dict(type="UniformSample", clip_len=8, frame_interval=2, test_mode=True), *BASE[1:]],
            None,
            r"UniformSample has unknown keys \['frame_interval'\]",
        ),
        ([dict(BASE[0], test_mode=False), *BASE[1:]], None, "test_mode=True"),
        ([dict(BASE[0], temporal_jitter=True), *BASE[1:]], None, "temporal_jitter"),
        ([dict(BASE[0], clip_len=0), *BASE[1:]], None, "clip_len: expected a positive int"),
        ([dict(BASE[0], out_of_bound_opt="wrap"), *BASE[1:]], None, "out_of_bound_opt"),
        ([dict(BASE[0], bogus=1), *BASE[1:]], None, r"unknown keys \['bogus'\]"),
        ([BASE[0], BASE[0], *BASE[1:]], None, "a second sampler"),
        ([BASE[0], dict(type="Resize", scale=(-1, 256), keep_ratio=False), *BASE[1:]], None, "-1 needs keep_ratio"),
        ([BASE[0], dict(type="Resize", scale=256), *BASE[1:]], None, "Resize.scale: expected a float factor"),
        ([BASE[0], dict(type="Resize", scale=(-1, 256), interpolation="cubic"), *BASE[1:]], None, "interpolation"),
        (
            [BASE[0], dict(type="CenterCrop", crop_size=224), dict(type="Resize", scale=(-1, 256)), *BASE[1:]],
            None,
            "Resize after a crop",
        ),
        ([BASE[0], dict(type="ThreeCrop"), *BASE[1:]], None, "ThreeCrop needs crop_size"),
        ([BASE[0], dict(type="FormatShape", input_format="NTCHW")], None, "input_format"),
        (BASE, dict(format_shape="NCTHW"), "disagrees"),
        (BASE[:1], None, "no FormatShape"),
        (BASE, dict(mean=MEAN), "mean and std go together"),
        (BASE, dict(mean=MEAN[:2], std=STD[:2]), "3 numbers"),
        (BASE, dict(type="MultiModalDataPreprocessor"), "ActionDataPreprocessor"),
        ("SampleFrames", None, "list of transform dicts"),
        ([dict(clip_len=8)], None, "'type' key"),
    ],
)
def test_clip_spec_parse_errors(pipeline: Any, pre: dict[str, Any] | None, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ClipSpec.from_pipeline(pipeline, pre)


def test_from_config_names_the_file_and_reads_the_preprocessor() -> None:
    from mmengine.config import Config

    cfg = Config(
        dict(
            model=dict(data_preprocessor=dict(mean=MEAN, std=STD, format_shape="NCTHW", to_rgb=True)),
            test_pipeline=_pipeline(
                dict(type="SampleFrames", clip_len=32, frame_interval=2, num_clips=10, test_mode=True),
                dict(type="Resize", scale=(-1, 256)),
                dict(type="ThreeCrop", crop_size=256),
                fmt="NCTHW",
            ),
        )
    )
    spec = ClipSpec.from_config(cfg)
    assert (spec.clip_len, spec.frame_interval, spec.num_clips) == (32, 2, 10)
    assert spec.resize == ResizeSpec((-1, 256)) and spec.crop == "ThreeCrop" and spec.crop_size == (256, 256)
    assert spec.mean == tuple(MEAN) and spec.std == tuple(STD) and spec.bgr_to_rgb is False
    assert spec.num_views == 30 and spec.window_frames == 640
    assert spec.input_shape(720, 1280) == (30, 3, 32, 256, 256)
    cfg.test_pipeline.insert(1, dict(type="Flip", flip_ratio=0.5))
    with pytest.raises(ConfigError, match=r"my_cfg.py: test_pipeline\[1\]: unsupported transform 'Flip'"):
        ClipSpec.from_config(cfg, file="my_cfg.py")
    with pytest.raises(ConfigError, match="no 'val_pipeline'"):
        ClipSpec.from_config(cfg, pipeline_key="val_pipeline")


def test_window_frames() -> None:
    tsn = ClipSpec(clip_len=1, num_clips=8, input_format="NCHW")
    assert tsn.window_frames == 8 and tsn.num_views == 8
    assert dataclasses.replace(tsn, twice_sample=True).num_views == 16
    slow = ClipSpec(clip_len=8, frame_interval=8)
    assert slow.window_frames == 64 and slow.num_views == 1
    dense = ClipSpec(clip_len=32, frame_interval=2, sampler="DenseSampleFrames")
    assert dense.window_frames == 640 and dense.clips_per_sample == 10
    x3d = ClipSpec(clip_len=13, frame_interval=6, num_clips=1, target_fps=30)
    assert x3d.window_frames == 78 and x3d.window_frames_at(30) == 78 and x3d.window_frames_at(15) == 39
    uniform = ClipSpec.from_pipeline(
        [
            dict(type="UniformSample", clip_len=8, num_clips=3, test_mode=True),
            dict(type="FormatShape", input_format="NCTHW"),
        ]
    )
    assert uniform.sampler == "UniformSample" and uniform.num_views == 3
    assert uniform.window_frames == 8 * UNIFORM_SEGMENT_FRAMES == uniform.window_frames_at(15)
    np.testing.assert_array_equal(uniform.sample(64), uniform_sample(64, 8, 3))


ROUND_TRIP = [
    pytest.param(ClipSpec(clip_len=8), None, id="defaults"),
    pytest.param(
        ClipSpec(
            clip_len=1,
            num_clips=8,
            twice_sample=True,
            resize=ResizeSpec((-1, 256)),
            crop="ThreeCrop",
            crop_size=(256, 224),
            input_format="NCHW",
            mean=tuple(MEAN),
            std=tuple(STD),
            bgr_to_rgb=False,
        ),
        (224, 256),
        id="tsm-twice-threecrop",
    ),
    pytest.param(
        ClipSpec(clip_len=32, frame_interval=2, sampler="DenseSampleFrames", sample_range=32, num_sample_positions=3),
        None,
        id="dense",
    ),
    pytest.param(
        ClipSpec(clip_len=13, frame_interval=6, target_fps=30, resize=ResizeSpec((182, 160), keep_ratio=False)),
        (160, 182),
        id="x3d-fixed-resize",
    ),
    pytest.param(ClipSpec(clip_len=4, resize=ResizeSpec(0.5, interpolation="area")), None, id="float-scale"),
]


@pytest.mark.parametrize(("spec", "fixed_hw"), ROUND_TRIP)
def test_to_dict_round_trips_through_json(spec: ClipSpec, fixed_hw: tuple[int, int] | None) -> None:
    data = json.loads(json.dumps(spec.to_dict()))
    assert data == spec.to_dict()
    assert ClipSpec.from_dict(data) == spec
    assert spec.fixed_hw == fixed_hw
    if fixed_hw is not None:
        assert spec.output_hw(720, 1280) == fixed_hw


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"clip_len": 8, "crop_hw": [224, 224]}, r"unknown keys \['crop_hw'\]"),
        ({"num_clips": 2}, "missing key 'clip_len'"),
        ({"clip_len": 0}, "clip_len: expected a positive int"),
        ({"clip_len": 8, "resize": [256, 256]}, "ClipSpec.resize: expected a dict"),
        ({"clip_len": 8, "resize": {"keep_ratio": True}}, "Resize.scale"),
        ([8], "expected a dict, got list"),
    ],
)
def test_from_dict_rejects_bad_data(data: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ClipSpec.from_dict(data)


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.py")), ids=lambda p: p.name)
def test_every_shipped_config_parses(path: Path) -> None:
    spec = ClipSpec.from_config(path)
    assert spec.num_views >= 1 and spec.window_frames >= spec.clip_len
    assert spec.bgr_to_rgb and spec.normalize
