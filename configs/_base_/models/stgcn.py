# ST-GCN, COCO-17 2D keypoints: the model section of MMAction2 1.x's
# configs/skeleton/stgcn/stgcn_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d.py.
model = dict(
    type="RecognizerGCN",
    backbone=dict(type="STGCN", graph_cfg=dict(layout="coco", mode="stgcn_spatial")),
    cls_head=dict(type="GCNHead", num_classes=60, in_channels=256),
)
