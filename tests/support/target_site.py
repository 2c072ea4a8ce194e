"""A real HTTP target site on loopback, with the pages scraping meets in the wild."""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def page(n: str) -> bytes:
    return (
        f"<html><head><title>Page {n}</title></head><body>"
        f"<h1 class='title'>Title {n}</h1>"
        f"<ul><li class='price' data-sku='a{n}'>1.{n}0</li>"
        f"<li class='price' data-sku='b{n}'>2.{n}0</li></ul>"
        f"<a href='/page/next'>next</a></body></html>"
    ).encode()


class TargetSite:
    """Routes: /page/N, /slow?delay=S, /status/CODE, /ratelimit?retry_after=S,
    /flaky/KEY?fail=N&code=C, /redirect?to=PATH, /redirect-loop, /large?bytes=N, /captcha,
    /hang (accepts and never answers within any sane timeout), /ban-some?names=a,b (403 when the
    ``X-Test-Proxy`` header of the test forward proxy names a banned proxy), /whoami (a page
    titled with that proxy name)."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.hit_times: dict[str, list[float]] = {}
        self.headers_seen: list[dict[str, str]] = []
        self.lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                site._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def start(self) -> TargetSite:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        code: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        h.send_response(code)
        h.send_header("content-type", "text/html; charset=utf-8")
        h.send_header("content-length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parsed = urlparse(h.path)
        q = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        path = parsed.path
        with self.lock:
            self.hits[path] += 1
            self.hit_times.setdefault(path, []).append(time.monotonic())
            count = self.hits[path]
            self.headers_seen.append({k.lower(): v for k, v in h.headers.items()})
        if path.startswith("/page/"):
            self._send(h, 200, page(path.rsplit("/", 1)[-1]))
        elif path == "/slow":
            time.sleep(float(q.get("delay", "1")))
            self._send(h, 200, page("slow"))
        elif path.startswith("/status/"):
            self._send(h, int(path.rsplit("/", 1)[-1]), b"<html>status</html>")
        elif path == "/ratelimit":
            self._send(h, 429, b"slow down", {"retry-after": q.get("retry_after", "1")})
        elif path.startswith("/flaky/"):
            if count <= int(q.get("fail", "2")):
                extra = {"retry-after": q["retry_after"]} if "retry_after" in q else None
                self._send(h, int(q.get("code", "503")), b"try later", extra)
            else:
                self._send(h, 200, page("flaky"))
        elif path == "/redirect":
            self._send(h, 302, b"", {"location": q.get("to", "/page/1")})
        elif path == "/redirect-loop":
            self._send(h, 302, b"", {"location": "/redirect-loop"})
        elif path == "/large":
            self._send(h, 200, b"<html>" + b"x" * int(q.get("bytes", "100000")) + b"</html>")
        elif path in ("/ban-some", "/whoami"):
            self._proxy_aware(h, path, q)
        elif path == "/captcha":
            self._send(h, 200, b"<html><div class='g-recaptcha'></div></html>")
        else:
            self._send(h, 404, b"<html>not found</html>")

    def _proxy_aware(self, h: BaseHTTPRequestHandler, path: str, q: dict[str, str]) -> None:
        via = h.headers.get("x-test-proxy", "direct")
        if path == "/ban-some" and via in set(q.get("names", "").split(",")):
            self._send(h, 403, b"<html>banned</html>")
        else:
            self._send(h, 200, page(via))
