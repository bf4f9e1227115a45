# MMAction2 1.x model zoo: TSN with a torchvision DenseNet-161 backbone, 1x1x3 frames, Kinetics-400
# (model and evaluation pipelines only). The backbone is this project's plain-torch DenseNet with
# torchvision's keys (torchvision itself is not needed; pretrained is ignored). As in MMAction2, the
# recognizer reads the backbone's `features` and average-pools them. Pipelines: the R50 1x1x3 config's.
_base_ = ["../tsn_imagenet-pretrained-r50_8xb32-1x1x3-100e_kinetics400-rgb.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/tsn/"
    "tsn_imagenet-pretrained-dense161_8xb32-1x1x3-100e_kinetics400-rgb/"
    "tsn_imagenet-pretrained-dense161_8xb32-1x1x3-100e_kinetics400-rgb_20220906-5f4c0daf.pth"
)

model = dict(
    backbone=dict(type="torchvision.densenet161", pretrained=True, _delete_=True), cls_head=dict(in_channels=2208)
)
