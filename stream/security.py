"""Who may talk to the ZeroMQ edges: loopback by default, CurveZMQ for anything wider.

The sockets that face other programs (``--publish``, :mod:`stream.remote`) are where a
stranger can reach the pipeline. The rules, in one place (see ``docs/security.md``):

* an ``ipc://`` or ``inproc://`` address, or ``tcp://`` on a loopback host
  (``127.0.0.1``, ``localhost``, ``::1``), is allowed as is;
* ``tcp://*:N``, ``tcp://0.0.0.0:N`` or any other host is refused by
  :func:`check_exposure` unless CurveZMQ is configured (:class:`CurveServer` /
  :class:`CurveClient`: encryption plus an allow-list of client public keys checked by
  ZAP) or the caller explicitly opts out with ``insecure=True`` (CLI: ``--insecure``).

Keys are pyzmq's certificate files (``zmq.auth.create_certificates``): ``NAME.key``
holds a public key, ``NAME.key_secret`` the key pair. Create them with::

    python -m stream.keys KEYS_DIR server      # KEYS_DIR/server.key + server.key_secret
    python -m stream.keys KEYS_DIR alice       # a client; copy alice.key into the server's allow folder
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from stream.errors import ConfigError

log = logging.getLogger(__name__)

#: Hosts in a ``tcp://`` address that only this machine can reach.
LOOPBACK_HOSTS = frozenset({"localhost", "lo"})
KEYS_HINT = "create keys with python -m stream.keys DIR NAME (see docs/security.md)"


def tcp_host(address: str) -> str | None:
    """The host (or interface) of a ``tcp://`` address, ``None`` for other transports.

    Raises:
        ConfigError: If a ``tcp://`` address has no ``:PORT``.
    """
    if not address.startswith("tcp://"):
        return None
    rest = address[len("tcp://") :]
    if ";" in rest:  # "source;destination" form: the destination is what is reached
        rest = rest.split(";", 1)[1]
    host, sep, _port = rest.rpartition(":")
    if not sep:
        raise ConfigError(f"address {address!r}: expected tcp://HOST:PORT, e.g. tcp://127.0.0.1:5560")
    return host.strip("[]")


#: Transports that reach other machines (``tcp://`` is judged by its host).
NETWORK_TRANSPORTS = ("udp://", "pgm://", "epgm://", "norm://", "ws://", "wss://", "tipc://", "vmci://")


def is_exposed(address: str) -> bool:
    """True if other machines can reach ``address``: ``tcp://`` on a non-loopback host
    (``*``, ``0.0.0.0``, an interface or host name, a routable IP) or a network transport.
    ``ipc://``, ``inproc://`` and loopback ``tcp://`` are not; a malformed address is left
    to the bind or connect to reject."""
    if address.startswith(NETWORK_TRANSPORTS):
        return True
    host = tcp_host(address)
    if host is None:
        return False
    if host.lower() in LOOPBACK_HOSTS:
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name or a host name: reachable from elsewhere
        return True


def check_exposure(address: str, *, what: str, curve: CurveServer | CurveClient | None, insecure: bool) -> None:
    """Refuse a non-loopback address without CurveZMQ, unless ``insecure``.

    Args:
        address: The ZeroMQ address to bind or connect.
        what: What it is for, for the message (e.g. ``"--publish"``).
        curve: The CurveZMQ settings, if any.
        insecure: The user's explicit opt-out (``--insecure``).

    Raises:
        ConfigError: If the address reaches beyond this machine with neither.
    """
    if not is_exposed(address) or curve is not None:
        return
    if insecure:
        log.warning("%s on %s: no authentication, no encryption (--insecure)", what, address)
        return
    raise ConfigError(
        f"{what} {address}: reachable from other machines without authentication; bind tcp://127.0.0.1:PORT "
        "or an ipc:// path, configure CurveZMQ (--curve-secret-key FILE --curve-allow DIR), or pass --insecure "
        "to accept anyone (see docs/security.md)"
    )


def _load(path: Path, *, secret: bool) -> tuple[bytes, bytes | None]:
    import zmq.auth

    if not zmq.has("curve"):
        raise ConfigError(
            f"CurveZMQ: this libzmq ({zmq.zmq_version()}) was built without CURVE; install pyzmq's wheel from PyPI"
        )
    if not path.is_file():
        raise ConfigError(f"CurveZMQ key {path}: no such file; {KEYS_HINT}")
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"CurveZMQ key {path}: cannot read it ({exc}); {KEYS_HINT}") from exc
    if secret and secret_key is None:
        raise ConfigError(f"CurveZMQ key {path}: holds no secret key; pass the NAME.key_secret file; {KEYS_HINT}")
    return public, secret_key


@dataclass(frozen=True)
class CurveServer:
    """CurveZMQ for the side that accepts peers: its key pair and the public keys it admits.

    Args:
        secret_key_file: ``NAME.key_secret`` of this side.
        allow_dir: Folder of ``*.key`` public-key files; only clients holding one of those
            keys get through (ZAP, checked by pyzmq's ``ThreadAuthenticator``).

    Raises:
        ConfigError: If a file is missing or malformed, or the folder holds no public key.
    """

    secret_key_file: Path
    allow_dir: Path

    def __post_init__(self) -> None:
        import zmq.auth

        _load(Path(self.secret_key_file), secret=True)
        if not Path(self.allow_dir).is_dir():
            raise ConfigError(f"--curve-allow {self.allow_dir}: no such folder of client *.key files; {KEYS_HINT}")
        if not zmq.auth.load_certificates(self.allow_dir):
            raise ConfigError(f"--curve-allow {self.allow_dir}: holds no *.key public key; {KEYS_HINT}")

    def start(self, ctx: zmq.Context) -> Any:
        """Start the ZAP authenticator of ``ctx`` (one per context); returns it (call ``.stop()``)."""
        from zmq.auth.thread import ThreadAuthenticator

        auth = ThreadAuthenticator(ctx, log=logging.getLogger("stream.security.zap"))
        auth.start()
        auth.configure_curve(domain="*", location=str(self.allow_dir))
        return auth

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE server (before bind/connect)."""
        public, secret = _load(Path(self.secret_key_file), secret=True)
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_server = True


@dataclass(frozen=True)
class CurveClient:
    """CurveZMQ for the side that connects to a :class:`CurveServer`.

    Args:
        secret_key_file: ``NAME.key_secret`` of this client (its ``NAME.key`` must be in
            the server's allow folder).
        server_key_file: The server's public ``NAME.key``.

    Raises:
        ConfigError: If a file is missing or malformed.
    """

    secret_key_file: Path
    server_key_file: Path

    def __post_init__(self) -> None:
        _load(Path(self.secret_key_file), secret=True)
        _load(Path(self.server_key_file), secret=False)

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE client of the server (before bind/connect)."""
        public, secret = _load(Path(self.secret_key_file), secret=True)
        server, _ = _load(Path(self.server_key_file), secret=False)
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_serverkey = server


def curve_server_from_args(secret_key: str | Path | None, allow: str | Path | None) -> CurveServer | None:
    """``--curve-secret-key`` / ``--curve-allow`` -> :class:`CurveServer` (or None when neither is given).

    Raises:
        ConfigError: If only one is given, or the files are unusable.
    """
    if secret_key is None and allow is None:
        return None
    if secret_key is None or allow is None:
        raise ConfigError("CurveZMQ needs both --curve-secret-key FILE and --curve-allow DIR")
    return CurveServer(Path(secret_key), Path(allow))
