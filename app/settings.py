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
_MIN_SECRET_KEY_LENGTH = 32
# Local/test only: a fixed, PUBLIC development key. Anything encrypted with it is readable by
# anyone who has this source code, which is why staging/production refuse to start without
# TRAWL_SECRET_KEY.
INSECURE_DEV_SECRET_KEY = "trawl-insecure-development-secret-key-do-not-use-in-production"  # noqa: S105


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
    # A pooled PostgreSQL connection idle at least this long is pinged before use; one used more
    # recently is trusted (app/db/engine.py, docs/adr/0004-pool-pings-idle-connections.md).
    db_ping_after_idle_s: float = Field(default=1.0, ge=0, le=3600)

    # Auth
    admin_api_key: SecretStr | None = None
    # How long an API key found live is trusted without SQL, per API process (app/auth/cache.py;
    # a key revoked through another process stays usable here up to this long). 0: always SQL.
    auth_cache_ttl_s: float = Field(default=5.0, ge=0, le=300)

    # Error tracking: optional Sentry (needs the sentry-sdk package), off by default
    sentry_dsn: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SENTRY_DSN", "TRAWL_SENTRY_DSN")
    )
    error_flush_interval_s: float = Field(default=2.0, gt=0)

    # Tracing: continue a caller's trace (and its sampling decision) from its `traceparent`?
    # Off: public clients get a new trace, with theirs as a link (docs/telemetry.md#sampling).
    trust_traceparent: bool = False

    # Queue gauges: how often the API (and the dispatching worker) sample SQL and the stream
    queue_stats_interval_s: float = Field(default=10.0, gt=0)
    # GET /metrics on the API port when the Prometheus exporter is on (docs/telemetry.md)
    metrics_endpoint_enabled: bool = True

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
    # a task waiting longer is deferred to a return time booked for it, at most this far ahead
    politeness_horizon_s: float = Field(default=300.0, gt=0)

    # Secrets at rest (proxy credentials, webhook signing secrets): Fernet, key derived from this
    secret_key: SecretStr | None = None

    # SSRF: private, loopback, link-local... targets and webhook URLs are refused unless true
    allow_private_targets: bool = False
    ssrf_resolve_timeout_s: float = Field(default=2.0, gt=0)

    # Proxy pools: health shared through Redis
    proxy_cooldown_base_s: float = Field(default=30.0, gt=0)
    proxy_cooldown_cap_s: float = Field(default=3600.0, gt=0)
    proxy_cooldown_jitter: float = Field(default=0.2, ge=0, lt=1)
    proxy_dead_after: int = Field(default=5, ge=1)
    proxy_dead_retry_s: float = Field(default=3600.0, gt=0)
    proxy_score_alpha: float = Field(default=0.2, gt=0, le=1)
    proxy_sticky_ttl_s: float = Field(default=600.0, gt=0)
    proxy_config_refresh_s: float = Field(default=5.0, ge=0)

    # Webhooks: outbox delivery
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_retry_schedule_s: list[float] = Field(
        default_factory=lambda: [5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0]
    )
    webhook_retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    webhook_secret_overlap_s: float = Field(default=86400.0, ge=0)
    webhook_sending_timeout_s: float = Field(default=120.0, gt=0)
    webhook_batch_size: int = Field(default=50, ge=1, le=1000)
    webhook_concurrency: int = Field(default=10, ge=1, le=500)
    webhook_poll_interval_s: float = Field(default=1.0, gt=0)
    webhook_delivery_enabled: bool = True

    # Health checks (docs/health.md)
    health_check_timeout_s: float = Field(default=1.0, gt=0, le=30)
    health_cache_ttl_s: float = Field(default=2.0, ge=0)
    health_refresh_interval_s: float = Field(default=15.0, gt=0)
    health_queue_max_age_s: float = Field(default=300.0, gt=0)
    health_webhook_max_pending: int = Field(default=1000, ge=0)
    health_token: SecretStr | None = None
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
    def effective_secret_key(self) -> str:
        """``TRAWL_SECRET_KEY``, or the public development key (local/test only)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return INSECURE_DEV_SECRET_KEY

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
            if self.secret_key is None:
                problems.append("TRAWL_SECRET_KEY must be set outside local development")
        secret = self.secret_key.get_secret_value() if self.secret_key else None
        if secret is not None and len(secret) < _MIN_SECRET_KEY_LENGTH:
            problems.append(f"TRAWL_SECRET_KEY must be at least {_MIN_SECRET_KEY_LENGTH} chars")
        if any(s <= 0 for s in self.webhook_retry_schedule_s):
            problems.append("TRAWL_WEBHOOK_RETRY_SCHEDULE_S must hold positive delays")
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
