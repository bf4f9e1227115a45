# MMAction2 1.x model zoo: TSM MobileOne-S4 (train-time branches), 1x1x16 frames, Kinetics-400
# (model and evaluation pipelines only).
_base_ = ["../../_base_/models/tsm_mobileone_s4.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/tsm/"
    "tsm_imagenet-pretrained-mobileone-s4_8xb16-1x1x16-50e_kinetics400-rgb/"
    "tsm_imagenet-pretrained-mobileone-s4_8xb16-1x1x16-50e_kinetics400-rgb_20230825-a7f8876b.pth"
)

# As in MMAction2: the head takes 16 segments while the backbone keeps num_segments=8
# (its temporal shift works within each group of 8 frames).
model = dict(cls_head=dict(num_segments=16))

# MMAction2's test protocol: 16 frames x 3 crops (48 views, 3 clips of num_segments=16).
# Frames arrive decoded, so MMAction2's DecordInit/DecordDecode steps are left out.
test_pipeline = [
    dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=16, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="ThreeCrop", crop_size=256),
    dict(type="FormatShape", input_format="NCHW"),
    dict(type="PackActionInputs"),
]

# MMAction2's validation protocol: 16 frames, centre crop (one clip, for live use).
val_pipeline = [
    dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=16, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="CenterCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCHW"),
    dict(type="PackActionInputs"),
]
