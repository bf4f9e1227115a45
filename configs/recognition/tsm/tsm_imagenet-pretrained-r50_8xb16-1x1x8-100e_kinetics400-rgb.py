# MMAction2 1.x model zoo: TSM R50, 1x1x8 frames, 100 epochs, Kinetics-400.
# Same model and pipelines as the 50-epoch config; only the (dropped) schedule differs.
_base_ = ["tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_kinetics400-rgb.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/tsm/"
    "tsm_imagenet-pretrained-r50_8xb16-1x1x8-100e_kinetics400-rgb/"
    "tsm_imagenet-pretrained-r50_8xb16-1x1x8-100e_kinetics400-rgb_20220831-a6db1e5d.pth"
)
