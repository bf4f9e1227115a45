# ST-GCN++ (STGCN with a learnable initialised graph, residual GCN units and multi-scale TCNs) on COCO-17
# 2D keypoints: the model section of MMAction2 1.x's
# configs/skeleton/stgcnpp/stgcnpp_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d.py.
model = dict(
    type="RecognizerGCN",
    backbone=dict(
        type="STGCN",
        gcn_adaptive="init",
        gcn_with_res=True,
        tcn_type="mstcn",
        graph_cfg=dict(layout="coco", mode="spatial"),
    ),
    cls_head=dict(type="GCNHead", num_classes=60, in_channels=256),
)
