"""A small real HTTP forward proxy on loopback (absolute-form requests and CONNECT tunnels).

Modes: ``ok`` forwards (adding ``X-Test-Proxy: <name>`` to plain-HTTP requests), ``ban``
answers 403 to everything, ``captcha`` answers a 200 challenge page, ``hang`` accepts and never
answers. With ``auth=(user, password)`` a request without the right ``Proxy-Authorization``
gets 407. It runs its own event loop in a thread, like ``TargetSite``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from collections import Counter
from urllib.parse import urlsplit

CAPTCHA = b"<html><div class='g-recaptcha'></div></html>"


class ForwardProxy:
    def __init__(self, name: str, mode: str = "ok", auth: tuple[str, str] | None = None) -> None:
        self.name = name
        self.mode = mode
        self.auth = auth
        self.requests: Counter[str] = Counter()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.Server | None = None

    def url(self, user: str | None = None, password: str | None = None) -> str:
        auth = f"{user}:{password}@" if user is not None else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    def start(self) -> ForwardProxy:
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            current = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = [tuple(x.split(":", 1)) for x in lines[1:] if ":" in x]
                hmap = {k.strip().lower(): v.strip() for k, v in headers}
                self.requests[target] += 1
                if self.mode == "hang":
                    await asyncio.sleep(3600)
                if not self._authorized(hmap.get("proxy-authorization")):
                    await self._answer(writer, 407, b"auth", {"proxy-authenticate": "Basic"})
                    continue
                if self.mode == "ban":
                    await self._answer(writer, 403, b"<html>banned</html>")
                    continue
                if method == "CONNECT":
                    await self._tunnel(target, reader, writer)
                    return
                if self.mode == "captcha":
                    await self._answer(writer, 200, CAPTCHA)
                    continue
                await self._forward(method, target, headers, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _authorized(self, value: str | None) -> bool:
        if self.auth is None:
            return True
        expected = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
        return value == f"Basic {expected}"

    async def _answer(
        self,
        writer: asyncio.StreamWriter,
        code: int,
        body: bytes,
        extra: dict[str, str] | None = None,
    ) -> None:
        head = f"HTTP/1.1 {code} X\r\ncontent-length: {len(body)}\r\ncontent-type: text/html\r\n"
        for k, v in (extra or {}).items():
            head += f"{k}: {v}\r\n"
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()

    async def _forward(
        self, method: str, target: str, headers: list[tuple[str, ...]], writer: asyncio.StreamWriter
    ) -> None:
        parts = urlsplit(target)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            up_r, up_w = await asyncio.open_connection(parts.hostname, parts.port or 80)
        except OSError:
            await self._answer(writer, 502, b"bad gateway")
            return
        out = f"{method} {path} HTTP/1.1\r\n"
        for k, v in headers:
            if k.strip().lower() in ("proxy-authorization", "proxy-connection", "connection"):
                continue
            out += f"{k.strip()}: {v.strip()}\r\n"
        out += f"X-Test-Proxy: {self.name}\r\nConnection: close\r\n\r\n"
        up_w.write(out.encode("latin-1"))
        await up_w.drain()
        raw = await up_r.read()
        up_w.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        status_line, *rest = head.decode("latin-1").split("\r\n")
        kept = [
            line
            for line in rest
            if line.split(":", 1)[0].strip().lower()
            not in ("connection", "content-length", "transfer-encoding")
        ]
        reply = "\r\n".join([status_line, *kept, f"content-length: {len(body)}"]) + "\r\n\r\n"
        writer.write(reply.encode("latin-1") + body)
        await writer.drain()

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, _, port = target.rpartition(":")
        try:
            up_r, up_w = await asyncio.open_connection(host.strip("[]"), int(port))
        except OSError:
            await self._answer(writer, 502, b"bad gateway")
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
