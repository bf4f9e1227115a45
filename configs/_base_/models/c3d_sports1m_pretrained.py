# C3D recognizer, as MMAction2 1.x's configs/_base_/models/c3d_sports1m_pretrained.py.
# MMAction2 sets backbone.pretrained to the Sports-1M initialisation
# (https://download.openmmlab.com/mmaction/recognition/c3d/c3d_sports1m_pretrain_20201016-dcc47ddc.pth),
# which only its training loads; the model-zoo checkpoint (``load_from``) holds every weight.
model = dict(
    type="Recognizer3D",
    backbone=dict(
        type="C3D",
        pretrained=None,
        style="pytorch",
        conv_cfg=dict(type="Conv3d"),
        norm_cfg=None,
        act_cfg=dict(type="ReLU"),
        dropout_ratio=0.5,
        init_std=0.005,
    ),
    cls_head=dict(
        type="I3DHead",
        num_classes=101,
        in_channels=4096,
        spatial_type=None,
        dropout_ratio=0.5,
        init_std=0.01,
        average_clips="prob",
    ),
    data_preprocessor=dict(
        type="ActionDataPreprocessor",
        mean=[104, 117, 128],
        std=[1, 1, 1],
        format_shape="NCTHW",
    ),
)
