# RTMPose-m, COCO-17, 256x192: the inference-relevant settings of mmpose 1.3's
# configs/body_2d_keypoint/rtmpose/coco/rtmpose-m_8xb256-420e_coco-256x192.py, copied so that
# this file is self-contained (no mmpose _base_). Training settings (optimizer, schedule, train
# pipeline, losses' use) are left out; the model, codec and test pipeline are mmpose's.
# Its model-zoo checkpoint:
# https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/rtmpose-m_simcc-coco_pt-aic-coco_420e-256x192-d8dd5ca4_20230127.pth
# (download it yourself; this project downloads nothing). mmpose's own API can read this file too
# (default_scope, test_dataloader), which is how the parity fixtures are made.
default_scope = "mmpose"

codec = dict(
    type="SimCCLabel", input_size=(192, 256), sigma=(4.9, 5.66), simcc_split_ratio=2.0, normalize=False, use_dark=False
)

model = dict(
    type="TopdownPoseEstimator",
    data_preprocessor=dict(
        type="PoseDataPreprocessor", mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True
    ),
    backbone=dict(
        _scope_="mmdet",
        type="CSPNeXt",
        arch="P5",
        expand_ratio=0.5,
        deepen_factor=0.67,
        widen_factor=0.75,
        out_indices=(4,),
        channel_attention=True,
        norm_cfg=dict(type="SyncBN"),
        act_cfg=dict(type="SiLU"),
    ),
    head=dict(
        type="RTMCCHead",
        in_channels=768,
        out_channels=17,
        input_size=codec["input_size"],
        in_featuremap_size=(6, 8),  # mmpose: tuple([s // 32 for s in codec['input_size']])
        simcc_split_ratio=codec["simcc_split_ratio"],
        final_layer_kernel_size=7,
        gau_cfg=dict(
            hidden_dims=256,
            s=128,
            expansion_factor=2,
            dropout_rate=0.0,
            drop_path=0.0,
            act_fn="SiLU",
            use_rel_bias=False,
            pos_enc=False,
        ),
        loss=dict(type="KLDiscretLoss", use_target_weight=True, beta=10.0, label_softmax=True),
        decoder=codec,
    ),
    test_cfg=dict(flip_test=True),
)

# the test pipeline mmpose's inference_topdown runs (images and boxes come from the caller)
val_pipeline = [
    dict(type="LoadImage"),
    dict(type="GetBBoxCenterScale"),
    dict(type="TopdownAffine", input_size=codec["input_size"]),
    dict(type="PackPoseInputs"),
]
val_dataloader = dict(
    batch_size=64,
    dataset=dict(
        type="CocoDataset", data_mode="topdown", data_root="data/coco/", test_mode=True, pipeline=val_pipeline
    ),
)
test_dataloader = val_dataloader
