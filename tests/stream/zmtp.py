"""A raw ZMTP 3.0 peer (NULL mechanism) for sending what a well-behaved libzmq peer never would."""

from __future__ import annotations

import socket
import struct
import time


def _greeting() -> bytes:
    mechanism = b"NULL".ljust(20, b"\0")
    return b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + mechanism + b"\x00" + b"\0" * 31


def _ready(socket_type: bytes) -> bytes:
    name = b"Socket-Type"
    body = b"\x05READY" + bytes([len(name)]) + name + struct.pack(">I", len(socket_type)) + socket_type
    return b"\x04" + bytes([len(body)]) + body


def connect(address: str, socket_type: bytes, timeout_s: float = 5.0) -> socket.socket:
    """Connect to a ``tcp://127.0.0.1:PORT`` or ``ipc://PATH`` ZeroMQ socket and finish the handshake."""
    if address.startswith("tcp://"):
        host, _, port = address[len("tcp://") :].rpartition(":")
        sock = socket.create_connection((host, int(port)), timeout=timeout_s)
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout_s)
        sock.connect(address[len("ipc://") :])
    sock.sendall(_greeting() + _ready(socket_type))
    need = 64  # the peer's greeting, then its READY command
    got = b""
    while len(got) < need + 2:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"{address} closed the connection during the handshake")
        got += chunk
    return sock


def declare_huge_frame(sock: socket.socket, size: int, payload_bytes: int, timeout_s: float = 5.0) -> tuple[int, bool]:
    """Declare one ``size``-byte message frame, then stream up to ``payload_bytes`` of it.

    Returns:
        ``(bytes_accepted, closed)``: how much of the payload the peer took before the
        deadline, and whether it closed the connection (what a capped socket does).
    """
    sock.sendall(b"\x02" + struct.pack(">Q", size))
    chunk = b"\0" * (1 << 16)
    sent = 0
    deadline = time.monotonic() + timeout_s
    sock.settimeout(0.5)
    while sent < payload_bytes and time.monotonic() < deadline:
        try:
            sent += sock.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            return sent, True
        except TimeoutError:
            break  # the peer stopped reading: see below whether it also closed
    sock.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return sent, True
    except ConnectionResetError:
        return sent, True
    except TimeoutError:
        return sent, False
