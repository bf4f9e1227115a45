"""MMAction2's demos pass only ``--det-config`` / ``--pose-config``: the model running them comes from the config."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from pipelines.cli import add_people_args, people_models
from stream.errors import SourceNotFound

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
        (["--detector", "yolox", "--det-config", str(RTMDET)], ("yolox", "blazepose")),  # an explicit choice wins
        (["--pose", "mmpose", "--pose-config", str(RTMPOSE)], ("hog", "mmpose")),
    ],
)
def test_the_model_is_picked_from_the_config(argv: list[str], want: tuple[str, str]) -> None:
    assert people_models(parse(*argv)) == want


def test_a_config_of_mmdets_own_package_goes_to_the_mm_api(tmp_path: Path) -> None:
    config = tmp_path / "faster-rcnn_r50_fpn_2x_coco.py"
    config.write_text("_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']\n")  # unreadable without mmdet
    assert people_models(parse("--det-config", str(config))) == ("mmdet", "blazepose")


def test_a_missing_config_is_named() -> None:
    with pytest.raises(SourceNotFound, match=r"--det-config nope\.py: no such file"):
        people_models(parse("--det-config", "nope.py"))
