# MMAction2 1.x model zoo: TSN R101, 1x1x8 frames, Kinetics-400 (model and evaluation pipelines only).
_base_ = ["tsn_imagenet-pretrained-r50_8xb32-1x1x8-100e_kinetics400-rgb.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/tsn/"
    "tsn_imagenet-pretrained-r101_8xb32-1x1x8-100e_kinetics400-rgb/"
    "tsn_imagenet-pretrained-r101_8xb32-1x1x8-100e_kinetics400-rgb_20220906-23cff032.pth"
)

model = dict(backbone=dict(pretrained=("https://download.pytorch.org/models/resnet101-cd907fc2.pth"), depth=101))
