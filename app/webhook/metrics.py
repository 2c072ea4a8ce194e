"""Webhook metrics, built from the catalogue (``app/telemetry/metrics.py``). Attributes are
closed sets: never a URL or key."""

from __future__ import annotations

from functools import lru_cache

from opentelemetry.metrics import Meter

from app.telemetry.metrics import SECONDS_BUCKETS, counter, histogram
from app.telemetry.metrics import meter as trawl_meter

OUTCOME = "trawl.webhook.outcome"
STATUS = "trawl.webhook.status"


class WebhookMetrics:
    def __init__(self, meter: Meter | None = None) -> None:
        meter = meter or trawl_meter()
        self.attempts = counter(meter, "trawl.webhook.attempts")
        self.deliveries = counter(meter, "trawl.webhook.deliveries")
        self.duration = histogram(meter, "trawl.webhook.duration", SECONDS_BUCKETS)

    def attempt(self, outcome: str, duration_s: float) -> None:
        self.attempts.add(1, {OUTCOME: outcome})
        self.duration.record(duration_s, {OUTCOME: outcome})

    def final(self, status: str) -> None:
        self.deliveries.add(1, {STATUS: status})


@lru_cache(maxsize=1)
def default_metrics() -> WebhookMetrics:
    return WebhookMetrics()
