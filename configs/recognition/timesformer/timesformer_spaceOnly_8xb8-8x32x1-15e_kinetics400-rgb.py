# TimeSformer (space-only attention: each frame alone, frames averaged) on Kinetics-400,
# MMAction2 1.x model zoo.
_base_ = ["../../_base_/models/timesformer.py"]

model = dict(backbone=dict(attention_type="space_only"))

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/timesformer/"
    "timesformer_spaceOnly_8xb8-8x32x1-15e_kinetics400-rgb/"
    "timesformer_spaceOnly_8xb8-8x32x1-15e_kinetics400-rgb_20220815-78f05367.pth"
)
