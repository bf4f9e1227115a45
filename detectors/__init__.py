"""Person detection, pose estimation and tracking (added by a later issue)."""
