# 2s-AGCN (AAGCN without its attention module), COCO-17 2D keypoints: the model section of MMAction2 1.x's
# configs/skeleton/2s-agcn/2s-agcn_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d.py.
model = dict(
    type="RecognizerGCN",
    backbone=dict(
        type="AAGCN",
        graph_cfg=dict(layout="coco", mode="spatial"),
        gcn_attention=False,  # degenerate AAGCN to AGCN
    ),
    cls_head=dict(type="GCNHead", num_classes=60, in_channels=256),
)
