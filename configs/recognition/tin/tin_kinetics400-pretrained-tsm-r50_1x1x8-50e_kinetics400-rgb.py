# MMAction2 1.x model zoo: TIN R50 (from TSM Kinetics-400 weights), 1x1x8, Kinetics-400.
# Test: 8 frames (one per segment), short side 256, one 224x224 centre crop.
_base_ = ["../../_base_/models/tin_r50.py"]

model = dict(cls_head=dict(is_shift=True))

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/tin/tin_kinetics400-pretrained-tsm-r50_1x1x8-50e_kinetics400-rgb/"
    "tin_kinetics400-pretrained-tsm-r50_1x1x8-50e_kinetics400-rgb_20220913-7f10d0c0.pth"
)

# MMAction2's test pipeline without DecordInit/DecordDecode: frames arrive decoded.
test_pipeline = [
    dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=8, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="CenterCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCHW"),
    dict(type="PackActionInputs"),
]
