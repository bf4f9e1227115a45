# A ResNet-50-sized recognizer for the synthetic actions of pipelines/demo/synthetic.py (8 classes), trained
# from scratch by `python -m pipelines.demo.train_r50` to measure INT8 agreement on a trained R50
# (benchmarks/int8.py): the demo recognizer's design (SlowOnly, 3D convolutions from res3 on) at
# MMAction2's full ResNet-50 depth and width. Input: one clip of 8 frames, every 4th frame (as the
# demo recognizer), the whole frame resized to 112x64 (as the demo recognizer; at 64x32 the objects are
# a few pixels and the motion too small to learn from: even the demo R18 stayed near chance there).
model = dict(
    type="Recognizer3D",
    backbone=dict(
        type="ResNet3dSlowOnly",
        depth=50,
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
        in_channels=2048,
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
