"""Annotators and the annotate stage: pixels change where expected, inputs stay untouched."""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import pytest

from stream.annotate import (
    AnnotateStage,
    BoxAnnotator,
    Color,
    LabelAnnotator,
    OverlayAnnotator,
    SkeletonAnnotator,
    TextStyle,
    default_annotators,
    format_time,
)
from stream.annotate.style import text_size
from stream.errors import ConfigError
from stream.packet import Detections, FramePacket, Prediction, SourceEvent

H, W = 120, 160


def packet(
    i: int = 0,
    *,
    detections: Detections | None = None,
    predictions: list[Prediction] | None = None,
    size: tuple[int, int] = (H, W),
    source_id: str = "cam",
    capture_ns: int | None = None,
) -> FramePacket:
    image = np.full((*size, 3), 90, np.uint8)
    image.flags.writeable = False  # as after crossing a link
    return FramePacket(
        image, source_id, i, i, Fraction(1, 25), time.monotonic_ns() if capture_ns is None else capture_ns,
        detections=detections, predictions=predictions or [],
    )  # fmt: skip


def prediction(scores: tuple[float, ...] = (0.8, 0.15), track_id: int | None = None) -> Prediction:
    names = ("running", "walking", "jumping")[: len(scores)]
    return Prediction(list(range(len(scores))), list(scores), names, 0.0, 1.0, time.monotonic_ns(), track_id)


def changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Boolean H×W mask of pixels that differ."""
    return (before != after).any(axis=2)


# -- colours ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("white", (255, 255, 255)),
        ("Red", (0, 0, 255)),
        (" blue ", (255, 0, 0)),
        ("#ff8000", (0, 128, 255)),
        ("#0f0", (0, 255, 0)),
        ("10,20,30", (10, 20, 30)),
        ((1, 2, 3), (1, 2, 3)),
        ([0, 0, 0], (0, 0, 0)),
        (np.array([5, 6, 7]), (5, 6, 7)),
        (Color(9, 8, 7), (9, 8, 7)),
        ("chartreuse", pytest.raises(ConfigError, match="white")),
        ("#12345", pytest.raises(ConfigError, match="rrggbb")),
        ("#gggggg", pytest.raises(ConfigError, match="rrggbb")),
        ((256, 0, 0), pytest.raises(ConfigError, match=r"0\.\.255")),
        ((-1, 0, 0), pytest.raises(ConfigError, match=r"0\.\.255")),
        ((1.5, 2, 3), pytest.raises(ConfigError, match="integers")),
        ((1, 2), pytest.raises(ConfigError)),
        (3, pytest.raises(ConfigError)),
        ("1,2", pytest.raises(ConfigError)),
    ],
)
def test_color_parse(value, expected):
    if isinstance(expected, tuple):
        assert Color.parse(value).bgr == expected
    else:
        with expected:
            Color.parse(value)


def test_color_error_is_a_value_error_listing_names():
    with pytest.raises(ValueError, match=r"black, blue, cyan") as info:
        Color.parse("nope")
    assert "'#rrggbb'" in str(info.value)


def test_font_scale_follows_frame_height():
    style = TextStyle()
    assert text_size("running: 0.80", style, 1080)[1] > text_size("running: 0.80", style, 240)[1]
    fixed = TextStyle(font_scale=1.0)
    assert text_size("x", fixed, 1080) == text_size("x", fixed, 240)
    with pytest.raises(ConfigError, match="font_scale"):
        TextStyle(font_scale=0)


# -- labels -------------------------------------------------------------------------------


def test_label_annotator_draws_top_left_and_keeps_input():
    p = packet(predictions=[prediction()])
    original = p.image.copy()
    out = LabelAnnotator().annotate(p.image, p)
    assert out is not p.image and out.flags.writeable  # read-only input: drawn on a copy
    np.testing.assert_array_equal(p.image, original)
    mask = changed(original, out)
    assert mask[:30, :80].mean() > 0.3  # the label box at the top-left corner
    assert not mask[H // 2 :, :].any()  # two lines only: nothing in the lower half


def test_label_annotator_font_color_and_lines():
    ann = LabelAnnotator(font_color="red", background=None, top_k=1, font_scale=0.6)
    p = packet(predictions=[prediction()])
    out = ann.annotate(p.image.copy(), p)
    reds = (out[..., 2] > 200) & (out[..., 0] < 60) & (out[..., 1] < 60)
    assert reds[:40, :100].any()
    assert ann.lines(prediction((0.8, 0.15))) == ["running: 0.80"]


def test_label_threshold_hides_low_scores():
    ann = LabelAnnotator(threshold=0.5)
    assert ann.lines(prediction((0.8, 0.15))) == ["running: 0.80"]
    p = packet(predictions=[prediction((0.3, 0.2))])
    out = ann.annotate(p.image.copy(), p)
    np.testing.assert_array_equal(out, p.image)


def test_label_annotator_without_predictions_draws_nothing():
    p = packet()
    out = LabelAnnotator().annotate(p.image.copy(), p)
    np.testing.assert_array_equal(out, p.image)


def test_label_persists_until_hold_expires():
    ann = LabelAnnotator(hold_s=0.1)
    first = packet(0, predictions=[prediction()])
    ann.annotate(first.image.copy(), first)
    later = packet(2)  # 0.08 s later, no prediction of its own
    assert changed(later.image, ann.annotate(later.image.copy(), later)).any()
    much_later = packet(10)  # 0.4 s later
    np.testing.assert_array_equal(ann.annotate(much_later.image.copy(), much_later), much_later.image)
    other_source = packet(2, source_id="other")
    np.testing.assert_array_equal(ann.annotate(other_source.image.copy(), other_source), other_source.image)


def test_per_track_labels_go_inside_the_box():
    dets = Detections([[80, 60, 155, 115]], [0.9], [0], [7])
    p = packet(detections=dets, predictions=[prediction(track_id=7)])
    out = LabelAnnotator(font_scale=0.4).annotate(p.image.copy(), p)
    mask = changed(p.image, out)
    assert mask[62:80, 82:150].any()
    assert not mask[:55, :].any()  # no whole-frame label


def test_a_persons_skeleton_label_and_ava_actions_are_both_drawn():
    dets = Detections([[10, 10, 150, 115]], [0.9], [0], [7])
    single = prediction(scores=(0.8,), track_id=7)
    multi = prediction(scores=(0.9, 0.7), track_id=7)
    multi.multi_label = True
    annotator = LabelAnnotator(font_scale=0.4)
    first = packet(0, detections=dets, predictions=[single])
    one = changed(first.image, annotator.annotate(first.image.copy(), first))
    later = packet(1, detections=dets, predictions=[multi])  # the AVA result arrives later: the skeleton label stays
    both = changed(later.image, annotator.annotate(later.image.copy(), later))
    rows_one, rows_both = np.flatnonzero(one.any(axis=1)), np.flatnonzero(both.any(axis=1))
    line = rows_one.max() - rows_one.min() + 1
    assert rows_both.max() - rows_one.min() + 1 >= 2.5 * line  # three lines: the skeleton label, then two actions
    assert (both | ~one).all()  # the first line is still drawn


@pytest.mark.parametrize("kwargs", [{"top_k": 0}, {"hold_s": -1}, {"text_format": "{label}"}, {"font_color": "nope"}])
def test_label_annotator_rejects_bad_config(kwargs):
    with pytest.raises(ConfigError):
        LabelAnnotator(**kwargs)


# -- boxes --------------------------------------------------------------------------------


def test_box_annotator_draws_at_the_box():
    dets = Detections([[40, 50, 120, 100]], [0.9], [0], [3])
    p = packet(detections=dets)
    out = BoxAnnotator(show_labels=False, thickness=2).annotate(p.image.copy(), p)
    mask = changed(p.image, out)
    assert mask[50, 60:100].all() and mask[100, 60:100].all()  # top and bottom edges
    assert mask[60:90, 40].all() and mask[60:90, 120].all()  # left and right edges
    assert not mask[60:90, 50:110].any()  # inside untouched
    assert not mask[:45, :].any() and not mask[:, :35].any()  # outside untouched


def test_box_colours_follow_track_ids():
    dets = Detections([[10, 10, 60, 60], [90, 10, 150, 60]], [0.9, 0.8], [0, 0], [1, 2])
    p = packet(detections=dets)
    ann = BoxAnnotator(show_labels=False)
    out = ann.annotate(p.image.copy(), p)
    assert tuple(out[10, 30]) == ann.box_color(0, 1).bgr
    assert tuple(out[10, 120]) == ann.box_color(0, 2).bgr
    assert ann.box_color(0, 1) != ann.box_color(0, 2)
    fixed = BoxAnnotator(show_labels=False, color="yellow").annotate(p.image.copy(), p)
    assert tuple(fixed[10, 120]) == (0, 255, 255)


def test_box_tag_text():
    ann = BoxAnnotator(class_names=["person"])
    assert ann.tag(0, 0.91, 4) == "#4 person 0.91"
    assert BoxAnnotator(show_scores=False).tag(0, 0.5, None) == ""
    dets = Detections([[40, 50, 120, 100]], [0.9], [0], [3])
    p = packet(detections=dets)
    mask = changed(p.image, ann.annotate(p.image.copy(), p))
    assert mask[30:50, 40:80].any()  # the tag sits above the box


@pytest.mark.parametrize("detections", [None, Detections.empty()])
def test_box_annotator_without_boxes(detections):
    p = packet(detections=detections)
    np.testing.assert_array_equal(BoxAnnotator().annotate(p.image.copy(), p), p.image)


def test_box_min_score_and_out_of_frame_boxes():
    dets = Detections([[40, 50, 120, 100], [-50, -50, 500, 500]], [0.1, 0.9], [0, 0])
    p = packet(detections=dets)
    out = BoxAnnotator(show_labels=False, min_score=0.5).annotate(p.image.copy(), p)
    mask = changed(p.image, out)
    assert not mask[50, 60:100].any()  # low-score box skipped
    assert mask[0, :].all()  # the huge box is clipped to the frame edge


# -- skeletons ----------------------------------------------------------------------------


def people(keypoints: np.ndarray, scores: np.ndarray, track_ids: list[int] | None = None) -> Detections:
    """One row per person: a box around its keypoints, and the keypoints as ``[x, y, score]``."""
    n = len(keypoints)
    boxes = np.zeros((n, 4), np.float32)
    if n and keypoints.shape[1]:
        boxes = np.concatenate([keypoints.min(axis=1), keypoints.max(axis=1)], axis=1)
    return Detections(
        boxes, np.ones(n), np.zeros(n), track_ids, keypoints=np.concatenate([keypoints, scores[..., None]], axis=2)
    )


def test_skeleton_draws_visible_edges_only():
    keypoints = np.zeros((1, 17, 2), np.float32)
    scores = np.zeros((1, 17), np.float32)
    keypoints[0, 5], keypoints[0, 6] = (30, 60), (130, 60)  # shoulders: joined by an edge
    scores[0, [5, 6]] = 0.9
    keypoints[0, 0], scores[0, 0] = (80, 20), 0.1  # nose below the threshold
    p = packet(detections=people(keypoints, scores))
    out = SkeletonAnnotator(kpt_threshold=0.3).annotate(p.image.copy(), p)
    mask = changed(p.image, out)
    assert mask[60, 40:120].all()  # the shoulder line
    assert mask[60, 30] and mask[60, 130]  # the keypoints
    assert not mask[10:30, 70:90].any()  # the nose is hidden
    assert not mask[90:, :].any()


def test_skeleton_handles_other_layouts_and_no_poses():
    p = packet(detections=people(np.full((2, 5, 2), 50, np.float32), np.ones((2, 5), np.float32)))
    assert changed(p.image, SkeletonAnnotator().annotate(p.image.copy(), p)).any()
    empty = packet(detections=people(np.zeros((0, 17, 2)), np.zeros((0, 17))))
    np.testing.assert_array_equal(SkeletonAnnotator().annotate(empty.image.copy(), empty), empty.image)
    with pytest.raises(ConfigError, match="pairs"):
        SkeletonAnnotator(edges=[(1, 2, 3)])
    boxes_only = packet(detections=Detections(np.array([[10, 10, 50, 50]]), np.ones(1), np.zeros(1)))
    np.testing.assert_array_equal(SkeletonAnnotator().annotate(boxes_only.image.copy(), boxes_only), boxes_only.image)


def test_skeleton_colour_follows_the_track():
    keypoints = np.zeros((2, 17, 2), np.float32)
    keypoints[0, 5], keypoints[0, 6] = (20, 30), (60, 30)
    keypoints[1, 5], keypoints[1, 6] = (90, 90), (140, 90)
    scores = np.zeros((2, 17), np.float32)
    scores[:, [5, 6]] = 0.9
    p = packet(detections=people(keypoints, scores, track_ids=[3, 4]))
    out = SkeletonAnnotator(color_by_track=True, palette=["red", "blue"], radius=2, thickness=3).annotate(
        p.image.copy(), p
    )
    assert tuple(out[30, 40]) == Color.parse("blue").bgr  # track 3 -> palette[3 % 2]
    assert tuple(out[90, 115]) == Color.parse("red").bgr  # track 4 -> palette[0]


# -- overlay ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "00:00.000"), (4.92, "00:04.920"), (61.5, "01:01.500"), (3600, "60:00.000"), (-1.25, "-00:01.250")],
)
def test_format_time(seconds, text):
    assert format_time(seconds) == text


def test_overlay_text_fps_and_latencies():
    now = [10_000_000_000]
    ann = OverlayAnnotator(clock=lambda: now[0])
    first = packet(3, capture_ns=now[0] - 85_000_000)
    assert ann.text(first) == "#3 | 00:00.120 | -- fps | latency 85 ms"
    for i in range(4, 10):
        now[0] += 40_000_000  # 25 fps
        text = ann.text(packet(i, capture_ns=now[0] - 50_000_000))
    assert "25.0 fps" in text and "latency 50 ms" in text and "label" not in text
    labelled = packet(10, capture_ns=now[0], predictions=[prediction()])
    labelled.predictions[0].capture_ns = now[0] - 420_000_000
    assert ann.text(labelled).endswith("label 420 ms")
    assert ann.text(packet(11, capture_ns=now[0])).endswith("label 420 ms")  # shown until the next one


def test_overlay_draws_in_its_corner():
    p = packet(1)
    out = OverlayAnnotator(corner="bottom-left").annotate(p.image, p)
    mask = changed(p.image, out)
    assert mask[H - 20 :, :40].any() and not mask[: H // 2, :].any()
    out = OverlayAnnotator(corner="top-right", show_frame=False).annotate(p.image, p)
    mask = changed(p.image, out)
    assert mask[:20, W - 40 :].any() and not mask[H // 2 :, :].any()
    with pytest.raises(ConfigError, match="corner"):
        OverlayAnnotator(corner="middle")  # type: ignore[arg-type]


# -- the stage ----------------------------------------------------------------------------


def test_annotate_stage_copies_once_and_replaces_the_image():
    dets = Detections([[40, 50, 120, 100]], [0.9], [0], [3])
    p = packet(detections=dets, predictions=[prediction()])
    original = p.image
    snapshot = original.copy()
    stage = AnnotateStage(default_annotators())
    out = stage.process(p)
    assert out is p and p.image is not original and p.image.flags.writeable
    np.testing.assert_array_equal(original, snapshot)  # the received frame is untouched
    assert changed(snapshot, p.image).any()
    event = SourceEvent("cam", "connected", "ok", 0.0)
    assert stage.on_event(event) is event


def test_annotate_stage_validates_and_passes_through_without_annotators():
    with pytest.raises(ConfigError, match="annotate"):
        AnnotateStage([object()])  # type: ignore[list-item]
    p = packet()
    image = p.image
    assert AnnotateStage([]).process(p).image is image
