# C3D (Sports-1M pre-trained) fine-tuned on UCF101 split 1, MMAction2 1.x model zoo.
# Test clip: 16 consecutive frames, 10 clips, short side 128, one 112x112 centre crop.
# C3D's fc6 fixes the clip at 16x112x112.
_base_ = ["../../_base_/models/c3d_sports1m_pretrained.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/c3d/"
    "c3d_sports1m-pretrained_8xb30-16x1x1-45e_ucf101-rgb/"
    "c3d_sports1m-pretrained_8xb30-16x1x1-45e_ucf101-rgb_20220811-31723200.pth"
)

# MMAction2's test pipeline without DecordInit/DecordDecode: frames arrive decoded.
test_pipeline = [
    dict(type="SampleFrames", clip_len=16, frame_interval=1, num_clips=10, test_mode=True),
    dict(type="Resize", scale=(-1, 128)),
    dict(type="CenterCrop", crop_size=112),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]
