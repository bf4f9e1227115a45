# Video Swin-T (ImageNet-1k pretrained) on Kinetics-400, MMAction2 1.x model zoo (top-1 78.90).
# Test: 4 clips of 32 frames every 2nd, short side 224, three 224x224 crops (12 views).
_base_ = ["../../_base_/models/swin_tiny.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/swin/swin-tiny-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb/"
    "swin-tiny-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb_20220930-241016b2.pth"
)

# ``pretrained`` (2D ImageNet weights inflated when training) is kept as MMAction2 has it; inference ignores it.
model = dict(
    backbone=dict(
        pretrained="https://download.openmmlab.com/mmaction/v1.0/recognition/swin/swin_tiny_patch4_window7_224.pth",
    )
)

# MMAction2's test pipeline without DecordInit/DecordDecode: frames arrive decoded.
test_pipeline = [
    dict(type="SampleFrames", clip_len=32, frame_interval=2, num_clips=4, test_mode=True),
    dict(type="Resize", scale=(-1, 224)),
    dict(type="ThreeCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]
