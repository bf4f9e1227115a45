# MMAction2 1.x model zoo: TPN on TSM R50 (ImageNet-initialised), 1x1x8 frames, Something-Something V1
# (model and evaluation pipelines only). Scored fully convolutionally (test_cfg.fcn_test).
_base_ = ["../../_base_/models/tpn_tsm_r50.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/tpn/"
    "tpn-tsm_imagenet-pretrained-r50_8xb8-1x1x8-150e_sthv1-rgb/"
    "tpn-tsm_imagenet-pretrained-r50_8xb8-1x1x8-150e_sthv1-rgb_20230221-940a3615.pth"
)

# MMAction2's test protocol: 8 frames sampled twice (16), three 256x256 crops (48 views, 6 clips
# of num_segments=8). Frames arrive decoded, so MMAction2's RawFrameDecode step is left out.
test_pipeline = [
    dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=8, twice_sample=True, test_mode=True),
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
