# MMAction2 1.x model zoo: TANet R50 (ImageNet-pretrained), dense 1x1x8, Kinetics-400.
# Test: 8 densely sampled frames per clip (DenseSampleFrames), short side 256, three 256x256 crops.
_base_ = ["../../_base_/models/tanet_r50.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/tanet/"
    "tanet_imagenet-pretrained-r50_8xb8-dense-1x1x8-100e_kinetics400-rgb/"
    "tanet_imagenet-pretrained-r50_8xb8-dense-1x1x8-100e_kinetics400-rgb_20220919-a34346bc.pth"
)

# MMAction2's test pipeline (its val_pipeline) without DecordInit/DecordDecode: frames arrive decoded.
test_pipeline = [
    dict(type="DenseSampleFrames", clip_len=1, frame_interval=1, num_clips=8, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="ThreeCrop", crop_size=256),
    dict(type="FormatShape", input_format="NCHW"),
    dict(type="PackActionInputs"),
]
