"""uvicorn's httptools protocol with a bound on a request's head (request line and headers).

``uvicorn[standard]`` parses HTTP with httptools, which is several times cheaper per request
than h11 (docs/performance.md), but uvicorn sets it no limit: it buffers a request's headers for
as long as a client keeps sending them, so one connection streaming headers grows the API's
memory without end (h11 stops at 16 KiB). This protocol counts the bytes received while a
request's head is incomplete and answers ``431 Request Header Fields Too Large`` and closes the
connection once they pass ``MAX_HEAD_BYTES``. Bodies are not counted (``TRAWL_MAX_BODY_BYTES``
bounds those, app/api/limits.py); memory stays under the bound plus two reads.

``python -m app.serve`` runs it; ``uvicorn --factory`` does not (pass ``--http h11`` there, or
put a proxy that bounds headers in front).
"""

from __future__ import annotations

import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["MAX_HEAD_BYTES", "BoundedHttpToolsProtocol"]

#: request line + headers; browsers and clients send a few KiB, nginx allows 4 x 8 KiB
MAX_HEAD_BYTES = 64 * 1024

log = logging.getLogger(__name__)

_MESSAGE = b"Request header fields too large\n"
_RESPONSE = b"".join(
    [
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: " + str(len(_MESSAGE)).encode("ascii") + b"\r\n",
        b"connection: close\r\n",
        b"\r\n",
        _MESSAGE,
    ]
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that refuses a request head over ``MAX_HEAD_BYTES``."""

    max_head_bytes = MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # a connection starts by waiting for a request head
        self._head_bytes = 0
        self._boundary_in_read = False

    def data_received(self, data: bytes) -> None:
        self._boundary_in_read = False
        super().data_received(data)
        # A read inside one head counts whole. A read where a head or a message ended is not
        # counted: what it carried past the boundary (a body, or the start of a pipelined
        # request) is not known, and one read is bounded by the transport anyway.
        if self._boundary_in_read or not self._in_head or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > self.max_head_bytes:
            self._refuse()

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes, self._boundary_in_read = False, 0, True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # the next bytes on a kept-alive connection start a new head
        self._in_head, self._head_bytes, self._boundary_in_read = True, 0, True

    def _refuse(self) -> None:
        log.warning(
            "request head over the limit: connection closed",
            extra={"trawl.http.head_limit_bytes": self.max_head_bytes},
        )
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_RESPONSE)
        # else a response is still being written on this connection: just close it
        self.transport.close()
