"""The drill's target site as a process of its own, to run inside a network namespace
(tests/drill/netns.py): ``python -m tests.drill.nssite --host 0.0.0.0 --port P``.

It serves what :class:`tests.drill.servers.DrillSite` serves, listening on every address of its
namespace, and ``GET /drill/mode?set=<mode>`` switches the ``/page/N`` routes (``ok``, ``fail``,
``hang``, ``fail_and_hang``, ``bogus_charset``)."""

from __future__ import annotations

import argparse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from tests.drill.servers import SITE_MODES, DrillSite


class NamespaceSite(DrillSite):
    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        handler = self.server.RequestHandlerClass
        self.server.server_close()
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.port = port

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlparse(h.path)
        if url.path == "/drill/mode":
            mode = parse_qs(url.query).get("set", [""])[0]
            if mode in SITE_MODES:
                self.mode = mode
                self._send(h, 200, mode.encode())
            else:
                self._send(h, 400, b"unknown mode")
            return
        super()._handle(h)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.drill.nssite")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    NamespaceSite(args.host, args.port).server.serve_forever()


if __name__ == "__main__":
    main()
