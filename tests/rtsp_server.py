"""A local RTSP server that streams an H.264 MP4 in an endless loop, for tests.

Run by Debian's system Python (it needs ``python3-gi`` and GStreamer's RTSP server
bindings, which the project's virtual environment does not have)::

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --file clip.mp4 --mount /cam

It binds ``127.0.0.1`` only. Each client gets its own pipeline (the factory is not
shared), ``filesrc ! qtdemux ! h264parse ! rtph264pay``, which plays the file from the
start and loops it: at the end of the file the demuxer's EOS is dropped, the demuxer
is seeked back to 0 and a pad offset keeps timestamps running on, so clients see one
endless stream whose RTP timestamps never jump back. Clients can connect, drop and
reconnect any number of times. SIGTERM/SIGINT stop the server, and so does the end of
the process named by ``--parent-pid`` (so a test run killed hard leaves nothing behind).
It prints ``rtsp_server: serving …`` once it listens.

Tests use it through ``tests.media.RtspServer``, which also picks a free port and
waits until the server listens.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

HOST = "127.0.0.1"


class LoopingFile:
    """Keep one client's ``qtdemux`` looping: drop its EOS, seek to 0, shift timestamps on."""

    def __init__(self, demux: Gst.Element) -> None:
        self.demux = demux
        self.offset_ns = 0  # added to the running time of everything after the demuxer
        self.last_end_ns = 0  # end of the newest buffer, in stream time of the current pass
        self.seeking = False
        self.pads: list[Gst.Pad] = []
        demux.connect("pad-added", self._pad_added)

    def _pad_added(self, _demux: Gst.Element, pad: Gst.Pad) -> None:
        self.pads.append(pad)
        pad.add_probe(
            Gst.PadProbeType.BUFFER | Gst.PadProbeType.EVENT_DOWNSTREAM | Gst.PadProbeType.EVENT_FLUSH, self._probe
        )

    def _probe(self, pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        if info.type & Gst.PadProbeType.BUFFER:
            buf = info.get_buffer()
            if buf.pts != Gst.CLOCK_TIME_NONE:
                duration = buf.duration if buf.duration != Gst.CLOCK_TIME_NONE else 0
                self.last_end_ns = max(self.last_end_ns, buf.pts + duration)
            return Gst.PadProbeReturn.OK
        event = info.get_event()
        if event is None:
            return Gst.PadProbeReturn.OK
        kind = event.type
        if kind == Gst.EventType.EOS:
            if not self.seeking:
                self.seeking = True
                GLib.idle_add(self._rewind)
            return Gst.PadProbeReturn.DROP
        if self.seeking and kind in (Gst.EventType.FLUSH_START, Gst.EventType.FLUSH_STOP):
            return Gst.PadProbeReturn.DROP  # downstream already drained this pass; keep its clock
        if self.seeking and kind == Gst.EventType.STREAM_START:
            return Gst.PadProbeReturn.DROP
        if kind == Gst.EventType.SEGMENT and self.seeking:
            self.seeking = False
        return Gst.PadProbeReturn.OK

    def _rewind(self) -> bool:
        self.offset_ns += self.last_end_ns
        self.last_end_ns = 0
        for pad in self.pads:
            pad.set_offset(self.offset_ns)
        ok = self.demux.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)
        if not ok:
            print("rtsp_server: rewinding the file failed", file=sys.stderr, flush=True)
        return False  # run once


class LoopingFactory(GstRtspServer.RTSPMediaFactory):
    """One looping file pipeline per client."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.loops: list[LoopingFile] = []

    def do_create_element(self, url: object) -> Gst.Element:
        location = self.path.replace("\\", "\\\\").replace('"', '\\"')
        launch = (
            f'( filesrc location="{location}" ! qtdemux name=demux ! h264parse '
            "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
        element = Gst.parse_launch(launch)
        demux = element.get_by_name("demux")
        self.loops.append(LoopingFile(demux))
        return element


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument("--file", required=True, help="MP4 file with an H.264 video stream")
    parser.add_argument("--mount", default="/cam", help="stream path, e.g. /cam")
    parser.add_argument("--parent-pid", type=int, default=None, help="exit when this process is gone")
    args = parser.parse_args(argv)

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(HOST)
    server.set_service(str(args.port))
    factory = LoopingFactory(args.file)
    factory.set_shared(False)
    factory.set_eos_shutdown(False)
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on {HOST}:{args.port}", file=sys.stderr, flush=True)
        return 1

    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    if args.parent_pid is not None:  # never outlive a test run that was killed hard
        parent = args.parent_pid

        def check_parent() -> bool:
            if os.getppid() != parent:
                print("rtsp_server: parent process gone; exiting", file=sys.stderr, flush=True)
                loop.quit()
                return False
            return True

        GLib.timeout_add(500, check_parent)
    print(f"rtsp_server: serving {args.file} at rtsp://{HOST}:{args.port}{args.mount}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
