# MMAction2 1.x model zoo: I3D R50 'heavy' (every block inflated, no temporal stride in the stem).
_base_ = ["i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/i3d/i3d_imagenet-pretrained-r50-heavy_8xb8-32x2x1-100e_kinetics400-rgb/"
    "i3d_imagenet-pretrained-r50-heavy_8xb8-32x2x1-100e_kinetics400-rgb_20220812-ed501b31.pth"
)

model = dict(backbone=dict(inflate=(1, 1, 1, 1), conv1_stride_t=1, pool1_stride_t=1, with_pool2=True))
