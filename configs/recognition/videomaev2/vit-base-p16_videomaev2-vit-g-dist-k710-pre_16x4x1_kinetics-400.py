# VideoMAE V2 ViT-B/16 on Kinetics-400 (distilled from ViT-g, Kinetics-710 pre-trained; weights
# converted from OpenGVLab/VideoMAEv2), MMAction2 1.x model zoo. Same network as VideoMAE ViT-B.
# Test clip: 16 frames every 4th, 5 clips, short side 224, three 224x224 crops (15 views).
_base_ = ["../../_base_/models/vit_videomae.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/videomaev2/"
    "vit-base-p16_videomaev2-vit-g-dist-k710-pre_16x4x1_kinetics-400/"
    "vit-base-p16_videomaev2-vit-g-dist-k710-pre_16x4x1_kinetics-400_20230510-3e7f93b2.pth"
)

# MMAction2's test pipeline without DecordInit/DecordDecode: frames arrive decoded.
test_pipeline = [
    dict(type="SampleFrames", clip_len=16, frame_interval=4, num_clips=5, test_mode=True),
    dict(type="Resize", scale=(-1, 224)),
    dict(type="ThreeCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]
