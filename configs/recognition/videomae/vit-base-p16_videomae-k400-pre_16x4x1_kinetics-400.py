# VideoMAE ViT-B/16 on Kinetics-400 (weights converted from MCG-NJU/VideoMAE), MMAction2 1.x model zoo.
# Test clip: 16 frames every 4th, 5 clips, short side 224, three 224x224 crops (15 views).
_base_ = ["../../_base_/models/vit_videomae.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/videomae/"
    "vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400_20221013-860a3cd3.pth"
)

# MMAction2's test pipeline without DecordInit/DecordDecode: frames arrive decoded.
test_pipeline = [
    dict(type="SampleFrames", clip_len=16, frame_interval=4, num_clips=5, test_mode=True),
    dict(type="Resize", scale=(-1, 224)),
    dict(type="ThreeCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]
