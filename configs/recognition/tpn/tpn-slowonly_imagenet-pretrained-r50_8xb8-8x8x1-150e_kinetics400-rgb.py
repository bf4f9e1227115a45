# MMAction2 1.x model zoo: TPN on SlowOnly R50 (ImageNet-initialised), 8x8x1, Kinetics-400
# (model and evaluation pipelines only). Scored fully convolutionally (test_cfg.fcn_test).
# Test: 10 clips of 8 frames every 8th, short side 256, three 256x256 crops (30 views).
_base_ = ["../../_base_/models/tpn_slowonly_r50.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/tpn/"
    "tpn-slowonly_imagenet-pretrained-r50_8xb8-8x8x1-150e_kinetics400-rgb/"
    "tpn-slowonly_imagenet-pretrained-r50_8xb8-8x8x1-150e_kinetics400-rgb_20220913-fed3f4c1.pth"
)

# MMAction2's test pipeline without DecordInit/DecordDecode: frames arrive decoded.
test_pipeline = [
    dict(type="SampleFrames", clip_len=8, frame_interval=8, num_clips=10, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="ThreeCrop", crop_size=256),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]

# MMAction2's validation protocol (its ColorJitter left out): one clip, centre crop, for live use.
val_pipeline = [
    dict(type="SampleFrames", clip_len=8, frame_interval=8, num_clips=1, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="CenterCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]
