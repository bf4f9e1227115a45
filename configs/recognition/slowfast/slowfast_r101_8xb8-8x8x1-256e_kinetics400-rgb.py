# MMAction2 1.x model zoo: SlowFast R101 8x8x1, Kinetics-400.
_base_ = ["slowfast_r50_8xb8-8x8x1-256e_kinetics400-rgb.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/slowfast/slowfast_r101_8xb8-8x8x1-256e_kinetics400-rgb/"
    "slowfast_r101_8xb8-8x8x1-256e_kinetics400-rgb_20220901-9c0e09bd.pth"
)

model = dict(backbone=dict(slow_pathway=dict(depth=101), fast_pathway=dict(depth=101)))
