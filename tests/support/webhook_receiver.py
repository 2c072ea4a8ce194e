"""A real webhook receiver on loopback. Routes (POST): /ok, /fail (500), /slow?delay=S,
/redirect (302 to /ok), /gone (410), /ratelimit (429 Retry-After: 1). ``verify`` checks what
it received against the Standard Webhooks specification, independently of the app's code."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                receiver._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def hits(self, prefix: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path.startswith(prefix)]

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parsed = urlparse(h.path)
        q = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        body = h.rfile.read(int(h.headers.get("content-length", "0")))
        with self.lock:
            self.received.append(
                Received(h.path, {k.lower(): v for k, v in h.headers.items()}, body)
            )
        path = parsed.path
        code, headers = 200, {}
        if path.startswith("/fail"):
            code = 500
        elif path.startswith("/slow"):
            time.sleep(float(q.get("delay", "2")))
        elif path.startswith("/redirect"):
            code, headers = 302, {"location": "/ok"}
        elif path.startswith("/gone"):
            code = 410
        elif path.startswith("/ratelimit"):
            code, headers = 429, {"retry-after": "1"}
        h.send_response(code)
        h.send_header("content-length", "2")
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        with contextlib.suppress(OSError):
            h.wfile.write(b"ok")


def verify(secret: str, received: Received, tolerance_s: int = 300) -> dict[str, Any]:
    """An independent verifier, written from the Standard Webhooks specification: raise unless
    one of the ``v1`` signatures matches; return the parsed body."""
    msg_id = received.headers["webhook-id"]
    timestamp = received.headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance_s:
        raise ValueError("timestamp outside tolerance")
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{msg_id}.{timestamp}.".encode() + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in received.headers["webhook-signature"].split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return dict(json.loads(received.body))
    raise ValueError("no valid signature")
