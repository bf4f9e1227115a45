# MMAction2 1.x model zoo: SlowFast R50 4x16x1 on AVA 2.1 with context: each box's RoI features
# are concatenated with the whole frame's (pooled to 8x8), so the box head sees 4608 channels.
_base_ = ["slowfast_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/detection/slowfast/"
    "slowfast_kinetics400-pretrained-r50-context_8xb16-4x16x1-20e_ava21-rgb/"
    "slowfast_kinetics400-pretrained-r50-context_8xb16-4x16x1-20e_ava21-rgb_20220906-5bb4f6f2.pth"
)

model = dict(roi_head=dict(bbox_roi_extractor=dict(with_global=True), bbox_head=dict(in_channels=4608)))
