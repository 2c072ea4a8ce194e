"""Webhook metrics, built from the catalogue (``app/telemetry/metrics.py``). Attributes are
closed sets: never a URL or key."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from app.telemetry.metrics import SECONDS_BUCKETS, counter, histogram, observable_gauge
from app.telemetry.metrics import meter as trawl_meter

OUTCOME = "trawl.webhook.outcome"
STATUS = "trawl.webhook.status"


class WebhookMetrics:
    def __init__(self, meter: Meter | None = None) -> None:
        meter = meter or trawl_meter()
        self.attempts = counter(meter, "trawl.webhook.attempts")
        self.deliveries = counter(meter, "trawl.webhook.deliveries")
        self.duration = histogram(meter, "trawl.webhook.duration", SECONDS_BUCKETS)
        self._backlog: dict[str, int] = {}
        observable_gauge(meter, "trawl.webhook.backlog", self._observe_backlog)

    def attempt(self, outcome: str, duration_s: float) -> None:
        self.attempts.add(1, {OUTCOME: outcome})
        self.duration.record(duration_s, {OUTCOME: outcome})

    def final(self, status: str) -> None:
        self.deliveries.add(1, {STATUS: status})

    def set_backlog(self, counts: Mapping[str, int]) -> None:
        """Replace the outbox snapshot the backlog gauge reports (its callback does no I/O)."""
        self._backlog = dict(counts)

    def _observe_backlog(self, _options: CallbackOptions) -> Iterable[Observation]:
        for status, count in list(self._backlog.items()):
            yield Observation(count, {STATUS: status})


@lru_cache(maxsize=1)
def default_metrics() -> WebhookMetrics:
    return WebhookMetrics()
