"""Create CurveZMQ key pairs for ``--publish`` and remote links.

    python -m stream.keys KEYS_DIR NAME [NAME ...]

writes ``KEYS_DIR/NAME.key`` (public: give it to peers) and ``KEYS_DIR/NAME.key_secret``
(the key pair: keep it private, mode 0600) for each NAME, in pyzmq's certificate format
(``zmq.auth.create_certificates``). Existing files are never overwritten. Typical use::

    python -m stream.keys keys server alice
    mkdir allowed && cp keys/alice.key allowed/
    python -m stream.rtsp ... --publish tcp://0.0.0.0:5560 \\
        --curve-secret-key keys/server.key_secret --curve-allow allowed/
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import zmq.auth

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def create_keys(folder: Path, name: str) -> tuple[Path, Path]:
    """Create ``folder/name.key`` and ``folder/name.key_secret``; returns both paths.

    Raises:
        ValueError: If the name is not a plain file name.
        FileExistsError: If either file exists already.
    """
    if not NAME_PATTERN.match(name):
        raise ValueError(f"key name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise FileExistsError(f"{path} exists already; choose another name or remove it")
    folder.mkdir(parents=True, exist_ok=True)
    old = os.umask(0o077)  # the secret file is private from the moment it exists
    try:
        made_public, made_secret = zmq.auth.create_certificates(folder, name)
    finally:
        os.umask(old)
    os.chmod(made_public, 0o644)
    return Path(made_public), Path(made_secret)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.keys", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where to write the key files")
    parser.add_argument("names", nargs="+", help="one key pair per name, e.g. server alice")
    args = parser.parse_args(argv)
    for name in args.names:
        try:
            public, secret = create_keys(args.folder, name)
        except (ValueError, OSError) as exc:
            print(f"{parser.prog}: error: {exc}", file=sys.stderr)
            return 2
        print(f"{name}: public {public}  secret {secret}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
