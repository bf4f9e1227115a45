# MMAction2 1.x model zoo: TSN with an mmcls ResNeXt-101 (32x4d) backbone, 1x1x3 frames, Kinetics-400
# (model and evaluation pipelines only). The backbone is this project's plain-torch ResNeXt with mmcls's
# keys (mmcls itself is not needed); init_cfg is ignored. Pipelines: the R50 1x1x3 config's, as in MMAction2.
_base_ = ["../tsn_imagenet-pretrained-r50_8xb32-1x1x3-100e_kinetics400-rgb.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/tsn/"
    "tsn_imagenet-pretrained-rn101-32x4d_8xb32-1x1x3-100e_kinetics400-rgb/"
    "tsn_imagenet-pretrained-rn101-32x4d_8xb32-1x1x3-100e_kinetics400-rgb_20221209-de2d5615.pth"
)

checkpoint = (
    "https://download.openmmlab.com/mmclassification/v0/resnext/resnext101_32x4d_b32x8_imagenet_20210506-e0fa3dd5.pth"
)
model = dict(
    backbone=dict(
        type="mmcls.ResNeXt",
        depth=101,
        num_stages=4,
        out_indices=(3,),
        groups=32,
        width_per_group=4,
        style="pytorch",
        init_cfg=dict(type="Pretrained", checkpoint=checkpoint, prefix="backbone"),
        _delete_=True,
    )
)
