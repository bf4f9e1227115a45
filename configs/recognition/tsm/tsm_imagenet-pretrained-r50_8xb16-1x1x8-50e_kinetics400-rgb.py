# MMAction2 1.x model zoo: TSM R50, 1x1x8 frames, Kinetics-400 (model and evaluation pipelines only).
_base_ = ["../../_base_/models/tsm_r50.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/tsm/"
    "tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_kinetics400-rgb/"
    "tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_kinetics400-rgb_20220831-64d69186.pth"
)

# MMAction2's test protocol: 8 frames x 10 crops (80 views, 10 clips of num_segments=8).
# Frames arrive decoded, so MMAction2's DecordInit/DecordDecode steps are left out.
test_pipeline = [
    dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=8, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="TenCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCHW"),
    dict(type="PackActionInputs"),
]

# MMAction2's validation protocol: 8 frames, centre crop (one clip, for live use).
val_pipeline = [
    dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=8, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="CenterCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCHW"),
    dict(type="PackActionInputs"),
]
