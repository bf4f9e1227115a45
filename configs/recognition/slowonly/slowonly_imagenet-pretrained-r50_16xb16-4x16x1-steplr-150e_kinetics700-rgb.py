# MMAction2 1.x model zoo: SlowOnly R50 (ImageNet-initialised), 4x16x1, Kinetics-700.
# Test: 10 clips of 4 frames every 16th, short side 256, three 256x256 crops (30 views).
_base_ = ["slowonly_r50_8xb16-4x16x1-256e_kinetics400-rgb.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/slowonly/slowonly_imagenet-pretrained-r50_8xb16-4x16x1-steplr-150e_kinetics700-rgb/"
    "slowonly_imagenet-pretrained-r50_16xb16-4x16x1-steplr-150e_kinetics700-rgb_20220901-f73b3e89.pth"
)

model = dict(cls_head=dict(num_classes=700))

# MMAction2's test pipeline without DecordInit/DecordDecode: frames arrive decoded.
test_pipeline = [
    dict(type="SampleFrames", clip_len=4, frame_interval=16, num_clips=10, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="ThreeCrop", crop_size=256),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]
