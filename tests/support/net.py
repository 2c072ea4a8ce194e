"""Loopback ports for tests: a free one to listen on, a closed one to fail against."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nobody listens on right now (bind to it soon: another process may take it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def closed_port() -> int:
    """A loopback port with no listener: connecting to it is refused at once."""
    return free_port()


def reachable(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
