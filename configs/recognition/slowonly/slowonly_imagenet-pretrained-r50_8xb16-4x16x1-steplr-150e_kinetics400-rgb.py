# MMAction2 1.x model zoo: SlowOnly R50 (ImageNet-initialised), 4x16x1, Kinetics-400.
_base_ = ["slowonly_r50_8xb16-4x16x1-256e_kinetics400-rgb.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/slowonly/slowonly_imagenet-pretrained-r50_8xb16-4x16x1-steplr-150e_kinetics400-rgb/"
    "slowonly_imagenet-pretrained-r50_8xb16-4x16x1-steplr-150e_kinetics400-rgb_20220901-e7b65fad.pth"
)
