# MMAction2 1.x model zoo: TSN with an mmpretrain MobileOne-S4 backbone (train-time branches), 1x1x8 frames,
# Kinetics-400 (model and evaluation pipelines only). The backbone is this project's plain-torch
# MobileOne with mmpretrain's keys (mmpretrain itself is not needed); init_cfg is ignored.
_base_ = ["../tsn_imagenet-pretrained-r50_8xb32-1x1x3-100e_kinetics400-rgb.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/tsn/"
    "tsn_imagenet-pretrained-mobileone-s4_8xb32-1x1x8-100e_kinetics400-rgb/"
    "tsn_imagenet-pretrained-mobileone-s4_8xb32-1x1x8-100e_kinetics400-rgb_20230825-2da3c1f7.pth"
)

checkpoint = (
    "https://download.openmmlab.com/mmclassification/v0/mobileone/mobileone-s4_8xb32_in1k_20221110-28d888cb.pth"
)
model = dict(
    backbone=dict(
        type="mmpretrain.MobileOne",
        arch="s4",
        out_indices=(3,),
        init_cfg=dict(type="Pretrained", checkpoint=checkpoint, prefix="backbone"),
        _delete_=True,
    ),
    cls_head=dict(in_channels=2048),
)

# The test protocol MMAction2 inherits from the R50 config (25 clips x 10 crops) stays as it is;
# MMAction2's validation protocol: 8 frames, centre crop (one clip, for live use).
val_pipeline = [
    dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=8, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="CenterCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCHW"),
    dict(type="PackActionInputs"),
]
