"""Typed settings for the service: the only module that reads the environment.

Standard ``OTEL_*`` variables are read by the ``otel`` package and the SDK, not here.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["local", "test", "staging", "production"]

_MIN_ADMIN_KEY_LENGTH = 32


class Settings(BaseSettings):
    """Every knob of the service, with defaults that carry ``make run`` on a fresh machine."""

    model_config = SettingsConfigDict(
        env_prefix="TRAWL_", extra="ignore", frozen=True, populate_by_name=True
    )

    environment: Environment = "local"
    data_dir: Path = Path("var")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    migrate_on_start: bool = True

    # Storage and queue. Unset means the embedded defaults (SQLite file, embedded Redis).
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "TRAWL_DATABASE_URL")
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "TRAWL_REDIS_URL")
    )
    redis_prefix: str = "trawl"
    db_pool_size: int = Field(default=10, ge=1, le=200)

    # Auth
    admin_api_key: SecretStr | None = None

    # API limits
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_urls_per_job: int = Field(default=1000, ge=1)
    max_url_length: int = Field(default=2048, ge=64)
    max_fields: int = Field(default=50, ge=1)
    max_selector_length: int = Field(default=1000, ge=16)
    max_headers: int = Field(default=20, ge=0)
    max_metadata_bytes: int = Field(default=16_384, ge=0)

    # Fetching
    user_agent: str = "TrawlBot/0.1"
    default_timeout_s: float = Field(default=30.0, gt=0)
    max_timeout_s: float = Field(default=120.0, gt=0)
    max_response_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_redirects: int = Field(default=5, ge=0, le=20)

    # Retries
    default_max_retries: int = Field(default=3, ge=0)
    max_max_retries: int = Field(default=10, ge=0)
    backoff_base_s: float = Field(default=1.0, gt=0)
    backoff_cap_s: float = Field(default=300.0, gt=0)
    retry_after_cap_s: float = Field(default=3600.0, gt=0)

    # Workers
    worker_concurrency: int = Field(default=16, ge=1, le=1000)
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    stale_after_s: float = Field(default=30.0, gt=0)
    dispatch_interval_s: float = Field(default=1.0, gt=0)
    redispatch_after_s: float = Field(default=300.0, gt=0)
    stream_idle_timeout_s: float = Field(default=600.0, gt=0)
    stream_maxlen: int = Field(default=100_000, ge=1000)

    # Per-domain politeness, shared by all workers through Redis
    domain_concurrency: int = Field(default=4, ge=1)
    domain_rate_per_s: float = Field(default=5.0, gt=0)
    politeness_max_wait_s: float = Field(default=2.0, ge=0)

    # Health checks (docs/health.md)
    health_check_timeout_s: float = Field(default=1.0, gt=0, le=30)
    health_cache_ttl_s: float = Field(default=2.0, ge=0)
    health_refresh_interval_s: float = Field(default=15.0, gt=0)
    health_queue_max_age_s: float = Field(default=300.0, gt=0)
    health_disk_degraded_free_ratio: float = Field(default=0.10, ge=0, le=1)
    health_disk_degraded_free_bytes: int = Field(default=1024**3, ge=0)
    health_disk_unhealthy_free_ratio: float = Field(default=0.02, ge=0, le=1)
    health_disk_unhealthy_free_bytes: int = Field(default=100 * 1024**2, ge=0)

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return _async_driver(self.database_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'trawl.db').resolve()}"

    @property
    def uses_embedded_redis(self) -> bool:
        return self.redis_url is None

    @model_validator(mode="after")
    def _refuse_insecure_defaults(self) -> Settings:
        problems: list[str] = []
        key = self.admin_api_key.get_secret_value() if self.admin_api_key else ""
        if key and len(key) < _MIN_ADMIN_KEY_LENGTH:
            problems.append(f"TRAWL_ADMIN_API_KEY must be at least {_MIN_ADMIN_KEY_LENGTH} chars")
        if self.environment in ("staging", "production"):
            if not key:
                problems.append("TRAWL_ADMIN_API_KEY must be set outside local development")
            if self.redis_url is None:
                problems.append("REDIS_URL must be set: the embedded Redis is for local use only")
            if self.database_url is None:
                problems.append("DATABASE_URL must be set: the SQLite default is for local use")
        if self.default_timeout_s > self.max_timeout_s:
            problems.append("TRAWL_DEFAULT_TIMEOUT_S exceeds TRAWL_MAX_TIMEOUT_S")
        if problems:
            raise ValueError("; ".join(problems))
        if self.environment == "local" and not key:
            warnings.warn(
                "TRAWL_ADMIN_API_KEY is unset: no admin key will be created", stacklevel=2
            )
        return self


def _async_driver(url: str) -> str:
    """Map plain database URLs to the async drivers this service uses."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
