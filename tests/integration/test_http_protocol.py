"""The API's HTTP protocol (app/http_protocol.py) on a real uvicorn server on loopback: request
heads are bounded, bodies and kept-alive connections are not affected."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from app.http_protocol import MAX_HEAD_BYTES, BoundedHttpToolsProtocol
from tests.support.net import free_port, reachable
from tests.support.wait import eventually_blocking


async def echo_size(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the number of body bytes it read."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    port = free_port()
    config = uvicorn.Config(
        echo_size, host="127.0.0.1", port=port, http=BoundedHttpToolsProtocol, log_config=None
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    eventually_blocking(lambda: reachable("127.0.0.1", port), 10, what="uvicorn listening")
    yield port
    srv.should_exit = True
    thread.join(10)


def _exchange(port: int, *parts: bytes, responses: int = 1) -> bytes:
    """Send ``parts`` on one connection; read until ``responses`` answers came or it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for part in parts:
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server closed the connection: read what it answered
        got = b""
        while got.count(b"HTTP/1.1 ") < responses or not _complete(got):
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
        return got


def _complete(got: bytes) -> bool:
    head, sep, body = got.rpartition(b"\r\n\r\n")
    if not sep:
        return False
    length = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
    return bool(length) and len(body) >= int(length[-1].split(b":")[1])


def test_ordinary_headers_pass(server: int) -> None:
    head = b"GET / HTTP/1.1\r\nhost: x\r\nx-pad: " + b"a" * 8192 + b"\r\n\r\n"
    assert _exchange(server, head).startswith(b"HTTP/1.1 200 ")


def test_a_head_over_the_bound_is_refused_and_the_connection_closed(server: int) -> None:
    start = b"GET / HTTP/1.1\r\nhost: x\r\n"
    padding = [b"x-pad-%d: %s\r\n" % (i, b"a" * 4000) for i in range(MAX_HEAD_BYTES // 4000 * 3)]
    got = _exchange(server, start, *padding)
    assert got.startswith(b"HTTP/1.1 431 "), got[:200]
    assert b"connection: close" in got


def test_one_endless_header_line_is_refused(server: int) -> None:
    chunks = [b"GET / HTTP/1.1\r\nhost: x\r\nx-long: "] + [b"a" * 8192] * 40
    assert _exchange(server, *chunks).startswith(b"HTTP/1.1 431 ")


def test_large_bodies_and_kept_alive_requests_are_not_counted(server: int) -> None:
    size = 4 * MAX_HEAD_BYTES
    post = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % size + b"b" * size
    get = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
    got = _exchange(server, post + get, get, responses=3)
    assert got.count(b"HTTP/1.1 200 ") == 3, got[:300]
    assert got.split(b"\r\n\r\n")[1].startswith(str(size).encode())
