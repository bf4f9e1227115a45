# TSM with a MobileNetV2 backbone: MMAction2 1.x's configs/_base_/models/tsm_mobilenet_v2.py (model section).
preprocess_cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])

model = dict(
    type="Recognizer2D",
    backbone=dict(type="MobileNetV2TSM", shift_div=8, num_segments=8, is_shift=True, pretrained="mmcls://mobilenet_v2"),
    cls_head=dict(
        type="TSMHead",
        num_segments=8,
        num_classes=400,
        in_channels=1280,
        spatial_type="avg",
        consensus=dict(type="AvgConsensus", dim=1),
        dropout_ratio=0.5,
        init_std=0.001,
        is_shift=True,
        average_clips="prob",
    ),
    data_preprocessor=dict(type="ActionDataPreprocessor", format_shape="NCHW", **preprocess_cfg),
    train_cfg=None,
    test_cfg=None,
)
