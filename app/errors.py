"""The service's error base: every domain error maps to an RFC 9457 problem."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """A failure the client can act on. Routes turn it into ``application/problem+json``."""

    status: int = 400
    title: str = "Bad request"
    type_slug: str = "bad-request"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions
