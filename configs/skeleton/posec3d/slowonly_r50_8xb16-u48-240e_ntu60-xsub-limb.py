# MMAction2 1.x model zoo: PoseC3D SlowOnly-R50 on limb heatmaps, NTU-60 X-Sub (60 classes, top-1 93.5).
# Test: 10 clips of 48 frames + their flips (20 views) of 17x64x64 limb heatmaps, mean softmax.
_base_ = ["../../_base_/models/slowonly_r50_posec3d.py", "../../_base_/skeleton_posec3d_limb.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/skeleton/posec3d/slowonly_r50_8xb16-u48-240e_ntu60-xsub-limb/"
    "slowonly_r50_8xb16-u48-240e_ntu60-xsub-limb_20220815-af2f119a.pth"
)
