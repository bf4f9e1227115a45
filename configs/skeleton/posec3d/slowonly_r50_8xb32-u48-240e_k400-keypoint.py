# MMAction2 1.x model zoo: PoseC3D SlowOnly-R50 (stages 3-4-6) on keypoint heatmaps, Kinetics-400
# (400 classes, top-1 47.4). Test: people's box resized to 64x64 (no crop), 20 views of 17x48x64x64 heatmaps.
# DecompressPose (squeeze=True) drops frames where nobody was seen (all-zero keypoints and scores).
_base_ = ["../../_base_/models/slowonly_r50_posec3d.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/skeleton/posec3d/slowonly_r50_8xb32-u48-240e_k400-keypoint/"
    "slowonly_r50_8xb32-u48-240e_k400-keypoint_20230731-7f498b55.pth"
)

model = dict(backbone=dict(stage_blocks=(3, 4, 6)), cls_head=dict(num_classes=400, spatial_type="avg"))

test_pipeline = [
    dict(type="DecompressPose", squeeze=True),
    dict(type="UniformSampleFrames", clip_len=48, num_clips=10, test_mode=True),
    dict(type="PoseDecode"),
    dict(type="PoseCompact", hw_ratio=1.0, allow_imgpad=True),
    dict(type="Resize", scale=(64, 64), keep_ratio=False),
    dict(
        type="GeneratePoseTarget",
        with_kp=True,
        with_limb=False,
        double=True,
        left_kp=[1, 3, 5, 7, 9, 11, 13, 15],
        right_kp=[2, 4, 6, 8, 10, 12, 14, 16],
    ),
    dict(type="FormatShape", input_format="NCTHW_Heatmap"),
    dict(type="PackActionInputs"),
]
