# MMAction2 1.x model zoo: TSM R50 with dot_product non-local blocks, 1x1x8 frames, Kinetics-400.
_base_ = ["tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_kinetics400-rgb.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/tsm/"
    "tsm_imagenet-pretrained-r50-nl-dot-product_8xb16-1x1x8-50e_kinetics400-rgb/"
    "tsm_imagenet-pretrained-r50-nl-dot-product_8xb16-1x1x8-50e_kinetics400-rgb_20220831-108bfde5.pth"
)

model = dict(
    backbone=dict(
        non_local=((0, 0, 0), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 0, 0)),
        non_local_cfg=dict(
            sub_sample=True, use_scale=False, norm_cfg=dict(type="BN3d", requires_grad=True), mode="dot_product"
        ),
    )
)
