# MMAction2 1.x model zoo: SlowFast R50 8x8x1 with normalised lateral convs, Kinetics-400.
_base_ = ["slowfast_r50_8xb8-8x8x1-256e_kinetics400-rgb.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/slowfast/slowfast_r50_8xb8-8x8x1-steplr-256e_kinetics400-rgb/"
    "slowfast_r50_8xb8-8x8x1-steplr-256e_kinetics400-rgb_20220818-b62a501f.pth"
)

model = dict(backbone=dict(slow_pathway=dict(lateral_norm=True)))
