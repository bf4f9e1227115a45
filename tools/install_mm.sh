#!/usr/bin/env bash
# Installs the `mm` extra: mmdet 3.3 and mmpose 1.3 (and mmcv 2.1 with its compiled ops),
# for the person detectors / pose models that run through OpenMMLab's own API and for the
# parity fixtures of the project's compiled detector and pose engines.
#
#   bash tools/install_mm.sh [VENV]        # default: .venv (created if missing)
#
# What it works around (each would otherwise fail on Python 3.11 / numpy 2):
# * mmcv 2.1 has no wheel for this Python: it is compiled from source (MMCV_WITH_OPS=1,
#   --no-build-isolation, setuptools<70 for pkg_resources, C++20 for torch 2.14's headers),
#   about 20-40 minutes on 2 cores.
#   The wheel is cached in $MM_WHEEL_CACHE (default ~/.cache/action-stream/wheels), so a
#   second install takes seconds.
# * mmdet / mmpose pull torchvision, which works with torch 2.14.1 + torchvision 0.29.1.
# * mmpose's xtcocotools wheel is built against numpy 1: it is built from source here;
#   mmpose's chumpy (an unmaintained SMPL helper that does not build) is left out.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
PY=${PYTHON:-python3}
CACHE=${MM_WHEEL_CACHE:-$HOME/.cache/action-stream/wheels}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/pip" --disable-pip-version-check -q "$@"; }

pip install torch==2.14.1 torchvision==0.29.1
pip install 'setuptools<70' wheel cython 'numpy>=2,<3' mmengine==0.10.7
mkdir -p "$CACHE"
if ! ls "$CACHE"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
  echo "compiling mmcv 2.1.0 with ops (about 20-40 minutes on 2 cores; cached in $CACHE)"
  # torch 2.14's headers need C++20; mmcv 2.1's setup.py asks for C++14/17: build a patched copy.
  src=$(mktemp -d)
  "$VENV/bin/pip" download -q --no-deps --no-build-isolation --no-binary :all: -d "$src" mmcv==2.1.0
  tar xzf "$src"/mmcv-2.1.0.tar.gz -C "$src"
  sed -i 's/-std=c++1[47]/-std=c++20/g' "$src"/mmcv-2.1.0/setup.py
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "$VENV/bin/pip" wheel -q --no-deps --no-build-isolation -w "$CACHE" "$src"/mmcv-2.1.0
  rm -rf "$src"
fi
pip install --no-deps "$CACHE"/mmcv-2.1.0-*.whl
if ! ls "$CACHE"/xtcocotools-*.whl >/dev/null 2>&1; then
  "$VENV/bin/pip" wheel -q --no-deps --no-build-isolation --no-binary xtcocotools -w "$CACHE" 'xtcocotools>=1.12'
fi
pip install --no-deps "$CACHE"/xtcocotools-*.whl
pip install --no-deps mmdet==3.3.0 mmpose==1.3.2
# Their other run-time requirements (mmdet: pycocotools shapely terminaltables; mmpose:
# json_tricks munkres; both: matplotlib scipy opencv), chumpy excepted.
pip install pycocotools shapely terminaltables json_tricks munkres matplotlib scipy opencv-python addict rich termcolor yapf six tqdm
# mmengine's get_installed_path (used when mmpose is imported) needs pkg_resources, which
# setuptools 70+ no longer has; torch 2.14 asks for setuptools>=77 only to build extensions.
pip install 'setuptools<70'
"$VENV/bin/python" - <<'PY'
import mmcv, mmdet, mmpose
from mmcv.ops import nms, RoIAlign  # the compiled ops
print(f"mmcv {mmcv.__version__} (ops ok), mmdet {mmdet.__version__}, mmpose {mmpose.__version__}")
PY
