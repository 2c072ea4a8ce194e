"""Secret redaction for log messages, log fields and URLs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "is_sensitive_key", "redact_text", "redact_url", "redact_value"]

MASK = "***"

_SENSITIVE_KEY = re.compile(
    r"(authorization|api[-_.]?key|apikey|passw(or)?d|passwd|secret|token|cookie|"
    r"credential|private[-_.]?key|session[-_.]?id|proxy[-_.]?auth|x-api-key|signature)",
    re.IGNORECASE,
)

# scheme://user:pass@host -> scheme://***@host
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@:]*(?::[^/\s@]*)?@")
# "Bearer abc.def" / "Basic dXNlcjpw" -> "Bearer ***"
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=\-]{4,}")
# key=value / key: value / "key": "value" for sensitive keys inside free text or query strings
_KV = re.compile(
    r"(?i)(?P<key>[\w.\-]*(?:api[-_]?key|apikey|passw(?:or)?d|secret|token|"
    r"authorization|cookie|signature|session[-_]?id)[\w.\-]*)"
    r"(?P<sep>[\"']?\s*[=:]\s*[\"']?)(?P<val>[^\s&\"',;}]+)"
)


def is_sensitive_key(key: str) -> bool:
    return bool(_SENSITIVE_KEY.search(key))


def redact_text(text: str) -> str:
    """Mask URL credentials, ``Bearer``/``Basic`` credentials and ``secret=value`` pairs."""
    if not text:
        return text
    text = _URL_USERINFO.sub(rf"\1{MASK}@", text)
    text = _AUTH_SCHEME.sub(rf"\1 {MASK}", text)

    def _kv(m: re.Match[str]) -> str:
        if m.group("val") == MASK or m.group("val").lower() in {"bearer", "basic"}:
            return m.group(0)
        return f"{m.group('key')}{m.group('sep')}{MASK}"

    return _KV.sub(_kv, text)


def redact_url(url: str) -> str:
    """Drop userinfo and mask sensitive query parameter values."""
    return redact_text(url)


def redact_value(key: str, value: Any) -> Any:
    """Mask ``value`` entirely if ``key`` looks sensitive, else redact strings/mappings inside."""
    if is_sensitive_key(key):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {str(k): redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(key, v) for v in value]
    return value
