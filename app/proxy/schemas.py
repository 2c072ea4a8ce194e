"""Admin API bodies for proxies. The proxy URL is write-only: responses carry ``label`` only."""

from __future__ import annotations

import re
from datetime import datetime

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from app.proxy.models import Strategy
from app.validation import RequestBody

POOL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
PROXY_SCHEMES = frozenset({"http", "https"})


def parse_proxy_url(raw: str) -> httpx.URL:
    """An ``http(s)://[user:pass@]host:port`` proxy URL, or ``ValueError`` (never echoing it)."""
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, ValueError):
        raise ValueError("not a valid proxy URL") from None
    if url.scheme not in PROXY_SCHEMES:
        raise ValueError("proxy scheme must be http or https")
    if not url.host:
        raise ValueError("proxy URL has no host")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise ValueError("proxy URL must not have a path, query or fragment")
    return url


def redacted_label(url: httpx.URL) -> str:
    """``scheme://***@host:port`` when the URL carries credentials, else ``scheme://host:port``."""
    port = url.port or (443 if url.scheme == "https" else 80)
    host = f"[{url.host}]" if ":" in url.host else url.host
    auth = "***@" if url.username or url.password else ""
    return f"{url.scheme}://{auth}{host}:{port}"


def _pool_name(value: str) -> str:
    if not POOL_NAME.match(value):
        raise ValueError("pool names are 1-100 letters, digits, '_', '.', '-'")
    return value


class ProxyCreate(RequestBody):
    model_config = ConfigDict(extra="forbid")

    pool: str = Field(min_length=1, max_length=100)
    url: SecretStr = Field(description="http(s)://[user:pass@]host:port; never returned")
    enabled: bool = True
    weight: int = Field(default=1, ge=1, le=1000)

    @field_validator("pool")
    @classmethod
    def _pool(cls, value: str) -> str:
        return _pool_name(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr) -> SecretStr:
        parse_proxy_url(value.get_secret_value())
        return value


class ProxyUpdate(RequestBody):
    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    weight: int | None = Field(default=None, ge=1, le=1000)
    url: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_proxy_url(value.get_secret_value())
        return value


class ProxyHealthRead(BaseModel):
    state: str = Field(description="healthy, cooling_down, dead or disabled")
    score: float
    consecutive_failures: int
    cooldown_until: datetime | None


class ProxyRead(BaseModel):
    id: str
    pool: str
    label: str = Field(description="Redacted proxy address; credentials are never shown")
    enabled: bool
    weight: int
    health: ProxyHealthRead
    created_at: datetime
    updated_at: datetime


class PoolUpdate(RequestBody):
    model_config = ConfigDict(extra="forbid")

    strategy: Strategy | None = None
    sticky: bool | None = None


class PoolRead(BaseModel):
    name: str
    strategy: Strategy
    sticky: bool
    proxies: int
    states: dict[str, int]
