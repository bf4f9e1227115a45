# The project's demo skeleton model: a small ST-GCN trained from scratch by
# `python -m pipelines.demo.train_skeleton` on the synthetic COCO-17 keypoint sequences of
# pipelines/demo/skeleton_synthetic.py (6 classes: standing, walking, waving, arms_up,
# squatting, jumping). One person per input (per-person labels of tracked people).
# Input: one window of a track's keypoints resampled to 48 frames (the window should be 48
# frames: 1.9 s at 25 fps, 4.8 s at 10 fps as vtest.avi), x/y normalised by the frame size,
# plus the keypoint score: (N, 1 clip, 1 person, 48, 17, 3). 0.13 M parameters.
model = dict(
    type="RecognizerGCN",
    backbone=dict(
        type="STGCN",
        graph_cfg=dict(layout="coco", mode="stgcn_spatial"),
        in_channels=3,
        base_channels=16,
        num_stages=6,
        inflate_stages=[3, 5],
        down_stages=[3, 5],
    ),
    cls_head=dict(type="GCNHead", num_classes=6, in_channels=64, dropout=0.1, average_clips="prob"),
)

dataset_type = "PoseDataset"
clip_len = 48
# MMAction2's skeleton test pipeline. A sample is one person's window:
# keypoint (1, T, 17, 2) pixels, keypoint_score (1, T, 17), total_frames T, img_shape (h, w) of
# the frame (required by PoseCompact). A window shorter than clip_len is looped by
# UniformSampleFrames; training saw that too.
# PoseCompact (MMAction2's, as PoseC3D uses it) crops the square box around the window's
# keypoints (+25 %) and makes it the img_shape, so PreNormalize2D maps the person, not the
# frame, to [-1, 1]: a 40 px pedestrian in a 1080p frame and a 400 px webcam user give inputs
# of the same scale. Without it, the same training reached 30 % held-out top-1 after 3 epochs
# instead of 85 % (see docs/demo.md).
test_pipeline = [
    dict(type="UniformSampleFrames", clip_len=clip_len, num_clips=1, test_mode=True),
    dict(type="PoseDecode"),
    dict(type="PoseCompact", padding=0.25, threshold=10, hw_ratio=1.0, allow_imgpad=True),
    dict(type="PreNormalize2D", img_shape=(480, 640)),
    dict(type="GenSkeFeat", dataset="coco", feats=["j"]),
    dict(type="FormatGCNInput", num_person=1),
    dict(type="PackActionInputs"),
]

dataset_meta = dict(classes=("standing", "walking", "waving", "arms_up", "squatting", "jumping"))

# Shipped artifacts, relative to this file (mmengine substitutes {{ fileDirname }}).
load_from = "{{ fileDirname }}/../../pipelines/demo/assets/demo_skeleton_stgcn.pth"
label_file = "{{ fileDirname }}/../../pipelines/demo/assets/skeleton_label_map.txt"
