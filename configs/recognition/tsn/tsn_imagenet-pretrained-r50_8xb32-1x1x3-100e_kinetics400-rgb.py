# MMAction2 1.x model zoo: TSN R50, 1x1x3 frames, Kinetics-400 (model and evaluation pipelines only).
_base_ = ["../../_base_/models/tsn_r50.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/tsn/"
    "tsn_imagenet-pretrained-r50_8xb32-1x1x3-100e_kinetics400-rgb/"
    "tsn_imagenet-pretrained-r50_8xb32-1x1x3-100e_kinetics400-rgb_20220906-cd10898e.pth"
)

# MMAction2's test protocol: 25 clips x 10 crops (250 views per video).
# Frames arrive decoded, so MMAction2's DecordInit/DecordDecode steps are left out.
test_pipeline = [
    dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=25, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="TenCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCHW"),
    dict(type="PackActionInputs"),
]

# MMAction2's validation protocol: 3 clips, centre crop (cheaper, for live use).
val_pipeline = [
    dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=3, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="CenterCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCHW"),
    dict(type="PackActionInputs"),
]
