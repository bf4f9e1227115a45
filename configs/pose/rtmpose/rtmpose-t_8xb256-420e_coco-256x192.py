# RTMPose-t, COCO-17, 256x192: mmpose 1.3's
# configs/body_2d_keypoint/rtmpose/coco/rtmpose-t_8xb256-420e_coco-256x192.py differs from
# RTMPose-m in the backbone's depth / width and the head's input channels only.
# Model-zoo checkpoint:
# https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/rtmpose-tiny_simcc-coco_pt-aic-coco_420e-256x192-e613ba3f_20230127.pth
_base_ = ["./rtmpose-m_8xb256-420e_coco-256x192.py"]

model = dict(backbone=dict(deepen_factor=0.167, widen_factor=0.375), head=dict(in_channels=384))
