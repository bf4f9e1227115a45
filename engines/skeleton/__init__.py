"""Skeleton-based recognition: MMAction2's pose test pipelines (keypoints → model input) and
the models that take them (PoseC3D heatmap volumes, ST-GCN / ST-GCN++ / 2s-AGCN graphs)."""
