"""The closed set of outcomes every fetch attempt is classified into."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    HTTP_ERROR = "http_error"
    BLOCKED = "blocked"
    RATE_LIMITED = "rate_limited"
    PROXY_ERROR = "proxy_error"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    EXTRACT_FAILED = "extract_failed"
    CANCELLED = "cancelled"
    # Refused by the SSRF policy (never retried); no usable proxy in the job's pool
    # (retried with backoff, never sent direct; final outcome when attempts run out).
    SSRF_BLOCKED = "ssrf_blocked"
    NO_PROXY = "no_proxy"


# Markers of challenge/captcha pages served with a 2xx status (lower-case, checked in the head).
BAN_MARKERS: tuple[bytes, ...] = (
    b"g-recaptcha",
    b"h-captcha",
    b"cf-challenge",
    b"/cdn-cgi/challenge-platform",
    b"attention required! | cloudflare",
    b"px-captcha",
    b"are you a robot",
)
_MARKER_WINDOW = 64 * 1024


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    retryable: bool
    reason: str


def classify_status(status: int, body: bytes = b"") -> Verdict:
    """Classify a final (non-redirect) HTTP response."""
    if status == 429:
        return Verdict(Outcome.RATE_LIMITED, True, "HTTP 429 Too Many Requests")
    if status in (401, 403):
        return Verdict(Outcome.BLOCKED, True, f"HTTP {status}: access refused")
    if 200 <= status < 300:
        head = body[:_MARKER_WINDOW].lower()
        if any(marker in head for marker in BAN_MARKERS):
            return Verdict(Outcome.BLOCKED, True, "challenge or captcha page")
        return Verdict(Outcome.SUCCESS, False, f"HTTP {status}")
    if status >= 500 or status == 408:
        return Verdict(Outcome.HTTP_ERROR, True, f"HTTP {status}")
    return Verdict(Outcome.HTTP_ERROR, False, f"HTTP {status}")
