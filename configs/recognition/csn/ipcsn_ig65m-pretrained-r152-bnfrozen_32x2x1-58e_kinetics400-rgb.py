# MMAction2 1.x model zoo: ip-CSN R152 (IG-65M pretrained, frozen BN; weights converted from VMZ), Kinetics-400.
# Test: 10 clips of 32 frames every 2nd, short side 256, three 256x256 crops (30 views).
_base_ = ["../../_base_/models/ircsn_r152.py"]

model = dict(backbone=dict(norm_eval=True, bn_frozen=True, bottleneck_mode="ip"))

load_from = (
    "https://download.openmmlab.com/mmaction/recognition/csn/vmz/"
    "vmz_ipcsn_ig65m_pretrained_r152_32x2x1_58e_kinetics400_rgb_20210617-c3be9793.pth"
)

# MMAction2's test pipeline without DecordInit/DecordDecode: frames arrive decoded.
test_pipeline = [
    dict(type="SampleFrames", clip_len=32, frame_interval=2, num_clips=10, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="ThreeCrop", crop_size=256),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]
