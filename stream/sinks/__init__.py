"""Outputs: video files, an on-screen window, JSON lines, a ZeroMQ results feed.

Every sink is a :class:`~stream.stage.Stage` that **passes packets through** unchanged,
so sinks chain in the runner's linear pipeline and can sit anywhere in it: a raw
recording before the annotate stage, an annotated one after it. Put lossless sinks
(files) before a display, whose link may drop frames when the source is live.
:class:`MultiSink` groups several sinks into one stage (one thread) when that is
preferred. Every file sink writes each result as it comes into a hidden temporary
beside its destination and finalises it, renaming it into place, in ``finish()`` (and in
``close()`` when the pipeline failed), so a run that stops early leaves valid, partial
files, and a sink that received nothing leaves an existing file untouched (see
``docs/reliability.md``). A sink's ``written`` lists the files it put in place::

    stages = [..., AnnotateStage(default_annotators()),
              VideoWriterSink("out.mp4"), JsonlSink("results.jsonl"), DisplaySink()]
"""

from stream.sinks.display import DisplaySink, display_problem
from stream.sinks.jsonl import JsonlSink
from stream.sinks.multi import MultiSink
from stream.sinks.publisher import ZmqPublisherSink
from stream.sinks.records import frame_record
from stream.sinks.video import VideoWriterSink

__all__ = [
    "DisplaySink",
    "JsonlSink",
    "MultiSink",
    "VideoWriterSink",
    "ZmqPublisherSink",
    "display_problem",
    "frame_record",
]
