# MMAction2 1.x model zoo: SlowOnly R50 with embedded-gaussian non-local blocks, 4x16x1, Kinetics-400.
_base_ = ["slowonly_r50_8xb16-4x16x1-256e_kinetics400-rgb.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/slowonly/slowonly_r50-in1k-pre-nl-embedded-gaussian_8xb16-4x16x1-steplr-150e_kinetics400-rgb/"
    "slowonly_r50-in1k-pre-nl-embedded-gaussian_8xb16-4x16x1-steplr-150e_kinetics400-rgb_20220901-cf739c75.pth"
)

model = dict(
    backbone=dict(
        non_local=((0, 0, 0), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 0, 0)),
        non_local_cfg=dict(
            sub_sample=True,
            use_scale=True,
            norm_cfg=dict(type="BN3d", requires_grad=True),
            mode="embedded_gaussian",
        ),
    )
)
