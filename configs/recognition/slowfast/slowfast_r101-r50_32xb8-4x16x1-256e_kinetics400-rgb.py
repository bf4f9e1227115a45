# MMAction2 1.x model zoo: SlowFast with an R101 slow and an R50 fast pathway, 4x16x1.
_base_ = ["slowfast_r50_8xb8-4x16x1-256e_kinetics400-rgb.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/slowfast/slowfast_r101-r50_32xb8-4x16x1-256e_kinetics400-rgb/"
    "slowfast_r101-r50_32xb8-4x16x1-256e_kinetics400-rgb_20220901-a77ac3ee.pth"
)

model = dict(backbone=dict(slow_pathway=dict(depth=101)))
