"""The test suite's settings: which database it runs on, its admin key, and Settings for a
test stack (fast retries, short timeouts, loopback targets allowed)."""

from __future__ import annotations

import os
import uuid
from typing import Any

from app.settings import Settings

ADMIN_KEY = "test-admin-key-" + "x" * 32
#: ``sqlite`` (default) or ``postgres``: ``make test`` runs the suite once with each.
TEST_DB = os.environ.get("TEST_DB", "sqlite")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def make_settings(database_url: str, redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "redis_url": redis_url,
        "redis_prefix": f"trawl-test-{uuid.uuid4().hex[:8]}",
        "admin_api_key": ADMIN_KEY,
        "migrate_on_start": False,
        "backoff_base_s": 0.05,
        "backoff_cap_s": 0.5,
        "dispatch_interval_s": 0.1,
        "heartbeat_interval_s": 0.3,
        "stale_after_s": 2.0,
        "domain_rate_per_s": 1000.0,
        "domain_concurrency": 50,
        "politeness_max_wait_s": 0.5,
        "default_timeout_s": 5.0,
        "max_response_bytes": 200_000,
        # webhook tests drive their own dispatchers on the shared database; a stack that owns
        # its database turns this on
        "webhook_delivery_enabled": False,
        # the suite's target site is on loopback; SSRF tests build settings with this false
        "allow_private_targets": True,
    }
    values.update(overrides)
    return Settings(**values)
