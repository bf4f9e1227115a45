# X3D-S on Kinetics-400 (weights converted from SlowFast), MMAction2 1.x model zoo.
# Test clip: 13 frames every 6th, 10 clips, short side 182, three 182x182 crops (30 views).
_base_ = ["../../_base_/models/x3d.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/x3d/facebook/"
    "x3d_s_13x6x1_facebook-kinetics400-rgb_20201027-623825a0.pth"
)

# MMAction2's test pipeline without DecordInit/DecordDecode: frames arrive decoded.
test_pipeline = [
    dict(type="SampleFrames", clip_len=13, frame_interval=6, num_clips=10, target_fps=30, test_mode=True),
    dict(type="Resize", scale=(-1, 182)),
    dict(type="ThreeCrop", crop_size=182),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]
