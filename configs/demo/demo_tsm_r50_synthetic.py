# A ResNet-50-sized recognizer for the synthetic actions of pipelines/demo/synthetic.py (8 classes), trained
# from scratch by `python -m pipelines.demo.train_r50` to measure INT8 agreement on a trained R50
# (benchmarks/int8.py). TSM, not TSN: TSN averages per-frame scores, and the frames of move_left
# played backwards are those of move_right (likewise up/down, grow/shrink, the two rotations), so a
# TSN cannot tell these classes apart; TSM's temporal shift sees the order. Input: 8 frames, one
# per 8-frame segment of a 64-frame window (UniformSample; 2.6 s at 25 fps, so motion is large at this
# size), the whole frame resized to 64x32 (small, to train in minutes on a CPU). 23.5 M parameters.
model = dict(
    type="Recognizer2D",
    backbone=dict(type="ResNetTSM", pretrained=None, depth=50, norm_eval=False, shift_div=8, num_segments=8),
    cls_head=dict(
        type="TSMHead",
        num_classes=8,
        in_channels=2048,
        num_segments=8,
        spatial_type="avg",
        consensus=dict(type="AvgConsensus", dim=1),
        dropout_ratio=0.3,
        init_std=0.001,
        is_shift=True,
        average_clips="prob",
    ),
    data_preprocessor=dict(
        type="ActionDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape="NCHW",
    ),
)

test_pipeline = [
    dict(type="UniformSample", clip_len=8, num_clips=1, test_mode=True),
    dict(type="Resize", scale=(64, 32), keep_ratio=False),
    dict(type="FormatShape", input_format="NCHW"),
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
