# MMAction2 1.x model zoo: ir-CSN R50 (IG-65M pretrained, frozen BN), Kinetics-400.
# Test: 10 clips of 32 frames every 2nd, short side 256, three 256x256 crops (30 views).
_base_ = ["../../_base_/models/ircsn_r152.py"]

model = dict(backbone=dict(depth=50, norm_eval=True, bn_frozen=True))

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/recognition/csn/"
    "ircsn_ig65m-pretrained-r50-bnfrozen_8xb12-32x2x1-58e_kinetics400-rgb/"
    "ircsn_ig65m-pretrained-r50-bnfrozen_8xb12-32x2x1-58e_kinetics400-rgb_20220811-44395bae.pth"
)

# MMAction2's test pipeline without DecordInit/DecordDecode: frames arrive decoded.
test_pipeline = [
    dict(type="SampleFrames", clip_len=32, frame_interval=2, num_clips=10, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="ThreeCrop", crop_size=256),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]
