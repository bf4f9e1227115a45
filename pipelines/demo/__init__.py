"""The project's own demo recognizer: a synthetic action dataset, its training script and shipped assets.

* :mod:`pipelines.demo.synthetic` renders clips of one object moving, growing, shrinking or
  rotating over a cluttered background, writes long demo videos with ground truth, and
  holds the test-pipeline preprocessing the demo model is trained with;
* :mod:`pipelines.demo.train` trains the recognizer of ``configs/demo/`` on it
  (``python -m pipelines.demo.train --out pipelines/demo/assets``);
* ``pipelines/demo/assets/`` holds the shipped checkpoint, label map, demo video and its
  ground truth (:data:`ASSETS`).
"""

from __future__ import annotations

from pathlib import Path

#: Folder of the shipped demo artifacts.
ASSETS = Path(__file__).resolve().parent / "assets"
#: The demo model's config.
DEMO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo" / "demo_slowonly_r18_synthetic.py"

__all__ = ["ASSETS", "DEMO_CONFIG"]
