"""The project's own demo models: synthetic action datasets, their training scripts and shipped assets.

* :mod:`pipelines.demo.synthetic` renders clips of one object moving, growing, shrinking or
  rotating over a cluttered background, writes long demo videos with ground truth, and
  holds the test-pipeline preprocessing the demo model is trained with;
* :mod:`pipelines.demo.train` trains the recognizer of ``configs/demo/`` on it
  (``python -m pipelines.demo.train --out pipelines/demo/assets``);
* :mod:`pipelines.demo.skeleton_synthetic` makes COCO-17 keypoint sequences of a stick
  figure standing, walking, waving, raising its arms, squatting or jumping;
* :mod:`pipelines.demo.train_skeleton` trains the ST-GCN of ``configs/demo/`` on them
  (``python -m pipelines.demo.train_skeleton --out pipelines/demo/assets``);
* ``pipelines/demo/assets/`` holds the shipped checkpoints, label maps, demo video and its
  ground truth (:data:`ASSETS`).
"""

from __future__ import annotations

from pathlib import Path

#: Folder of the shipped demo artifacts.
ASSETS = Path(__file__).resolve().parent / "assets"
#: The demo model's config.
DEMO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo" / "demo_slowonly_r18_synthetic.py"
#: The demo skeleton model's config.
SKELETON_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo" / "demo_stgcn_coco_synthetic.py"

__all__ = ["ASSETS", "DEMO_CONFIG", "SKELETON_CONFIG"]
