# The project's demo recognizer: a small SlowOnly (ResNet3d-18, 12 base channels) trained from
# scratch by `python -m pipelines.demo.train` on the synthetic actions of pipelines/demo/synthetic.py
# (8 classes: move left/right/up/down, grow, shrink, rotate clockwise/counter-clockwise).
# Input: one clip of 8 frames, every 4th frame (1.28 s at 25 fps), the whole frame resized to
# 112x64 (objects move across the frame, so nothing is cropped away). 1.16 M parameters.
model = dict(
    type="Recognizer3D",
    backbone=dict(
        type="ResNet3dSlowOnly",
        depth=18,
        base_channels=12,
        pretrained=None,
        lateral=False,
        conv1_kernel=(1, 7, 7),
        conv1_stride_t=1,
        pool1_stride_t=1,
        inflate=(0, 1, 1, 1),
        norm_eval=False,
    ),
    cls_head=dict(
        type="I3DHead",
        in_channels=96,
        num_classes=8,
        spatial_type="avg",
        dropout_ratio=0.3,
        average_clips="prob",
    ),
    data_preprocessor=dict(
        type="ActionDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape="NCTHW",
    ),
)

# MMAction2's test pipeline without DecordInit/DecordDecode: frames arrive decoded (RGB).
# Resize with keep_ratio=False takes scale as (width, height): the full frame becomes 112x64.
test_pipeline = [
    dict(type="SampleFrames", clip_len=8, frame_interval=4, num_clips=1, test_mode=True),
    dict(type="Resize", scale=(112, 64), keep_ratio=False),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]

dataset_meta = dict(
    classes=(
        "move_left",
        "move_right",
        "move_up",
        "move_down",
        "grow",
        "shrink",
        "rotate_clockwise",
        "rotate_counterclockwise",
    )
)

# Shipped artifacts, relative to this file (mmengine substitutes {{ fileDirname }}).
load_from = "{{ fileDirname }}/../../pipelines/demo/assets/demo_recognizer.pth"
label_file = "{{ fileDirname }}/../../pipelines/demo/assets/label_map.txt"
# Default source of the demo: a 31.6 s synthetic video (640x360, 25 fps) and its ground truth.
demo_video = "{{ fileDirname }}/../../pipelines/demo/assets/demo.mp4"
demo_gt = "{{ fileDirname }}/../../pipelines/demo/assets/demo_gt.json"
