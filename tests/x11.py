"""A private X server (Xvfb) for tests of the on-screen display, and what a user does to a window.

:class:`Xvfb` starts ``Xvfb`` on a display number it picks itself (``-displayfd``), so
tests never collide with a real screen or with each other; ``-noreset`` keeps it up
between clients (by default X resets when its last client leaves, and refuses a client
connecting during the reset: the window of the program under test, after an ``xdotool``
probe). :func:`find_window` and :func:`press_key` use ``xdotool``; :func:`close_window`
sends ``WM_DELETE_WINDOW``, the message a window manager's close button sends (Xvfb runs
no window manager).
Debian packages: ``xvfb xdotool x11-utils`` (CI installs them: ``.ci/run``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import subprocess
from types import TracebackType

TOOLS = ("Xvfb", "xdotool")
INSTALL_HINT = "apt-get install xvfb xdotool x11-utils"


def x11_tools_missing() -> str | None:
    """Why the X11 tests can't run here, or None when they can."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found: {INSTALL_HINT}"
    if ctypes.util.find_library("X11") is None:
        return "libX11 not found: apt-get install libx11-6"
    return None


class Xvfb:
    """``with Xvfb() as x: env = {..., "DISPLAY": x.display}``; killed on exit."""

    def __init__(self, size: str = "640x480x24", start_timeout_s: float = 30) -> None:
        self.size = size
        self.start_timeout_s = start_timeout_s
        self.display = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Xvfb:
        read_fd, write_fd = os.pipe()
        try:
            self._proc = subprocess.Popen(
                ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", self.size, "-nolisten", "tcp", "-noreset"],
                pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            os.close(write_fd)
            write_fd = -1
            with os.fdopen(read_fd, "rb", closefd=True) as pipe:
                read_fd = -1
                number = pipe.readline().strip()  # written once the server accepts connections
        finally:
            for fd in (read_fd, write_fd):
                if fd >= 0:
                    os.close(fd)
        if not number:
            err = self._stop()
            raise RuntimeError(f"Xvfb did not start: {err}")
        self.display = f":{int(number)}"
        return self

    def _stop(self) -> str:
        proc, self._proc = self._proc, None
        if proc is None:
            return ""
        if proc.poll() is None:
            proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        return err.decode(errors="replace")[-2000:]

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop()

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run an X client (``xdotool ...``) on this display."""
        env = {**os.environ, "DISPLAY": self.display}
        return subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=20)


def find_window(x: Xvfb, title: str) -> int | None:
    """The id of a window named exactly ``title``, or None."""
    result = x.run("xdotool", "search", "--name", f"^{title}$")
    ids = result.stdout.split()
    return int(ids[0]) if ids else None


def press_key(x: Xvfb, window: int, key: str) -> None:
    """Focus ``window`` and type ``key`` as a user would (XTEST, not a synthetic event)."""
    for args in (["windowfocus", "--sync", str(window)], ["key", key]):
        result = x.run("xdotool", *args)
        assert result.returncode == 0, result.stderr


class _ClientMessage(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p), ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
        ("format", ctypes.c_int), ("data", ctypes.c_long * 5),
    ]  # fmt: skip


class _XEvent(ctypes.Union):
    _fields_ = [("xclient", _ClientMessage), ("pad", ctypes.c_long * 24)]


_CLIENT_MESSAGE = 33


def close_window(x: Xvfb, window: int) -> None:
    """Ask ``window`` to close as a window manager's close button does (``WM_DELETE_WINDOW``)."""
    lib = ctypes.CDLL(ctypes.util.find_library("X11"))
    lib.XOpenDisplay.restype = ctypes.c_void_p
    lib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    lib.XInternAtom.restype = ctypes.c_ulong
    lib.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    lib.XFlush.argtypes = [ctypes.c_void_p]
    lib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    conn = lib.XOpenDisplay(x.display.encode())
    assert conn, f"cannot connect to {x.display}"
    try:
        event = _XEvent()
        event.xclient.type = _CLIENT_MESSAGE
        event.xclient.window = window
        event.xclient.message_type = lib.XInternAtom(conn, b"WM_PROTOCOLS", 0)
        event.xclient.format = 32
        event.xclient.data[0] = lib.XInternAtom(conn, b"WM_DELETE_WINDOW", 0)
        assert lib.XSendEvent(conn, window, 0, 0, ctypes.byref(event)), "XSendEvent failed"
        lib.XFlush(conn)
    finally:
        with contextlib.suppress(Exception):
            lib.XCloseDisplay(conn)
