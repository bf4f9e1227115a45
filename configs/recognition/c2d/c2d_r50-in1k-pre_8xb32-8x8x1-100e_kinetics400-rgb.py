# MMAction2 1.x model zoo: C2D R50 (ImageNet-pretrained), 8x8x1, Kinetics-400.
# Test: 10 clips of 8 frames every 8th, short side 224, three 224x224 crops (30 views).
_base_ = ["../../_base_/models/c2d_r50.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/c2d/c2d_r50-in1k-pre_8xb32-8x8x1-100e_kinetics400-rgb/"
    "c2d_r50-in1k-pre_8xb32-8x8x1-100e_kinetics400-rgb_20221027-3ca304fa.pth"
)

# MMAction2's test pipeline without DecordInit/DecordDecode: frames arrive decoded.
test_pipeline = [
    dict(type="SampleFrames", clip_len=8, frame_interval=8, num_clips=10, test_mode=True),
    dict(type="Resize", scale=(-1, 224)),
    dict(type="ThreeCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]
