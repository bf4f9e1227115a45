# UniFormerV2-B/16 recognizer (MMAction2 1.x ``configs/recognition/uniformerv2``): CLIP ViT-B/16
# at 224x224, 8 frames, global UniBlocks after blocks 8-11, UniFormerHead.
# CLIP initialisation (clip_pretrained) is training-only here: weights come from load_from.
num_frames = 8
model = dict(
    type="Recognizer3D",
    backbone=dict(
        type="UniFormerV2",
        input_resolution=224,
        patch_size=16,
        width=768,
        layers=12,
        heads=12,
        t_size=num_frames,
        dw_reduction=1.5,
        backbone_drop_path_rate=0.0,
        temporal_downsample=False,
        no_lmhra=True,
        double_lmhra=True,
        return_list=[8, 9, 10, 11],
        n_layers=4,
        n_dim=768,
        n_head=12,
        mlp_factor=4.0,
        drop_path_rate=0.0,
        mlp_dropout=[0.5, 0.5, 0.5, 0.5],
        clip_pretrained=False,
    ),
    cls_head=dict(type="UniFormerHead", dropout_ratio=0.5, num_classes=400, in_channels=768, average_clips="prob"),
    data_preprocessor=dict(
        type="ActionDataPreprocessor",
        mean=[114.75, 114.75, 114.75],
        std=[57.375, 57.375, 57.375],
        format_shape="NCTHW",
    ),
)

# MMAction2's test pipeline without DecordInit/DecordDecode: frames arrive decoded.
# 4 clips of 8 frames spread uniformly over the window, short side 224, three 224x224 crops (12 views).
test_pipeline = [
    dict(type="UniformSample", clip_len=num_frames, num_clips=4, test_mode=True),
    dict(type="Resize", scale=(-1, 224)),
    dict(type="ThreeCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]
