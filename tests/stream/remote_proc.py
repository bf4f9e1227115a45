"""The sending half of a split pipeline, run as its own process.

    python -m tests.stream.remote_proc ADDRESS FRAMES [FAIL_AT]

Decodes nothing: a counting source (optionally failing at frame ``FAIL_AT``) feeds a
:class:`~stream.remote.RemoteSink` connected to ``ADDRESS``. Exits 0 when the pipeline
ended normally, 1 when it failed.
"""

from __future__ import annotations

import sys

from stream.errors import StageError
from stream.remote import RemoteSink
from stream.runner import Pipeline
from tests.stream.helpers import CountingSource


def main(address: str, frames: int, fail_at: int | None) -> int:
    source = CountingSource(frames, name="cam", fail_at=fail_at, size=(36, 48))
    try:
        Pipeline([source], [RemoteSink(address)], metrics_interval_s=0).run()
    except StageError:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else None))
