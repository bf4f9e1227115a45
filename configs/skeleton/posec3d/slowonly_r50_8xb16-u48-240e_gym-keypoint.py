# MMAction2 1.x model zoo: PoseC3D SlowOnly-R50 on keypoint heatmaps, FineGYM (99 classes, mean top-1 93.5).
# Test: as NTU-60's (20 views of 17x48x64x64 heatmaps).
_base_ = ["../../_base_/models/slowonly_r50_posec3d.py", "../../_base_/skeleton_posec3d_keypoint.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/skeleton/posec3d/slowonly_r50_8xb16-u48-240e_gym-keypoint/"
    "slowonly_r50_8xb16-u48-240e_gym-keypoint_20220815-da338c58.pth"
)

model = dict(cls_head=dict(num_classes=99, spatial_type="avg"))
