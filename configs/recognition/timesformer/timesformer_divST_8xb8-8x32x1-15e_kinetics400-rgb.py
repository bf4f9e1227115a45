# TimeSformer (divided space-time attention) on Kinetics-400, MMAction2 1.x model zoo.
_base_ = ["../../_base_/models/timesformer.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/timesformer/"
    "timesformer_divST_8xb8-8x32x1-15e_kinetics400-rgb/"
    "timesformer_divST_8xb8-8x32x1-15e_kinetics400-rgb_20220815-a4d0d01f.pth"
)
