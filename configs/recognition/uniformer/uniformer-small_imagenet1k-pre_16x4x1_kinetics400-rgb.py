# UniFormer-S (ImageNet-1k pretrained, weights converted from Sense-X/UniFormer) on Kinetics-400,
# MMAction2 1.x model zoo (top-1 80.9).
# Test: 4 clips of 16 frames every 4th, short side 224, one 224x224 centre crop (4 views).
load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv1/"
    "uniformer-small_imagenet1k-pre_16x4x1_kinetics400-rgb_20221219-c630a037.pth"
)

model = dict(
    type="Recognizer3D",
    backbone=dict(
        type="UniFormer",
        depth=[3, 4, 8, 3],
        embed_dim=[64, 128, 320, 512],
        head_dim=64,
        drop_path_rate=0.1,
    ),
    cls_head=dict(
        type="I3DHead",
        dropout_ratio=0.0,
        num_classes=400,
        in_channels=512,
        average_clips="prob",
    ),
    data_preprocessor=dict(
        type="ActionDataPreprocessor",
        mean=[114.75, 114.75, 114.75],
        std=[57.375, 57.375, 57.375],
        format_shape="NCTHW",
    ),
)

# MMAction2's test pipeline without DecordInit/DecordDecode: frames arrive decoded.
test_pipeline = [
    dict(type="SampleFrames", clip_len=16, frame_interval=4, num_clips=4, test_mode=True),
    dict(type="Resize", scale=(-1, 224)),
    dict(type="CenterCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]
