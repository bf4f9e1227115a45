"""On-screen display with OpenCV (``--show``), with 'q'/Esc to stop the run.

Stopping: pressing one of ``quit_keys`` in the window (or closing the window) sets
:attr:`DisplaySink.quit_requested` and calls ``on_quit`` once, from the display
stage's thread. Wire it to the pipeline when building the run::

    display = DisplaySink("demo")
    pipeline = Pipeline(sources, [..., display])
    display.on_quit = pipeline.stop  # q/Esc: sources stop, stages drain and finish
    pipeline.run()

The sink then stops showing frames and passes them on, so the sinks after it still
get what drains; the run ends with status ``ok``, not as a failure.

Without a display (``DISPLAY`` and ``WAYLAND_DISPLAY`` unset on Linux, an X server
that does not answer, or an OpenCV build without GUI support) :meth:`DisplaySink.setup`
raises :class:`~stream.errors.DisplayUnavailable` before any window is touched: Qt
would otherwise abort the whole process. OpenCV windows need their calls in one
thread; the runner runs ``setup``/``process``/``close`` of a stage in one thread, which
works on Linux and Windows (macOS only allows GUI calls in the main thread).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable

import cv2

from stream.errors import ConfigError, DisplayUnavailable
from stream.packet import FramePacket
from stream.stage import Outputs, Stage
from stream.transport import LIVE_DISPLAY

log = logging.getLogger(__name__)

X11_PROBE_TIMEOUT_S = 0.5
NO_DISPLAY_HINT = "no display found; drop --show or use --out-file"


def gui_framework() -> str:
    """OpenCV's GUI backend (``QT5``, ``GTK3``, ``WIN32UI``, ``COCOA``...), or ``""`` if none."""
    current = getattr(cv2, "currentUIFramework", None)
    if current is not None:
        try:
            return str(current())
        except cv2.error:
            return ""
    match = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    framework = match.group(1) if match else ""
    return "" if framework.upper() == "NONE" else framework


def x11_reachable(display: str, timeout_s: float = X11_PROBE_TIMEOUT_S) -> bool:
    """Whether an X server accepts connections for ``display`` (``:0``, ``localhost:10.0``)."""
    match = re.fullmatch(r"(?P<host>[^:]*):(?P<num>\d+)(?:\.\d+)?", display)
    if match is None:
        return True  # an unusual form (e.g. a launchd socket path): let the GUI decide
    host, num = match.group("host"), int(match.group("num"))
    if host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{num}"
        candidates = [path, "\0" + path] if sys.platform.startswith("linux") else [path]
        for address in candidates:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout_s)
                try:
                    sock.connect(address)
                    return True
                except OSError:
                    continue
        return False
    try:
        with socket.create_connection((host, 6000 + num), timeout=timeout_s):
            return True
    except OSError:
        return False


def display_problem() -> str | None:
    """Why no window can be opened here, or None if one probably can."""
    framework = gui_framework()
    if not framework:
        return "OpenCV was built without GUI support (opencv-python-headless?)"
    if sys.platform in ("win32", "darwin"):
        return None
    display = os.environ.get("DISPLAY")
    wayland = os.environ.get("WAYLAND_DISPLAY")
    if not display and not wayland:
        return "DISPLAY and WAYLAND_DISPLAY are unset"
    if not display and framework.upper().startswith("QT") and not os.environ.get("QT_QPA_PLATFORM"):
        return "OpenCV's Qt needs an X display and DISPLAY is unset"
    if display and not wayland and not x11_reachable(display):
        return f"no X server answers on DISPLAY={display}"
    return None


class DisplaySink(Stage):
    """Shows frames in a window (``cv2.imshow``); passes every packet on unchanged.

    One window per source: the first source gets ``window_name``, others
    ``"<window_name> [<source_id>]"``.

    Args:
        window_name: title of the window.
        fps_cap: show at most this many frames per second, pacing the stage (as
            MMAction2's ``--drawing-fps``); None shows frames as they come.
        on_quit: called once when the user presses a quit key or closes the window;
            may also be assigned after construction (``display.on_quit = pipeline.stop``).
        quit_keys: keys that request a stop (default ``q`` and Esc).
        name: stage name; defaults to ``DisplaySink``.

    Raises:
        ConfigError: If ``fps_cap`` is not positive.
    """

    live_policy = LIVE_DISPLAY  # a display shows the newest frame only

    def __init__(
        self,
        window_name: str = "action-stream",
        *,
        fps_cap: float | None = None,
        on_quit: Callable[[], None] | None = None,
        quit_keys: str = "q\x1b",
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        if fps_cap is not None and not fps_cap > 0:
            raise ConfigError(f"fps_cap: expected a positive number or None, got {fps_cap}")
        self.window_name = window_name
        self.fps_cap = fps_cap
        self.on_quit = on_quit
        self.quit_keys = frozenset(ord(k) for k in quit_keys)
        #: Set when the user asked to stop; the entry point may poll it instead of using on_quit.
        self.quit_requested = threading.Event()
        self.shown = 0
        self._windows: dict[str, str] = {}
        self._next_show = 0.0
        self._visible: set[str] = set()

    def setup(self) -> None:
        """Check that a display is available and open the window.

        Raises:
            DisplayUnavailable: If there is no display (see the module docstring).
        """
        problem = display_problem()
        if problem is not None:
            raise DisplayUnavailable(f"{NO_DISPLAY_HINT} ({problem})")
        try:
            cv2.namedWindow(self.window_name, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise DisplayUnavailable(f"{NO_DISPLAY_HINT} (cannot open a window: {exc})") from exc
        self._windows[""] = self.window_name

    def _window(self, source_id: str) -> str:
        window = self._windows.get(source_id)
        if window is None:
            if "" in self._windows:  # the window opened at setup goes to the first source
                window = self._windows.pop("")
            else:
                window = f"{self.window_name} [{source_id}]"
            self._windows[source_id] = window
        return window

    def request_quit(self) -> None:
        """Record a stop request and call ``on_quit`` (once)."""
        if self.quit_requested.is_set():
            return
        self.quit_requested.set()
        if self.on_quit is None:
            log.warning("%s: quit requested but no on_quit is set; frames are no longer shown", self.name)
            return
        log.info("%s: quit requested", self.name)
        self.on_quit()

    def handle_key(self, key: int) -> None:
        """React to a ``cv2.waitKey`` result (-1 when no key was pressed)."""
        if key != -1 and (key & 0xFF) in self.quit_keys:
            self.request_quit()

    def process(self, packet: FramePacket) -> Outputs:
        if self.quit_requested.is_set():
            return packet
        window = self._window(packet.source_id)
        wait_ms = 1
        if self.fps_cap is not None:
            now = time.monotonic()
            wait_ms = max(1, round((self._next_show - now) * 1000))
            self._next_show = max(self._next_show, now) + 1.0 / self.fps_cap
        try:
            cv2.imshow(window, packet.image)
            self.handle_key(cv2.waitKey(wait_ms))
            if not self.quit_requested.is_set() and self._closed(window):
                self.request_quit()
        except cv2.error as exc:
            raise DisplayUnavailable(f"cannot show frames in window {window!r}: {exc}") from exc
        self.shown += 1
        return packet

    def _closed(self, window: str) -> bool:
        """Whether the user closed ``window`` (the window manager's close button).

        Only trusted once the window was seen visible, since backends without the property
        answer -1. Qt destroys a closed window, after which asking about it raises.
        """
        try:
            visible = cv2.getWindowProperty(window, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:
            if window in self._visible:
                return True
            raise
        if visible:
            self._visible.add(window)
        return not visible and window in self._visible

    def close(self) -> None:
        windows, self._windows = list(self._windows.values()), {}
        for window in windows:
            with contextlib.suppress(cv2.error):
                cv2.destroyWindow(window)
        if windows:
            with contextlib.suppress(cv2.error):
                cv2.waitKey(1)  # let the GUI process the close
