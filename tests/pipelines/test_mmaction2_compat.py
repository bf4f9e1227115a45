"""MMAction2 demo command lines and outputs: colours, long_video_demo.py's JSON, ``--top-k``.

Facts from MMAction2 1.x's ``demo/long_video_demo.py``: ``--label-color`` / ``--msg-color``
take numbers (``nargs='+'``, default ``255 255 255`` / ``128 128 128``) handed to
``cv2.putText`` on the BGR frame, so they are B G R; a ``.json`` OUT_FILE holds
``{frame: {rank: "label: score"}}`` with 1-based frame numbers and ranks, the score rounded
to 2 places, and ``"Preparing action recognition ..."`` for a frame before any result.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.graphs import Graph
from pipelines.recognition import RecognitionStage
from pipelines.timeline import MMACTION2_WAITING, TimelineStage, mmaction2_frames
from stream.annotate import AnnotateStage
from stream.annotate.labels import LabelAnnotator
from stream.annotate.style import Color
from stream.packet import Prediction
from tests.media import make_video
from tests.pipelines.conftest import DEMO_CONFIG
from tests.pipelines.test_entry_points import run
from tests.stream.helpers import frame


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("v") / "clip.mp4", frames=48, fps=25, size=(160, 120)).path


def long_video_args(*extra: str) -> argparse.Namespace:
    from stream.long_video import build_parser

    return build_parser().parse_args(["cfg.py", "ckpt.pth", "v.mp4", "labels.txt", "out.mp4", *extra])


# ------------------------------------------------------------------------------- colours


@pytest.mark.parametrize(
    "argv, label, msg, font",
    [
        ([], "white", "gray", "white"),
        (["--label-color", "255", "255", "0"], (255, 255, 0), "gray", "white"),  # B G R, as cv2 draws them
        (["--msg-color", "0", "0", "255", "--label-color", "red"], (0, 0, 255), (0, 0, 255), "white"),
        (["--font-color", "10,20,30"], "white", "gray", (10, 20, 30)),
        (["--font-color", "#ff0000"], "white", "gray", (0, 0, 255)),
    ],
)
def test_colour_flags_take_names_or_mmaction2_bgr_numbers(argv: list[str], label: Any, msg: Any, font: Any) -> None:
    args = long_video_args(*argv)
    for value, expected in ((args.label_color, label), (args.msg_color, msg), (args.font_color, font)):
        assert Color.parse(value) == Color.parse(expected)


@pytest.mark.parametrize(
    "argv", [["--label-color", "255", "255"], ["--msg-color", "300", "0", "0"], ["--font-color", "mauve"]]
)
def test_bad_colours_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        long_video_args(*argv)
    assert exc.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_font_color_stands_before_positionals() -> None:
    """``--font-color`` takes one word outside stream.demo, so it cannot swallow positionals."""
    from stream.webcam import build_parser

    args = build_parser().parse_args(["--font-color", "red", "cfg.py", "ckpt.pth", "labels.txt"])
    assert (args.font_color, args.config_pos, args.label_pos) == ("red", "cfg.py", "labels.txt")
    args = long_video_args("--font-color", "0,0,255", "--label-color", "1", "2", "3")
    assert (args.font_color, args.label_color) == ("0,0,255", "1,2,3")


def test_label_colour_numbers_draw_in_bgr() -> None:
    labels = LabelAnnotator(font_color=long_video_args("--label-color", "255", "255", "0").label_color, font_scale=1.0)
    packet = frame(0, size=(120, 320))
    packet.predictions.append(Prediction(np.array([0]), np.array([0.9]), ("walking",), 0.0, 0.0, 0))
    image = labels.annotate(packet.image.copy(), packet)
    assert np.all(image == (255, 255, 0), axis=2).any()  # blue + green in BGR: cyan
    assert not np.all(image == (0, 255, 255), axis=2).any()


# --------------------------------------------------------------------- long_video_demo.py JSON


def _prediction(names: tuple[str, ...], scores: list[float]) -> Prediction:
    return Prediction(np.arange(len(names)), np.array(scores, np.float32), names, 0.0, 0.0, 0)


def test_mmaction2_frames_schema() -> None:
    out = mmaction2_frames([(0, None), (1, _prediction(("walk", "run"), [0.9312, 0.05])), (2, _prediction((), []))])
    assert out == {"1": MMACTION2_WAITING, "2": {"1": "walk: 0.93", "2": "run: 0.05"}, "3": {}}


def test_timeline_stage_writes_the_mmaction2_schema(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    stage = TimelineStage(["walk", "run"], frames_json=path, json_format="mmaction2", progress=None)
    stage.setup()
    for i in range(4):
        p = frame(i, "vid")
        if i == 2:
            p.predictions.append(_prediction(("run", "walk"), [0.7, 0.3]))
        stage.process(p)
    stage.finish()
    # frames before the first prediction lie inside its window: they get it too
    assert json.loads(path.read_text()) == {str(i): {"1": "run: 0.7", "2": "walk: 0.3"} for i in range(1, 5)}


def test_long_video_writes_mmaction2_json_with_top_k_7(
    engine_cache: Path, random_checkpoint: Path, labels_file: Path, video: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.json"
    result = run(
        "stream.long_video", str(DEMO_CONFIG), str(random_checkpoint), str(video), str(labels_file), str(out),
        "--json-format", "mmaction2", "--top-k", "7", "--threshold", "0", "--backend", "onnxruntime",
        "--no-progress", "--no-timeline", cache=engine_cache,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    results = json.loads(out.read_text())
    assert list(results) == [str(i) for i in range(1, 49)]
    for ranks in results.values():
        assert list(ranks) == [str(r) for r in range(1, 8)]
        assert all(re.fullmatch(r"action_\d: \d+(\.\d{1,2})?", text) for text in ranks.values())


# ----------------------------------------------------------------------------- --top-k


def _drawn_lines(labels: LabelAnnotator, prediction: Prediction, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The text lines ``labels`` draws for a frame carrying ``prediction``."""
    import stream.annotate.labels as label_module

    drawn: list[str] = []
    real = label_module.draw_text

    def draw_text(image: np.ndarray, text: str, *args: Any, **kwargs: Any) -> tuple[int, int]:
        drawn.append(text)
        return real(image, text, *args, **kwargs)

    packet = frame(0, size=(720, 320))
    packet.predictions.append(prediction)
    with monkeypatch.context() as patch:
        patch.setattr(label_module, "draw_text", draw_text)
        labels.annotate(packet.image.copy(), packet)
    return drawn


def _graph(module: str, job: str, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> Graph:
    """The graph an entry point builds for ``argv`` (not run)."""
    built: list[Graph] = []

    def capture(self: Graph) -> Any:
        built.append(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(Graph, "execute", capture)
    mod = importlib.import_module(module)
    with pytest.raises(KeyboardInterrupt):
        getattr(mod, job)(mod.build_parser().parse_args(argv))
    return built[0]


def test_top_k_reaches_the_label_annotator_of_every_entry_point(
    engine_cache: Path,
    random_checkpoint: Path,
    labels_file: Path,
    video: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = ["--config", str(DEMO_CONFIG), "--checkpoint", str(random_checkpoint), "--label-file", str(labels_file)]
    common = ["--backend", "onnxruntime", "--top-k", "7", "--threshold", "0"]
    entry_points = {
        "webcam": ("stream.webcam", "webcam", [*model, "--source", str(video), *common]),
        "long_video": ("stream.long_video", "long_video", [str(DEMO_CONFIG), str(random_checkpoint), str(video),
                       str(labels_file), str(tmp_path / "lv.mp4"), "--no-timeline", *common]),
        "rtsp": ("stream.rtsp", "monitor", [*model, "--source", str(video), "--record-dir", str(tmp_path / "rec"),
                 *common]),
    }  # fmt: skip
    prediction = _prediction(tuple(f"action_{i}" for i in range(8)), [0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.06, 0.04])
    for name, (module, job, argv) in entry_points.items():
        graph = _graph(module, job, argv, monkeypatch)
        recognition = [s for s in graph.stages if isinstance(s, RecognitionStage)]
        assert [s.params.top_k for s in recognition] == [7], name
        labels = [a for s in graph.stages if isinstance(s, AnnotateStage) for a in s.annotators]
        labels = [a for a in labels if isinstance(a, LabelAnnotator)]
        assert [a.top_k for a in labels] == [7], name
        drawn = _drawn_lines(labels[0], prediction, monkeypatch)
        assert len(drawn) == 7, (name, drawn)
        for stage in recognition:
            stage.close()
