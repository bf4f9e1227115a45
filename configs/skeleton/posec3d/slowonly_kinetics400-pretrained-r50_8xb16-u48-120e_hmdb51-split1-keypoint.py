# MMAction2 1.x model zoo: PoseC3D SlowOnly-R50 (stages 3-4-6, Kinetics-400
# keypoint pre-training) on keypoint heatmaps, HMDB51 split 1 (51 classes, top-1 69.6).
# Test: 10 clips of 48 frames + flips (20 views) of 17x56x56 heatmaps, mean softmax.
_base_ = ["../../_base_/models/slowonly_r50_posec3d.py", "../../_base_/skeleton_posec3d_keypoint.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/skeleton/posec3d/slowonly_kinetics400-pretrained-r50_8xb16-u48-120e_hmdb51-split1-keypoint/"
    "slowonly_kinetics400-pretrained-r50_8xb16-u48-120e_hmdb51-split1-keypoint_20220815-17eaa484.pth"
)

model = dict(
    backbone=dict(stage_blocks=(3, 4, 6)),
    cls_head=dict(num_classes=51, spatial_type="avg"),
    train_cfg=None,
    test_cfg=None,
)

test_pipeline = [
    dict(type="UniformSampleFrames", clip_len=48, num_clips=10, test_mode=True),
    dict(type="PoseDecode"),
    dict(type="PoseCompact", hw_ratio=1.0, allow_imgpad=True),
    dict(type="Resize", scale=(-1, 56)),
    dict(type="CenterCrop", crop_size=56),
    dict(
        type="GeneratePoseTarget",
        sigma=0.6,
        use_score=True,
        with_kp=True,
        with_limb=False,
        double=True,
        left_kp=[1, 3, 5, 7, 9, 11, 13, 15],
        right_kp=[2, 4, 6, 8, 10, 12, 14, 16],
    ),
    dict(type="FormatShape", input_format="NCTHW_Heatmap"),
    dict(type="PackActionInputs"),
]
