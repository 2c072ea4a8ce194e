"""A fast loopback target site for the bench: ``python -m tests.bench.site --port N``.

Listens on 127.0.0.1 and on 127.0.1.1 … 127.0.1.K (one politeness domain each: the worker's
domain is host and port), all on the same port, HTTP/1.1 with keep-alive, so that the site is
never what limits the worker. Routes:

* ``/p/<n>``: a product list of ``ITEMS`` items (name, price, link), the same page the worker
  and the Scrapy reference extract;
* ``/status/<code>/<anything>``: that status with a short body (error paths of the attack);
* anything else: 404.
"""

from __future__ import annotations

import argparse
import asyncio
from functools import lru_cache

ITEMS = 200
DOMAIN_NET = "127.0.1."

#: The fields both the worker's jobs and the Scrapy spider extract (CSS, parsel underneath).
FIELDS: dict[str, dict[str, object]] = {
    "title": {"selector": "title"},
    "names": {"selector": "li.item span.name", "many": True},
    "prices": {"selector": "li.item span.price", "many": True},
    "links": {"selector": "li.item a", "output": "attribute", "attribute": "href", "many": True},
}


def domain_hosts(k: int) -> list[str]:
    return [f"{DOMAIN_NET}{i}" for i in range(1, k + 1)]


@lru_cache(maxsize=4096)
def page(n: int) -> bytes:
    items = "".join(
        f"<li class='item' data-sku='s{n}-{i}'><span class='name'>Item {n}-{i}</span>"
        f"<span class='price'>{i}.{n % 100:02d}</span><a href='/p/{(n + i) % 100000}'>more</a></li>"
        for i in range(ITEMS)
    )
    return (
        f"<!doctype html><html><head><title>Page {n}</title></head><body>"
        f"<h1>Catalogue page {n}</h1><ul class='items'>{items}</ul></body></html>"
    ).encode()


def _response(code: int, body: bytes) -> bytes:
    reason = {200: "OK", 404: "Not Found"}.get(code, "Status")
    head = (
        f"HTTP/1.1 {code} {reason}\r\ncontent-type: text/html; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def respond(path: str) -> bytes:
    parts = path.split("?", 1)[0].split("/")
    if len(parts) >= 3 and parts[1] == "p" and parts[2].isdigit():
        return _response(200, page(int(parts[2])))
    if len(parts) >= 3 and parts[1] == "status" and parts[2].isdigit():
        code = int(parts[2])
        if 200 <= code <= 599:
            return _response(code, f"<html>status {code}: {path}</html>".encode())
    return _response(404, b"<html>not found</html>")


class Http(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self.transport.close()
                return
            head, self.buf = self.buf[:end], self.buf[end + 4 :]
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split(" ")
            path = parts[1] if len(parts) >= 2 else "/"
            self.transport.write(respond(path))
            if b"connection: close" in head.lower():
                self.transport.close()
                return


async def run(port: int, domains: int) -> None:
    loop = asyncio.get_running_loop()
    hosts = ["127.0.0.1", *domain_hosts(domains)]
    servers = [await loop.create_server(Http, host, port, backlog=1024) for host in hosts]
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.site")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--domains", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(run(args.port, args.domains))


if __name__ == "__main__":
    main()
