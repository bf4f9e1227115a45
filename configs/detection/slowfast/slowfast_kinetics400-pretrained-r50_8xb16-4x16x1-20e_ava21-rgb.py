# MMAction2 1.x model zoo: SlowFast R50 (Kinetics-400 pre-trained) + Fast R-CNN RoI head, AVA 2.1, 4x16x1.
# The clip is 32 frames every 2nd around the key frame (short side 256); the backbone takes
# every 8th for the slow pathway and all 32 for the fast one, and the RoI extractor joins both.
# The model section is MMAction2's without init_cfg (only training reads it).
load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/detection/slowfast/"
    "slowfast_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb/"
    "slowfast_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb_20220906-5180ea3c.pth"
)

model = dict(
    type="FastRCNN",
    _scope_="mmdet",
    backbone=dict(
        type="mmaction.ResNet3dSlowFast",
        pretrained=None,
        resample_rate=8,
        speed_ratio=8,
        channel_ratio=8,
        slow_pathway=dict(
            type="resnet3d",
            depth=50,
            pretrained=None,
            lateral=True,
            conv1_kernel=(1, 7, 7),
            dilations=(1, 1, 1, 1),
            conv1_stride_t=1,
            pool1_stride_t=1,
            inflate=(0, 0, 1, 1),
            spatial_strides=(1, 2, 2, 1),
        ),
        fast_pathway=dict(
            type="resnet3d",
            depth=50,
            pretrained=None,
            lateral=False,
            base_channels=8,
            conv1_kernel=(5, 7, 7),
            conv1_stride_t=1,
            pool1_stride_t=1,
            spatial_strides=(1, 2, 2, 1),
        ),
    ),
    roi_head=dict(
        type="AVARoIHead",
        bbox_roi_extractor=dict(
            type="SingleRoIExtractor3D", roi_layer_type="RoIAlign", output_size=8, with_temporal_pool=True
        ),
        bbox_head=dict(
            type="BBoxHeadAVA",
            background_class=True,
            in_channels=2304,
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
    dict(type="SampleAVAFrames", clip_len=32, frame_interval=2, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="FormatShape", input_format="NCTHW", collapse=True),
    dict(type="PackActionInputs"),
]
