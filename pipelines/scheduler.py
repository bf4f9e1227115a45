"""When a clip is due: frames into per-source buffers in stream time, clips out by the stride policy.

:class:`ClipScheduler` is the first of the recognition stage's three parts (scheduler →
inference → placement). It feeds every ``input_step``-th frame of each source into that
source's :class:`~pipelines.clip_buffer.ClipBuffer` (frames resized on arrival) and hands out
a clip whenever one is due under ``--predict-stepsize`` / ``--stride`` / ``--inference-fps``;
at the end of a file it pads one clip for a source that never filled a window.
"""

from __future__ import annotations

import logging

from engines.clip_spec import ClipSpec
from pipelines.clip_buffer import Clip, ClipBuffer, ClipBuffers
from stream.packet import FramePacket

log = logging.getLogger(__name__)


class ClipScheduler:
    """Per-source clip buffers and the policy that says when each has a clip due.

    Args:
        spec: How clips are sampled (the model's test pipeline).
        predict_stepsize: A clip every N frames.
        stride: A clip every ``stride × window`` frames.
        inference_fps: At most this many clips per second of stream time.
        fps: The stream's frame rate, if known.
        input_step: Feed only every N-th frame (long_video_demo's ``--input-step``).
    """

    def __init__(
        self,
        spec: ClipSpec,
        *,
        predict_stepsize: int | None = None,
        stride: float | None = None,
        inference_fps: float | None = None,
        fps: float | None = None,
        input_step: int = 1,
    ) -> None:
        self.input_step = input_step
        self.buffers = ClipBuffers(
            spec,
            predict_stepsize=predict_stepsize,
            stride=stride,
            inference_fps=inference_fps,
            fps=None if fps is None else fps / input_step,
            resize_on_push=True,
        )

    def feed(self, packet: FramePacket) -> Clip | None:
        """Push a frame (every ``input_step``-th of its source); the clip it makes due, if any."""
        step = self.input_step
        if step != 1 and packet.frame_idx % step != step - 1:
            return None
        return self.buffers.feed(packet)

    def buffer_of(self, source_id: str) -> ClipBuffer | None:
        return self.buffers[source_id] if source_id in self.buffers else None

    def has_clips(self, source_id: str) -> bool:
        """Whether ``source_id`` has had a clip already."""
        buffer = self.buffer_of(source_id)
        return buffer is not None and buffer.clips > 0

    def window_frames(self, source_id: str) -> int:
        """Frames a window of ``source_id`` spans in the stream (``input_step`` included)."""
        buffer = self.buffer_of(source_id)
        return (buffer.window_frames if buffer is not None else 1) * self.input_step

    def final_clips(self) -> list[Clip]:
        """End of a file: one padded clip for each source that ended before its first whole window.

        Its window is padded with the nearest frames, so a video shorter than one window is still
        labelled (with a warning) instead of silently getting no label at all.
        """
        clips = []
        for source_id in self.buffers:
            buffer = self.buffers[source_id]
            clip = buffer.final_clip()
            if clip is None:
                continue
            log.warning(
                "%s: the video ended after %d frames, before one whole window of %d; labelled from one clip "
                "whose missing frames repeat the first one",
                source_id, len(buffer), buffer.window_frames,
            )  # fmt: skip
            clips.append(clip)
        return clips
