# MMAction2 1.x model zoo: TIN R50 (ImageNet-pretrained), 1x1x8, Something-Something V1 (174 classes).
# Test: 8 frames (one per segment), short side 256, one 224x224 centre crop.
_base_ = ["../../_base_/models/tin_r50.py"]

model = dict(cls_head=dict(num_classes=174, dropout_ratio=0.8))

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/tin/tin_imagenet-pretrained-r50_8xb6-1x1x8-40e_sthv1-rgb/"
    "tin_imagenet-pretrained-r50_8xb6-1x1x8-40e_sthv1-rgb_20220913-9b7804d6.pth"
)

# MMAction2's test pipeline without RawFrameDecode: frames arrive decoded.
test_pipeline = [
    dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=8, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="CenterCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCHW"),
    dict(type="PackActionInputs"),
]
