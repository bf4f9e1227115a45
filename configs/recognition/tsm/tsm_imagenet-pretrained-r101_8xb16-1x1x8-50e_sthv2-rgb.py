# MMAction2 1.x model zoo: TSM R101, 1x1x8 frames, Something-Something V2 (model, test pipelines).
_base_ = ["tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_sthv2-rgb.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/tsm/"
    "tsm_imagenet-pretrained-r101_8xb16-1x1x8-50e_sthv2-rgb/"
    "tsm_imagenet-pretrained-r101_8xb16-1x1x8-50e_sthv2-rgb_20230320-efcc0d1b.pth"
)

r101_checkpoint = "torchvision://resnet101"

model = dict(backbone=dict(pretrained=r101_checkpoint, depth=101))
