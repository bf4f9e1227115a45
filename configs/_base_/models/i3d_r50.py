# I3D recognizer with a ResNet-50 backbone, as MMAction2 1.x's configs/_base_/models/i3d_r50.py.
# MMAction2 sets backbone.pretrained='torchvision://resnet50' (ImageNet weights inflated to 3D),
# which only its training reads; the model-zoo checkpoint (``load_from``) holds every weight.
model = dict(
    type="Recognizer3D",
    backbone=dict(
        type="ResNet3d",
        pretrained2d=True,
        pretrained=None,
        depth=50,
        conv1_kernel=(5, 7, 7),
        conv1_stride_t=2,
        pool1_stride_t=2,
        conv_cfg=dict(type="Conv3d"),
        norm_eval=False,
        inflate=((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0)),
        zero_init_residual=False,
    ),
    cls_head=dict(
        type="I3DHead",
        num_classes=400,
        in_channels=2048,
        spatial_type="avg",
        dropout_ratio=0.5,
        init_std=0.01,
        average_clips="prob",
    ),
    data_preprocessor=dict(
        type="ActionDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape="NCTHW",
    ),
)
