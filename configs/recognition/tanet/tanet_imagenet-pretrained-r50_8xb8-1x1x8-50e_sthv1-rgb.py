# MMAction2 1.x model zoo: TANet R50 (ImageNet-pretrained), 1x1x8, Something-Something V1 (174 classes).
# twice_sample doubles the clips: 8 frames x 2 x 3 crops (48 views, 6 clips of num_segments=8).
_base_ = ["../../_base_/models/tanet_r50.py"]

model = dict(cls_head=dict(num_classes=174, dropout_ratio=0.6))

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/tanet/tanet_imagenet-pretrained-r50_8xb8-1x1x8-50e_sthv1-rgb/"
    "tanet_imagenet-pretrained-r50_8xb8-1x1x8-50e_sthv1-rgb_20220906-de50e4ef.pth"
)

# MMAction2's test pipeline without RawFrameDecode: frames arrive decoded.
test_pipeline = [
    dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=8, twice_sample=True, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="ThreeCrop", crop_size=256),
    dict(type="FormatShape", input_format="NCHW"),
    dict(type="PackActionInputs"),
]
