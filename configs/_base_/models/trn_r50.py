# TRN R50 (multi-scale temporal relation head), MMAction2 1.x configs/_base_/models/trn_r50.py.
# TRNMultiScale scores the expected value of MMAction2's random relation draw (engines/models/trn.py).
model = dict(
    type="Recognizer2D",
    backbone=dict(
        type="ResNet",
        pretrained="torchvision://resnet50",
        depth=50,
        norm_eval=False,
        partial_bn=True,
    ),
    cls_head=dict(
        type="TRNHead",
        num_classes=400,
        in_channels=2048,
        num_segments=8,
        spatial_type="avg",
        relation_type="TRNMultiScale",
        hidden_dim=256,
        dropout_ratio=0.8,
        init_std=0.001,
        average_clips="prob",
    ),
    data_preprocessor=dict(
        type="ActionDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape="NCHW",
    ),
)
