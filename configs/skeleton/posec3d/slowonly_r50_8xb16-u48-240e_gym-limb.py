# MMAction2 1.x model zoo: PoseC3D SlowOnly-R50 on limb heatmaps, FineGYM (99 classes, mean top-1 93.6).
# Test: as NTU-60's limb pipeline (MMAction2's also lists left_kp/right_kp there, unused without with_kp).
_base_ = ["../../_base_/models/slowonly_r50_posec3d.py", "../../_base_/skeleton_posec3d_limb.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/skeleton/posec3d/slowonly_r50_8xb16-u48-240e_gym-limb/"
    "slowonly_r50_8xb16-u48-240e_gym-limb_20220815-2e6e3c5c.pth"
)

model = dict(cls_head=dict(num_classes=99, spatial_type="avg"))
