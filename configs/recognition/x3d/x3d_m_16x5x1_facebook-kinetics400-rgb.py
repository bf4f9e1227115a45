# X3D-M on Kinetics-400 (weights converted from SlowFast), MMAction2 1.x model zoo.
# Test clip: 16 frames every 5th, 10 clips, short side 256, three 256x256 crops (30 views).
_base_ = ["../../_base_/models/x3d.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/x3d/facebook/"
    "x3d_m_16x5x1_facebook-kinetics400-rgb_20201027-3f42382a.pth"
)

# MMAction2's test pipeline without DecordInit/DecordDecode: frames arrive decoded.
test_pipeline = [
    dict(type="SampleFrames", clip_len=16, frame_interval=5, num_clips=10, target_fps=30, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="ThreeCrop", crop_size=256),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]
