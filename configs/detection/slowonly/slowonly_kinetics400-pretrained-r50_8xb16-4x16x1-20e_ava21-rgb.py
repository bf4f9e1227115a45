# MMAction2 1.x model zoo: SlowOnly R50 (Kinetics-400 pre-trained) + Fast R-CNN RoI head, AVA 2.1, 4x16x1.
# Spatio-temporal action detection: person boxes come from a detector; 81 scores per box
# (column 0 is background). Test: 4 frames every 16th around the key frame, short side 256.
# The model section is MMAction2's (scoped types included) without init_cfg (the Kinetics
# checkpoint only training reads); training-only keys (train_cfg) build and are ignored.
load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/detection/slowonly/"
    "slowonly_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb/"
    "slowonly_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb_20220906-953ef5fe.pth"
)

model = dict(
    type="FastRCNN",
    _scope_="mmdet",
    backbone=dict(
        type="mmaction.ResNet3dSlowOnly",
        depth=50,
        pretrained=None,
        pretrained2d=False,
        lateral=False,
        num_stages=4,
        conv1_kernel=(1, 7, 7),
        conv1_stride_t=1,
        pool1_stride_t=1,
        spatial_strides=(1, 2, 2, 1),
    ),
    roi_head=dict(
        type="AVARoIHead",
        bbox_roi_extractor=dict(
            type="SingleRoIExtractor3D", roi_layer_type="RoIAlign", output_size=8, with_temporal_pool=True
        ),
        bbox_head=dict(
            type="BBoxHeadAVA",
            background_class=True,
            in_channels=2048,
            num_classes=81,
            multilabel=True,
            dropout_ratio=0.5,
        ),
    ),
    data_preprocessor=dict(
        type="mmaction.ActionDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape="NCTHW",
    ),
    train_cfg=dict(
        rcnn=dict(
            assigner=dict(type="MaxIoUAssignerAVA", pos_iou_thr=0.9, neg_iou_thr=0.9, min_pos_iou=0.9),
            sampler=dict(type="RandomSampler", num=32, pos_fraction=1, neg_pos_ub=-1, add_gt_as_proposals=True),
            pos_weight=1.0,
        )
    ),
    test_cfg=dict(rcnn=None),
)

# MMAction2's val/test pipeline without RawFrameDecode: frames arrive decoded.
test_pipeline = [
    dict(type="SampleAVAFrames", clip_len=4, frame_interval=16, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="FormatShape", input_format="NCTHW", collapse=True),
    dict(type="PackActionInputs"),
]
