"""Checks on the URLs a client submits (targets and webhooks)."""

from __future__ import annotations

import httpx


class UrlInvalid(ValueError):
    pass


def check_url(raw: str, *, max_length: int) -> httpx.URL:
    """A well-formed absolute http(s) URL with a host, or ``UrlInvalid`` saying why."""
    if len(raw) > max_length:
        raise UrlInvalid(f"longer than {max_length} characters")
    if any(c.isspace() or ord(c) < 32 for c in raw):
        raise UrlInvalid("contains whitespace or control characters")
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, ValueError) as exc:
        raise UrlInvalid(f"not a valid URL ({exc})") from None
    if url.scheme not in ("http", "https"):
        raise UrlInvalid("scheme must be http or https")
    if not url.host:
        raise UrlInvalid("has no host")
    return url


def domain_of(url: httpx.URL) -> str:
    """The politeness key: the lower-cased host (and port when not the default)."""
    host = url.host.lower().rstrip(".")
    return f"{host}:{url.port}" if url.port else host
