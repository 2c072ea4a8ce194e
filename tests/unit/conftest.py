"""Unit tests do no I/O: no network, no subprocess, no database, no Redis (reading the
repository's own files is fine). This guard makes a test that tries fail at once."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest


def _refuse(what: str) -> Any:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError(
            f"unit tests do no I/O ({what}); this test belongs in tests/integration"
        )

    return refuse


@pytest.fixture(autouse=True)
def no_io(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(socket.socket, "connect", _refuse("socket connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse("socket connect"))
    monkeypatch.setattr(socket.socket, "bind", _refuse("socket bind"))
    monkeypatch.setattr(socket, "getaddrinfo", _refuse("DNS"))
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("subprocess"))
    yield
