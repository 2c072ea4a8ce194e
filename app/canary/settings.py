"""Typed settings of the canary (``TRAWL_CANARY_*``), separate from the service's own."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CanarySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRAWL_CANARY_", extra="ignore", frozen=True)

    api_url: str = "http://127.0.0.1:8000"
    api_key: SecretStr = Field(description="an API key of the Trawl API (Bearer)")
    target_url: str = Field(description="the known page the canary job scrapes")
    # the page's <title>; empty: any non-empty title passes
    expect_title: str = ""
    interval_s: float = Field(default=60.0, gt=0)
    # a run that has not finished in this time is a failure (result="timeout")
    timeout_s: float = Field(default=45.0, gt=0)
    poll_interval_s: float = Field(default=0.5, gt=0)
    request_timeout_s: float = Field(default=10.0, gt=0)
    listen_host: str = "127.0.0.1"
    # 0: no metrics endpoint (the load generator)
    listen_port: int = Field(default=9469, ge=0, le=65535)
