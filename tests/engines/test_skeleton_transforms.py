"""Skeleton test pipelines against MMAction2 1.2's own transforms, on the same random keypoints."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from engines.errors import InputShapeError, ModelConfigError
from engines.skeleton.transforms import (
    COCO_SKELETONS,
    GeneratePoseTarget,
    SkeletonPipeline,
    SkeletonSample,
    UniformSampleFrames,
)
from tests.engines.mmaction_ref import import_reference, mmaction_registry

LEFT_KP = [1, 3, 5, 7, 9, 11, 13, 15]
RIGHT_KP = [2, 4, 6, 8, 10, 12, 14, 16]
LEFT_LIMB = [0, 2, 3, 6, 7, 8, 12, 14]
RIGHT_LIMB = [1, 4, 5, 9, 10, 11, 13, 15]
SKELETONS = [list(s) for s in ((0, 5), (0, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (11, 13), (13, 15),
                               (6, 12), (12, 14), (14, 16), (0, 1), (0, 2), (1, 3), (2, 4), (11, 12))]  # fmt: skip


def posec3d_pipeline(clip_len: int = 12, num_clips: int = 2, size: int = 32, **target: Any) -> list[dict[str, Any]]:
    """MMAction2's PoseC3D NTU-60 test pipeline at reduced sizes (48 frames × 10 clips, 64² there)."""
    gen = dict(type="GeneratePoseTarget", sigma=0.6, use_score=True, with_kp=True, with_limb=False, double=True,
               left_kp=LEFT_KP, right_kp=RIGHT_KP)  # fmt: skip
    gen.update(target)
    return [
        dict(type="UniformSampleFrames", clip_len=clip_len, num_clips=num_clips, test_mode=True),
        dict(type="PoseDecode"),
        dict(type="PoseCompact", hw_ratio=1.0, allow_imgpad=True),
        dict(type="Resize", scale=(-1, size)),
        dict(type="CenterCrop", crop_size=size),
        gen,
        dict(type="FormatShape", input_format="NCTHW_Heatmap"),
        dict(type="PackActionInputs"),
    ]


def gcn_pipeline(feats: list[str], clip_len: int = 10, num_clips: int = 3, mode: str = "zero") -> list[dict[str, Any]]:
    """MMAction2's ST-GCN COCO 2D test pipeline at reduced sizes (100 frames × 10 clips there)."""
    return [
        dict(type="PreNormalize2D"),
        dict(type="GenSkeFeat", dataset="coco", feats=feats),
        dict(type="UniformSampleFrames", clip_len=clip_len, num_clips=num_clips, test_mode=True),
        dict(type="PoseDecode"),
        dict(type="FormatGCNInput", num_person=2, mode=mode),
        dict(type="PackActionInputs"),
    ]


@pytest.fixture(scope="module")
def mm() -> Any:
    """MMAction2's transform registry (imported the careful way)."""
    mmaction_registry()
    import_reference("mmaction.datasets.transforms")
    from mmaction.registry import TRANSFORMS

    return TRANSFORMS


@pytest.fixture(autouse=True)
def _numpy_inf(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # MMAction2 1.2's PoseCompact uses np.Inf, which numpy 2 removed
    monkeypatch.setattr(np, "Inf", np.inf, raising=False)
    yield


def random_people(
    seed: int, m: int = 2, t: int = 30, v: int = 17, h: int = 240, w: int = 320, zero_frac: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """People wandering around a frame: some keypoints off-frame, some with zero score or zero coordinates."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform([0.2 * w, 0.2 * h], [0.8 * w, 0.8 * h], size=(m, 1, 1, 2))
    drift = np.cumsum(rng.normal(0, 3, size=(m, t, 1, 2)), axis=1)
    kp = (centre + drift + rng.normal(0, 0.12 * h, size=(m, t, v, 2))).astype(np.float32)
    kp[rng.random((m, t, v)) < 0.05] += np.float32(w)  # far off-frame
    score = rng.uniform(0, 1, size=(m, t, v)).astype(np.float32)
    score[rng.random((m, t, v)) < zero_frac] = 0
    kp[rng.random((m, t, v)) < zero_frac / 2] = 0  # missing keypoints, as in MMAction2's files
    return kp, score


def run_reference(mm: Any, pipeline: list[dict[str, Any]], kp: np.ndarray, score: np.ndarray | None,
                  img_shape: tuple[int, int]) -> np.ndarray:  # fmt: skip
    results: dict[str, Any] = dict(
        keypoint=kp.copy(), img_shape=img_shape, total_frames=kp.shape[1], start_index=0, modality="Pose", label=0
    )
    if score is not None:
        results["keypoint_score"] = score.copy()
    for step in pipeline:
        results = mm.build(copy.deepcopy(step))(results)
    return results["inputs"].numpy()


def check_pipeline(mm: Any, steps: list[dict[str, Any]], kp: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Our pipeline and MMAction2's on a 240x320 frame agree; returns ours."""
    ours = SkeletonPipeline.from_config(steps)(kp, score, (240, 320))
    check_same(ours, run_reference(mm, steps, kp, score, (240, 320)))
    return ours


def check_same(ours: np.ndarray, ref: np.ndarray, atol: float = 1e-6) -> None:
    assert ours.shape == ref.shape
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=0, atol=atol)


# --- whole pipelines ---------------------------------------------------------------------------

LIMB_TARGET = dict(
    with_kp=False, with_limb=True, skeletons=SKELETONS, left_limb=LEFT_LIMB, right_limb=RIGHT_LIMB, left_kp=LEFT_KP
)
HEATMAP_CASES = [
    # (persons, frames, pipeline kwargs): T < clip_len, clip_len <= T < 2 clip_len, T >= 2 clip_len
    pytest.param(1, 7, {}, id="M1-T7-short"),
    pytest.param(2, 17, {}, id="M2-T17-mid"),
    pytest.param(2, 40, {}, id="M2-T40-long"),
    pytest.param(1, 30, LIMB_TARGET, id="limb-double"),
    pytest.param(2, 25, dict(with_limb=True, double=False, use_score=False, sigma=1.1), id="kp+limb-noscore"),
    pytest.param(2, 25, dict(scaling=0.5, double=False), id="scaling"),
]


@pytest.mark.parametrize(("m", "t", "target"), HEATMAP_CASES)
def test_posec3d_pipeline_matches_mmaction(mm: Any, m: int, t: int, target: dict[str, Any]) -> None:
    kp, score = random_people(seed=t * 10 + m, m=m, t=t)
    steps = posec3d_pipeline(**target)
    ours = SkeletonPipeline.from_config(steps)(kp if m > 1 else kp[0], score if m > 1 else score[0], (240, 320))
    ref = run_reference(mm, steps, kp, score, (240, 320))
    check_same(ours, ref)
    assert ours.max() > 0.1  # real heatmaps, not an all-zero volume
    assert ours.shape == SkeletonPipeline.from_config(steps).output_shape(17)


def test_gym_and_k400_style_pipelines_match_mmaction(mm: Any) -> None:
    kp, score = random_people(seed=3, m=2, t=20)
    k400 = posec3d_pipeline(clip_len=8, num_clips=2, double=False)
    k400[3:5] = [dict(type="Resize", scale=(28, 28), keep_ratio=False)]  # k400: no crop, a fixed resize
    no_pad = posec3d_pipeline(clip_len=8, num_clips=1)
    no_pad[2] = dict(type="PoseCompact", hw_ratio=(0.8, 1.25), allow_imgpad=False, padding=0.1, threshold=5)
    for steps in (k400, no_pad):
        check_pipeline(mm, steps, kp, score)


def test_persons_off_frame_and_tiny_boxes_match_mmaction(mm: Any) -> None:
    kp, score = random_people(seed=5, m=2, t=16)
    kp[1] = np.float32(-50.0)  # second person wholly off-frame (left / above)
    steps = posec3d_pipeline(clip_len=8, num_clips=2)
    check_pipeline(mm, steps, kp, score)
    tiny = np.full_like(kp, 100.0) + np.random.default_rng(0).uniform(0, 3, kp.shape).astype(np.float32)
    # a box under PoseCompact's threshold is left alone; Resize then scales the whole frame
    check_pipeline(mm, steps, tiny, score)
    zero = np.zeros_like(score)  # nobody confident: an all-zero volume, as in MMAction2
    out = check_pipeline(mm, steps, kp, zero)
    assert not out.any()


@pytest.mark.parametrize("feats", [["j"], ["b"], ["jm"], ["bm"], ["j", "b", "bm"]])
@pytest.mark.parametrize(("m", "t", "mode"), [(1, 25, "zero"), (1, 8, "loop"), (2, 40, "zero"), (3, 15, "zero")])
def test_gcn_pipeline_matches_mmaction(mm: Any, feats: list[str], m: int, t: int, mode: str) -> None:
    kp, score = random_people(seed=t + m, m=m, t=t)
    steps = gcn_pipeline(feats, mode=mode)
    pipeline = SkeletonPipeline.from_config(steps)
    ours = pipeline(kp, score, (240, 320))
    check_same(ours, run_reference(mm, steps, kp, score, (240, 320)))
    assert ours.shape == pipeline.output_shape(17, m) == (3, 2, 10, 17, 3 * len(feats))


def test_decompress_pose_on_dense_arrays_matches_mmaction_on_compressed_ones(mm: Any) -> None:
    kp, score = random_people(seed=9, m=2, t=12, zero_frac=0.0)
    kp[:, [3, 7]] = 0  # frames without anybody
    score[:, [3, 7]] = 0
    steps = [dict(type="DecompressPose", squeeze=True, max_person=1), *posec3d_pipeline(clip_len=4, num_clips=1)]
    present = [f for f in range(12) if f not in (3, 7)]
    rows = np.concatenate([kp[:, present], score[:, present, :, None]], -1).transpose(1, 0, 2, 3)  # (frames, M, V, 3)
    results: dict[str, Any] = dict(keypoint=rows.reshape(-1, 17, 3), frame_inds=np.repeat(present, 2), total_frames=12,
                                   img_shape=(240, 320), start_index=0, modality="Pose")  # fmt: skip
    for step in steps:
        results = mm.build(copy.deepcopy(step))(results)
    check_same(SkeletonPipeline.from_config(steps)(kp, score, (240, 320)), results["inputs"].numpy())


# --- single transforms ---------------------------------------------------------------------------


@pytest.mark.parametrize("num_frames", [1, 3, 5, 11, 12, 13, 23, 24, 25, 100, 301])
@pytest.mark.parametrize(("clip_len", "num_clips"), [(12, 1), (12, 4), (5, 10)])
def test_uniform_sample_frames_matches_mmaction(mm: Any, num_frames: int, clip_len: int, num_clips: int) -> None:
    ref = mm.build(dict(type="UniformSampleFrames", clip_len=clip_len, num_clips=num_clips, test_mode=True))
    want = ref(dict(total_frames=num_frames, start_index=0))["frame_inds"]
    state = np.random.get_state()[1].copy()  # type: ignore[index]
    got = UniformSampleFrames(clip_len, num_clips, test_mode=True).frame_indices(num_frames)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # type: ignore[index]  # global RNG untouched


def test_heatmap_windows_clip_at_the_frame_edges_like_mmaction(mm: Any) -> None:
    # centres just outside / on / inside the borders, where MMAction2's int() truncation decides
    xs = np.array([-2.5, -1.9, -0.6, 0.0, 0.4, 15.2, 31.4, 31.9, 32.6, 33.7], dtype=np.float32)
    kp = np.stack(np.meshgrid(xs, xs), -1).reshape(1, 1, -1, 2)  # (1, 1, 100, 2)
    score = np.full(kp.shape[:3], 0.7, dtype=np.float32)
    ref = mm.build(dict(type="GeneratePoseTarget", sigma=0.6))
    want = ref(dict(keypoint=kp.copy(), keypoint_score=score, img_shape=(32, 32)))["imgs"]
    sample = SkeletonSample(kp.copy(), score.copy(), (32, 32))
    got = GeneratePoseTarget(sigma=0.6)(sample).heatmap
    assert got is not None
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)


# --- errors ---------------------------------------------------------------------------------------

BAD_CONFIGS = [
    ([dict(type="Flip", flip_ratio=0.5)], "unsupported skeleton transform 'Flip'; supported: .*CenterCrop"),
    ([dict(type="UniformSampleFrames", clip_len=8)], "test_mode=True"),
    ([dict(type="UniformSampleFrames", clip_len=0, test_mode=True)], r"clip_len: expected an int >= 1"),
    ([dict(type="Resize", scale=64)], "Resize.scale"),
    ([dict(type="GeneratePoseTarget", with_kp=False)], "with_kp or with_limb"),
    ([dict(type="GeneratePoseTarget", sigmaa=1)], r"unknown key\(s\) \['sigmaa'\]"),
    ([dict(type="FormatShape", input_format="NCTHW")], "NCTHW_Heatmap"),
    ([dict(type="GenSkeFeat", dataset="nturgb+d")], "3D keypoints"),
    ([dict(type="GenSkeFeat", dataset="coco", feats=["x"])], "GenSkeFeat.feats"),
    ([dict(type="FormatGCNInput", mode="wrap")], "FormatGCNInput.mode"),
    ([dict(type="PoseDecode")], "FormatShape.*or FormatGCNInput"),
    ([dict(type="GeneratePoseTarget"), dict(type="FormatShape", input_format="NCTHW_Heatmap")], "UniformSampleFrames"),
    ("oops", "expected a list of dicts"),
]


@pytest.mark.parametrize(("steps", "match"), BAD_CONFIGS)
def test_bad_configs_raise_config_errors(steps: Any, match: str) -> None:
    with pytest.raises(ModelConfigError, match=match):
        SkeletonPipeline.from_config(steps)


def test_bad_inputs_raise_input_shape_errors() -> None:
    heat = SkeletonPipeline.from_config(posec3d_pipeline(with_limb=True))
    gcn = SkeletonPipeline.from_config(gcn_pipeline(["j"]))
    kp, score = random_people(seed=1, m=1, t=10)
    with pytest.raises(InputShapeError, match="expected 17 keypoints per person, got 5"):
        gcn(kp[..., :5, :], score[..., :5], (240, 320))
    with pytest.raises(InputShapeError, match="need 17 keypoints, got 12"):
        heat(kp[..., :12, :], score[..., :12], (240, 320))
    with pytest.raises(InputShapeError, match="keypoint_score: expected shape"):
        heat(kp, score[:, :5], (240, 320))
    with pytest.raises(InputShapeError, match=r"\(T, V, 2\) or \(M, T, V, 2\)"):
        heat(kp[..., :1], score, (240, 320))
    with pytest.raises(InputShapeError, match="at least one person, frame"):
        heat(kp[:, :0], score[:, :0], (240, 320))
    with pytest.raises(InputShapeError, match="img_shape"):
        heat(kp, score, (240, 0))
    nan = kp.copy()
    nan[0, 0, 0] = np.nan  # without PoseCompact (which zeroes NaNs) a scored NaN cannot be drawn
    steps = posec3d_pipeline()
    del steps[2]
    with pytest.raises(InputShapeError, match="non-finite"):
        SkeletonPipeline.from_config(steps)(nan, np.ones_like(score), (240, 320))


def test_output_shape_needs_a_fixed_heatmap_size() -> None:
    steps = posec3d_pipeline()
    del steps[4]  # no CenterCrop: the size follows the keypoints' box
    with pytest.raises(ModelConfigError, match="depends on the keypoints"):
        SkeletonPipeline.from_config(steps).output_shape()
    assert SkeletonPipeline.from_config(posec3d_pipeline()).output_shape(17) == (4, 17, 12, 32, 32)
    assert len(COCO_SKELETONS) == 17
