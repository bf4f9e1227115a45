"""MMAction2's demos pass only ``--det-config`` / ``--pose-config``: the model that runs them is picked from the config."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from pipelines.cli import add_people_args, people_models

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mm"
RTMDET = FIXTURES / "rtmdet" / "rtmdet_small_random.py"
RTMPOSE = FIXTURES / "rtmpose" / "rtmpose-tiny_coco-256x192.py"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_people_args(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        ([], ("hog", "blazepose")),
        (["--det-config", str(RTMDET)], ("rtmdet", "blazepose")),
        (["--pose-config", str(RTMPOSE)], ("hog", "rtmpose")),
        (["--det-config", "faster_rcnn_r50_fpn_2x_coco.py"], ("mmdet", "blazepose")),  # not readable here: the mm API
        (["--detector", "yolox", "--det-config", str(RTMDET)], ("yolox", "blazepose")),  # an explicit choice wins
        (["--pose", "mmpose", "--pose-config", str(RTMPOSE)], ("hog", "mmpose")),
    ],
)
def test_the_model_is_picked_from_the_config(argv: list[str], want: tuple[str, str]) -> None:
    assert people_models(parse(*argv)) == want
