# VideoMAE ViT-B/16 recognizer (MMAction2 1.x ``configs/recognition/videomae``): 16-frame clips,
# 2-frame x 16x16 tubelets, sine-cosine position table, mean pooling + fc_norm, TimeSformerHead.
model = dict(
    type="Recognizer3D",
    backbone=dict(
        type="VisionTransformer",
        img_size=224,
        patch_size=16,
        embed_dims=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4,
        qkv_bias=True,
        num_frames=16,
        norm_cfg=dict(type="LN", eps=1e-6),
    ),
    cls_head=dict(type="TimeSformerHead", num_classes=400, in_channels=768, average_clips="prob"),
    data_preprocessor=dict(
        type="ActionDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape="NCTHW",
    ),
)
