# MMAction2 1.x model zoo: OmniSource SlowOnly R50 (trained on ImageNet images + Kinetics-400 videos), 8x8x1.
# format_shape='MIX2d3d': the layout follows the input; clips here are videos (NCTHW), scored by the video head.
# Test: 10 clips of 8 frames every 8th, short side 256, three 256x256 crops (30 views).
model = dict(
    type="RecognizerOmni",
    backbone=dict(type="OmniResNet"),
    cls_head=dict(type="OmniHead", image_classes=1000, video_classes=400, in_channels=2048, average_clips="prob"),
    data_preprocessor=dict(
        type="ActionDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape="MIX2d3d",
    ),
)

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/omnisource/"
    "slowonly_r50_8xb16-8x8x1-256e_imagenet-kinetics400-rgb_20230208-61c4be0d.pth"
)

# MMAction2's test pipeline without DecordInit/DecordDecode: frames arrive decoded.
test_pipeline = [
    dict(type="SampleFrames", clip_len=8, frame_interval=8, num_clips=10, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="ThreeCrop", crop_size=256),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]
