"""Who may reach the ZeroMQ edges: loopback by default, CurveZMQ or an explicit --insecure beyond."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from stream.errors import ConfigError
from stream.keys import create_keys
from stream.remote import RemoteSink, RemoteSource
from stream.security import CurveClient, CurveServer, check_exposure, curve_server_from_args, is_exposed
from stream.sinks import ZmqPublisherSink

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """Key pairs for a server, an allowed client (alice) and an unknown one (mallory)."""
    folder = tmp_path / "keys"
    paths: dict[str, Path] = {}
    for name in ("server", "alice", "mallory"):
        public, secret = create_keys(folder, name)
        paths[public.name], paths[secret.name] = public, secret
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "alice.key").write_bytes(paths["alice.key"].read_bytes())
    paths["allowed"] = allowed
    return paths


@pytest.mark.parametrize(
    ("address", "exposed"),
    [
        ("tcp://127.0.0.1:5560", False),
        ("tcp://127.0.0.2:5560", False),
        ("tcp://localhost:5560", False),
        ("tcp://[::1]:5560", False),
        ("tcp://lo:5560", False),
        ("ipc:///tmp/results", False),
        ("inproc://results", False),
        ("tcp://*:5560", True),
        ("tcp://0.0.0.0:5560", True),
        ("tcp://[::]:5560", True),
        ("tcp://192.168.1.20:5560", True),
        ("tcp://eth0:5560", True),
        ("tcp://camera-host.example:5560", True),
        ("tcp://127.0.0.1:6000;192.168.1.20:5560", True),
        ("ws://127.0.0.1:5560", True),
        ("epgm://eth0;239.192.1.1:5555", True),
    ],
)
def test_which_addresses_reach_other_machines(address: str, exposed: bool) -> None:
    assert is_exposed(address) is exposed
    if exposed:
        with pytest.raises(ConfigError, match=r"reachable from other machines without authentication.*--insecure"):
            check_exposure(address, what="--publish", curve=None, insecure=False)
        check_exposure(address, what="--publish", curve=None, insecure=True)  # the explicit opt-out
    else:
        check_exposure(address, what="--publish", curve=None, insecure=False)


def test_every_edge_refuses_an_exposed_address_without_curve(keys: dict[str, Path]) -> None:
    for make in (
        lambda **kw: ZmqPublisherSink("tcp://*:5560", **kw),
        lambda **kw: RemoteSource("tcp://0.0.0.0:5555", **kw),
        lambda **kw: RemoteSink("tcp://192.168.1.20:5555", **kw),
    ):
        with pytest.raises(ConfigError, match="reachable from other machines"):
            make()
        make(insecure=True)  # built, not bound: nothing listens beyond loopback in tests
    ZmqPublisherSink("tcp://*:5560", curve=CurveServer(keys["server.key_secret"], keys["allowed"]))
    RemoteSink("tcp://192.168.1.20:5555", curve=CurveClient(keys["alice.key_secret"], keys["server.key"]))


def test_rtsp_publish_on_all_interfaces_is_refused_unless_insecure(keys: dict[str, Path]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "stream.rtsp", "--config", "no-such-config.py", "--source", "no-such.mp4"]
    refused = subprocess.run(
        [*cmd, "--publish", "tcp://*:5560"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "--publish tcp://*:5560: reachable from other machines" in lines[0], refused.stderr

    from pipelines.graphs import ModelParams, RtspParams, rtsp_publisher
    from pipelines.recognition import RecognitionParams
    from stream.rtsp import build_parser

    def publisher(*flags: str) -> ZmqPublisherSink | None:
        a = build_parser().parse_args(["--config", "c.py", *flags])
        params = RtspParams(
            model=ModelParams(Path("c.py")), predict=RecognitionParams(), publish=a.publish,
            curve_secret_key=a.curve_secret_key, curve_allow=a.curve_allow, insecure=a.insecure,
        )  # fmt: skip
        return rtsp_publisher(params)

    insecure = publisher("--publish", "tcp://*:5560", "--insecure")  # built, not bound
    assert insecure is not None and insecure.curve is None
    secret, allowed = str(keys["server.key_secret"]), str(keys["allowed"])
    curve = publisher("--publish", "tcp://0.0.0.0:5560", "--curve-secret-key", secret, "--curve-allow", allowed)
    assert curve is not None and curve.curve == CurveServer(Path(secret), Path(allowed))
    assert publisher() is None
    with pytest.raises(ConfigError, match="needs both --curve-secret-key FILE and --curve-allow DIR"):
        publisher("--publish", "tcp://127.0.0.1:5560", "--curve-allow", allowed)
    with pytest.raises(ConfigError, match="apply to --publish; add --publish"):
        publisher("--insecure")


def test_curve_settings_are_checked_up_front(keys: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such file; create keys with python -m stream\.keys"):
        CurveServer(tmp_path / "missing.key_secret", keys["allowed"])
    with pytest.raises(ConfigError, match=r"holds no secret key; pass the NAME\.key_secret file"):
        CurveServer(keys["server.key"], keys["allowed"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"holds no \*\.key public key"):
        CurveServer(keys["server.key_secret"], empty)
    with pytest.raises(ConfigError, match="needs both"):
        curve_server_from_args(keys["server.key_secret"], None)
    assert curve_server_from_args(None, None) is None


def test_the_keys_command_writes_a_private_secret_and_never_overwrites(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "stream.keys", str(tmp_path / "k"), "server", "alice"]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert first.returncode == 0, first.stderr
    secret = tmp_path / "k" / "alice.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert b"secret-key" in secret.read_bytes() and b"secret-key" not in (tmp_path / "k" / "alice.key").read_bytes()
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert again.returncode == 2 and "exists already" in again.stderr


# -- CurveZMQ on the publisher ---------------------------------------------------------------------


def _subscriber(ctx: zmq.Context, endpoint: str, secret: Path | None, server: Path | None) -> zmq.Socket:
    import zmq.auth

    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    if secret is not None and server is not None:
        public, secret_key = zmq.auth.load_certificate(secret)
        sub.curve_publickey, sub.curve_secretkey = public, secret_key
        sub.curve_serverkey = zmq.auth.load_certificate(server)[0]
    sub.setsockopt(zmq.SUBSCRIBE, b"results")
    sub.connect(endpoint)
    return sub


def test_curve_publisher_reaches_only_allowed_subscribers(keys: dict[str, Path]) -> None:
    sink = ZmqPublisherSink("tcp://127.0.0.1:*", curve=CurveServer(keys["server.key_secret"], keys["allowed"]))
    sink.setup()
    ctx = zmq.Context()
    assert sink.endpoint is not None
    alice = _subscriber(ctx, sink.endpoint, keys["alice.key_secret"], keys["server.key"])
    mallory = _subscriber(ctx, sink.endpoint, keys["mallory.key_secret"], keys["server.key"])
    plain = _subscriber(ctx, sink.endpoint, None, None)
    try:
        deadline = time.monotonic() + 10
        received = 0
        while received < 20:  # publish until alice has 20 records (slow joiner)
            assert time.monotonic() < deadline, f"the allowed subscriber got {received} records"
            sink.publish({"type": "event", "n": received})
            if alice.poll(20):
                topic, payload = alice.recv_multipart()
                assert topic == b"results" and json.loads(payload)["type"] == "event"
                received += 1
        for _ in range(20):  # while alice keeps receiving, the others get nothing
            sink.publish({"type": "event"})
        assert alice.poll(2000)
        assert not mallory.poll(0) and not plain.poll(0)
    finally:
        for sock in (alice, mallory, plain):
            sock.close()
        ctx.term()
        sink.close()
    assert sink.sent >= 40
