"""Fetching one URL with httpx: timeouts, a byte cap, and redirects followed by hand.

Redirects are followed here, not by httpx, so that every hop can be checked (scheme, and the
``guard`` hook that the SSRF policy plugs into) and counted.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from app.fetch.outcome import Outcome, Verdict, classify_status

UrlGuard = Callable[[httpx.URL], Awaitable[None]]
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class FetchRefused(Exception):
    """The guard refused a URL (for example a private address). Never retried."""


@dataclass(slots=True)
class FetchResult:
    verdict: Verdict
    final_url: str
    status_code: int | None = None
    body: bytes = b""
    encoding: str | None = None
    retry_after_s: float | None = None
    redirects: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def outcome(self) -> Outcome:
        return self.verdict.outcome

    def text(self) -> str:
        return self.body.decode(self.encoding or "utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    timeout_s: float
    max_bytes: int
    max_redirects: int
    headers: dict[str, str]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


async def _read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            return b"", True
        chunks.append(chunk)
    return b"".join(chunks), False


def _error_verdict(exc: Exception) -> Verdict:
    if isinstance(exc, httpx.ProxyError):
        return Verdict(Outcome.PROXY_ERROR, True, f"proxy error: {type(exc).__name__}")
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return Verdict(Outcome.TIMEOUT, True, f"timed out ({type(exc).__name__})")
    return Verdict(Outcome.CONNECTION_ERROR, True, f"connection failed: {type(exc).__name__}")


async def fetch(
    client: httpx.AsyncClient, url: str, policy: FetchPolicy, guard: UrlGuard | None = None
) -> FetchResult:
    """Fetch ``url``; never raises for network or HTTP failures: they are classified."""
    started = time.perf_counter()
    result = await _fetch(client, httpx.URL(url), policy, guard)
    result.duration_s = time.perf_counter() - started
    return result


async def _fetch(
    client: httpx.AsyncClient, url: httpx.URL, policy: FetchPolicy, guard: UrlGuard | None
) -> FetchResult:
    redirects: list[str] = []
    try:
        async with asyncio.timeout(policy.timeout_s):
            while True:
                if guard is not None:
                    await guard(url)
                request = client.build_request("GET", url, headers=policy.headers)
                response = await client.send(request, stream=True)
                try:
                    hop = next_hop(url, response, redirects, policy.max_redirects)
                    if isinstance(hop, httpx.URL):
                        redirects.append(str(hop))
                        url = hop
                        continue
                    if hop is not None:
                        return hop
                    body, too_large = await _read_capped(response, policy.max_bytes)
                finally:
                    await response.aclose()
                return page(url, response, body, too_large, redirects, policy.max_bytes)
    except FetchRefused as exc:
        return FetchResult(
            Verdict(Outcome.SSRF_BLOCKED, False, str(exc)), str(url), redirects=redirects
        )
    except (httpx.HTTPError, TimeoutError, OSError) as exc:
        return FetchResult(_error_verdict(exc), str(url), redirects=redirects)


def next_hop(
    url: httpx.URL, response: httpx.Response, redirects: list[str], max_redirects: int
) -> httpx.URL | FetchResult | None:
    """After a response to ``url``: the URL a redirect leads to, a final result when the
    redirect may not be followed (not HTTP, too many), or ``None`` when it is no redirect."""
    location = response.headers.get("location")
    if response.status_code not in REDIRECT_STATUSES or not location:
        return None
    target = url.join(location)
    if target.scheme not in ("http", "https"):
        verdict = Verdict(Outcome.HTTP_ERROR, False, "redirect to a non-HTTP URL")
        return FetchResult(verdict, str(url), response.status_code)
    if len(redirects) >= max_redirects:
        verdict = Verdict(Outcome.HTTP_ERROR, False, "too many redirects")
        return FetchResult(verdict, str(url), response.status_code, redirects=redirects)
    return target


def page(
    url: httpx.URL,
    response: httpx.Response,
    body: bytes,
    too_large: bool,
    redirects: list[str],
    max_bytes: int,
) -> FetchResult:
    """The result of a final (non-redirect) response whose body was read (or refused as too
    large)."""
    if too_large:
        verdict = Verdict(Outcome.HTTP_ERROR, False, f"response larger than {max_bytes} bytes")
        return FetchResult(verdict, str(url), response.status_code, redirects=redirects)
    return FetchResult(
        classify_status(response.status_code, body),
        str(url),
        response.status_code,
        body=body,
        encoding=response.charset_encoding,
        retry_after_s=parse_retry_after(response.headers.get("retry-after")),
        redirects=redirects,
    )


def make_client(
    user_agent: str, *, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """A client that follows no redirects, ignores proxy environment variables, and pools.

    ``transport`` is where tracing (``otel.traced_transport``, which never sends trace context
    to the site) and proxies plug in.
    """
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        transport=transport,
        headers={"user-agent": user_agent},
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        timeout=httpx.Timeout(60.0),
    )
