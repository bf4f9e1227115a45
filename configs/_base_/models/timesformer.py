# TimeSformer ViT-B/16 recognizer (MMAction2 1.x ``configs/recognition/timesformer``): 8 frames of
# 224x224, divided space-time attention, TimeSformerHead. ImageNet ViT initialisation
# (``pretrained``) is training-only here: weights come from load_from.
model = dict(
    type="Recognizer3D",
    backbone=dict(
        type="TimeSformer",
        num_frames=8,
        img_size=224,
        patch_size=16,
        embed_dims=768,
        in_channels=3,
        dropout_ratio=0.0,
        transformer_layers=None,
        attention_type="divided_space_time",
        norm_cfg=dict(type="LN", eps=1e-6),
    ),
    cls_head=dict(type="TimeSformerHead", num_classes=400, in_channels=768, average_clips="prob"),
    data_preprocessor=dict(
        type="ActionDataPreprocessor",
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        format_shape="NCTHW",
    ),
)

# MMAction2's test pipeline without DecordInit/DecordDecode: frames arrive decoded.
# One clip of 8 frames every 32nd, short side 224, three 224x224 crops (3 views).
test_pipeline = [
    dict(type="SampleFrames", clip_len=8, frame_interval=32, num_clips=1, test_mode=True),
    dict(type="Resize", scale=(-1, 224)),
    dict(type="ThreeCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]
