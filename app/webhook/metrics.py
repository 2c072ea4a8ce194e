"""Webhook metrics (OpenTelemetry API). Attributes are closed sets: never a URL or key."""

from __future__ import annotations

from functools import lru_cache

from opentelemetry import metrics
from opentelemetry.metrics import Meter

OUTCOME = "trawl.webhook.outcome"
STATUS = "trawl.webhook.status"


class WebhookMetrics:
    def __init__(self, meter: Meter | None = None) -> None:
        meter = meter or metrics.get_meter("trawl")
        self.attempts = meter.create_counter(
            "trawl.webhook.attempts",
            unit="{attempt}",
            description="Webhook HTTP attempts, by outcome.",
        )
        self.deliveries = meter.create_counter(
            "trawl.webhook.deliveries",
            unit="{delivery}",
            description="Webhook deliveries that reached a final status.",
        )
        self.duration = meter.create_histogram(
            "trawl.webhook.duration",
            unit="s",
            description="Duration of webhook HTTP attempts.",
            explicit_bucket_boundaries_advisory=[0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
        )

    def attempt(self, outcome: str, duration_s: float) -> None:
        self.attempts.add(1, {OUTCOME: outcome})
        self.duration.record(duration_s, {OUTCOME: outcome})

    def final(self, status: str) -> None:
        self.deliveries.add(1, {STATUS: status})


@lru_cache(maxsize=1)
def default_metrics() -> WebhookMetrics:
    return WebhookMetrics()
