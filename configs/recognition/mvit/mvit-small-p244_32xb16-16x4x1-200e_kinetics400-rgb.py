# MViTv2-S trained on Kinetics-400 by MMAction2, model zoo (top-1 80.6).
# Test: 5 clips of 16 frames every 4th, short side 224, one 224x224 centre crop (5 views).
_base_ = ["../../_base_/models/mvit_small.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/mvit/mvit-small-p244_32xb16-16x4x1-200e_kinetics400-rgb/"
    "mvit-small-p244_32xb16-16x4x1-200e_kinetics400-rgb_20230201-23284ff3.pth"
)

# Mixup / CutMix blending is training-only; it is kept as MMAction2 has it and ignored here.
model = dict(
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
    dict(type="SampleFrames", clip_len=16, frame_interval=4, num_clips=5, test_mode=True),
    dict(type="Resize", scale=(-1, 224)),
    dict(type="CenterCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]
