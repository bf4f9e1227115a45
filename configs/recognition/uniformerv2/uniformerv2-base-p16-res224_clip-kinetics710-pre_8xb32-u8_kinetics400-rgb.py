# UniFormerV2-B/16 on Kinetics-400, fine-tuned from the Kinetics-710 model, MMAction2 1.x model zoo.
# (MMAction2's config initialises from the K710 checkpoint and a class map for training; the
# fine-tuned weights below need neither.)
_base_ = ["../../_base_/models/uniformerv2_base_p16.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv2/"
    "uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb/"
    "uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb_20230313-75be0806.pth"
)
