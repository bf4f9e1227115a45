# MMAction2 1.x model zoo: SlowOnly R50 from scratch, 8x8x1, Kinetics-400.
# Test: 10 clips of 8 frames every 8th, short side 256, three 256x256 crops (30 views).
_base_ = ["slowonly_r50_8xb16-4x16x1-256e_kinetics400-rgb.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/slowonly/slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb/"
    "slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb_20220901-2132fc87.pth"
)

# MMAction2's test pipeline without DecordInit/DecordDecode: frames arrive decoded.
test_pipeline = [
    dict(type="SampleFrames", clip_len=8, frame_interval=8, num_clips=10, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="ThreeCrop", crop_size=256),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]
