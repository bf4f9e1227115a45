# MMAction2 1.x model zoo: TSM MobileNetV2, 1x1x8 frames, Kinetics-400 (model and evaluation pipelines only).
# MMAction2 1.2's metafile lists no checkpoint for this config, so there is no load_from.
_base_ = ["../../_base_/models/tsm_mobilenet_v2.py"]

# MMAction2's test protocol: 8 frames x 3 crops (24 views, 3 clips of num_segments=8).
# Frames arrive decoded, so MMAction2's DecordInit/DecordDecode steps are left out.
test_pipeline = [
    dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=8, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="ThreeCrop", crop_size=256),
    dict(type="FormatShape", input_format="NCHW"),
    dict(type="PackActionInputs"),
]

# MMAction2's validation protocol: 8 frames, centre crop (one clip, for live use).
val_pipeline = [
    dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=8, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="CenterCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCHW"),
    dict(type="PackActionInputs"),
]
