# UniFormerV2-B/16 on Kinetics-400 (from CLIP), MMAction2 1.x model zoo.
_base_ = ["../../_base_/models/uniformerv2_base_p16.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv2/"
    "uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb/"
    "uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb_20230313-e29fc968.pth"
)
