"""The loopback servers a lane needs besides tests/support's: a target site whose pages can be
switched to a fault, and a webhook receiver that can go down (its port closed) and come back."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from tests.support.target_site import TargetSite, page

#: What ``/page/N`` answers, by mode: the scenarios switch it.
SITE_MODES = ("ok", "fail", "hang", "fail_and_hang", "bogus_charset")


class DrillSite(TargetSite):
    """tests/support's TargetSite, plus a switch for its ``/page/N`` routes (the demo load's
    pages): ``fail`` answers 503, ``hang`` answers after 60 s (a timeout for any job),
    ``fail_and_hang`` does both alternately, ``bogus_charset`` declares a charset no codec
    knows. ``/canary/N`` (the canary's known page) always works."""

    def __init__(self) -> None:
        super().__init__()
        # a client that gives up (a timeout) resets its connection: not worth a traceback
        self.server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.mode = "ok"
        self._n = 0

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        if path.startswith("/canary/"):
            self._send(h, 200, page(path.rsplit("/", 1)[-1]))
            return
        if path.startswith("/page/") and self.mode != "ok":
            with self.lock:
                self._n += 1
                n = self._n
                self.hits[path] += 1
            mode = self.mode
            if mode == "fail_and_hang":
                mode = "fail" if n % 2 else "hang"
            if mode == "fail":
                self._send(h, 503, b"<html>service unavailable</html>")
            elif mode == "hang":
                time.sleep(60)
                with contextlib.suppress(OSError):
                    self._send(h, 200, page("late"))
            elif mode == "bogus_charset":
                body = page(path.rsplit("/", 1)[-1])
                h.send_response(200)
                h.send_header("content-type", "text/html; charset=x-drill-unknown")
                h.send_header("content-length", str(len(body)))
                h.end_headers()
                h.wfile.write(body)
            return
        super()._handle(h)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gave up (its timeout) resets the connection: not worth a traceback."""


class WebhookSink:
    """A client's webhook endpoint on a fixed loopback port: ``down()`` closes the port
    (connections refused), ``up()`` listens again. Counts deliveries by ``webhook-id``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: Counter[str] = Counter()
        self.events: dict[str, str] = {}
        self.lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/hooks/drill") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def up(self) -> None:
        if self._server is not None:
            return
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            headers_seen: ClassVar[list[str]] = []

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                wid = self.headers.get("webhook-id", "?")
                with sink.lock:
                    sink.received[wid] += 1
                    sink.events[wid] = body[:200].decode(errors="replace")
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def down(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def duplicates(self) -> int:
        with self.lock:
            return sum(n - 1 for n in self.received.values() if n > 1)
