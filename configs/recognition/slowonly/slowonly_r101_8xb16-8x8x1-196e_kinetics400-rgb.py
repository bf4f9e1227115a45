# MMAction2 1.x model zoo: SlowOnly R101 from scratch, 8x8x1, Kinetics-400.
_base_ = ["slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/slowonly/slowonly_r101_8xb16-8x8x1-196e_kinetics400-rgb/"
    "slowonly_r101_8xb16-8x8x1-196e_kinetics400-rgb_20220901-e6281431.pth"
)

model = dict(backbone=dict(depth=101, pretrained=None))
