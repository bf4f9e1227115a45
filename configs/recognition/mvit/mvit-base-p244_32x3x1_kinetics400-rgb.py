# MViTv2-B on Kinetics-400 (weights converted from SlowFast), MMAction2 1.x model zoo.
# Test: 5 clips of 32 frames every 3rd, short side 224, one 224x224 centre crop (5 views).
_base_ = ["../../_base_/models/mvit_small.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/mvit/converted/"
    "mvit-base-p244_32x3x1_kinetics400-rgb_20221021-f392cd2d.pth"
)

# Mixup / CutMix blending is training-only; it is kept as MMAction2 has it and ignored here.
model = dict(
    backbone=dict(arch="base", temporal_size=32, drop_path_rate=0.3),
    data_preprocessor=dict(
        type="ActionDataPreprocessor",
        mean=[114.75, 114.75, 114.75],
        std=[57.375, 57.375, 57.375],
        blending=dict(
            type="RandomBatchAugment",
            augments=[
                dict(type="MixupBlending", alpha=0.8, num_classes=400),
                dict(type="CutmixBlending", alpha=1, num_classes=400),
            ],
        ),
        format_shape="NCTHW",
    ),
)

# MMAction2's test pipeline without DecordInit/DecordDecode: frames arrive decoded.
test_pipeline = [
    dict(type="SampleFrames", clip_len=32, frame_interval=3, num_clips=5, test_mode=True),
    dict(type="Resize", scale=(-1, 224)),
    dict(type="CenterCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]
