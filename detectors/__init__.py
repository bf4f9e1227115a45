"""Person detection, pose estimation and tracking (see docs/people.md).

* :mod:`detectors.base` — the ``PersonDetector`` / ``PoseEstimator`` protocols, COCO-17 names;
* :mod:`detectors.registry` — models by name (plain dicts);
* :mod:`detectors.hog`, :mod:`detectors.blazepose` — the built-in zero-download models;
* :mod:`detectors.tracking` — ByteTrack (Roboflow's ``trackers``) with track lifecycles;
* :mod:`detectors.stages` — the detect / track / pose stages.
"""
