# MMAction2 1.x model zoo: TSM R50, 1x1x16 frames, Kinetics-400 (model and evaluation pipelines only).
_base_ = ["tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_kinetics400-rgb.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/tsm/"
    "tsm_imagenet-pretrained-r50_8xb16-1x1x16-50e_kinetics400-rgb/"
    "tsm_imagenet-pretrained-r50_8xb16-1x1x16-50e_kinetics400-rgb_20220831-042b1748.pth"
)

model = dict(backbone=dict(num_segments=16), cls_head=dict(num_segments=16))

# 16 frames x 10 crops (160 views, 10 clips of num_segments=16).
# Frames arrive decoded, so MMAction2's DecordInit/DecordDecode steps are left out.
test_pipeline = [
    dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=16, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="TenCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCHW"),
    dict(type="PackActionInputs"),
]

val_pipeline = [
    dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=16, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="CenterCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCHW"),
    dict(type="PackActionInputs"),
]
