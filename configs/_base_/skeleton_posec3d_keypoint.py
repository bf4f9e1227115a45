# PoseC3D keypoint-heatmap test pipeline of MMAction2 1.x (NTU-60 / FineGYM): 10 clips of 48 frames,
# the people's box padded to a square, short side 64, centre 64x64 crop, one Gaussian per keypoint
# (sigma 0.6, scaled by its score), plus the left/right-flipped heatmaps as 10 more views.
left_kp = [1, 3, 5, 7, 9, 11, 13, 15]
right_kp = [2, 4, 6, 8, 10, 12, 14, 16]
test_pipeline = [
    dict(type="UniformSampleFrames", clip_len=48, num_clips=10, test_mode=True),
    dict(type="PoseDecode"),
    dict(type="PoseCompact", hw_ratio=1.0, allow_imgpad=True),
    dict(type="Resize", scale=(-1, 64)),
    dict(type="CenterCrop", crop_size=64),
    dict(
        type="GeneratePoseTarget",
        sigma=0.6,
        use_score=True,
        with_kp=True,
        with_limb=False,
        double=True,
        left_kp=left_kp,
        right_kp=right_kp,
    ),
    dict(type="FormatShape", input_format="NCTHW_Heatmap"),
    dict(type="PackActionInputs"),
]
