"""Proxy metrics, built from the catalogue (``app/telemetry/metrics.py``). Attributes: pool
name, outcome, reason, state only: never a proxy address or label (unbounded, and a credential
leak risk)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from app.telemetry.metrics import SECONDS_BUCKETS, counter, histogram, observable_gauge
from app.telemetry.metrics import meter as trawl_meter

POOL = "trawl.proxy.pool"
OUTCOME = "trawl.outcome"
REASON = "trawl.proxy.rotation.reason"
STATE = "trawl.proxy.state"


class ProxyMetrics:
    def __init__(self, meter: Meter | None = None) -> None:
        meter = meter or trawl_meter()
        self.requests = counter(meter, "trawl.proxy.requests")
        self.duration = histogram(meter, "trawl.proxy.request.duration", SECONDS_BUCKETS)
        self.rotations = counter(meter, "trawl.proxy.rotations")
        self._sizes: dict[tuple[str, str], int] = {}
        observable_gauge(meter, "trawl.proxy.pool.size", self._observe)

    def request(self, pool: str, outcome: str, duration_s: float | None = None) -> None:
        attributes = {POOL: pool, OUTCOME: outcome}
        self.requests.add(1, attributes)
        if duration_s is not None:
            self.duration.record(duration_s, attributes)

    def rotation(self, pool: str, reason: str) -> None:
        self.rotations.add(1, {POOL: pool, REASON: reason})

    def set_snapshot(self, snapshot: Mapping[str, Mapping[str, int]]) -> None:
        """Replace the cached sizes; the gauge callback only reads this (no I/O)."""
        self._sizes = {
            (pool, state): count
            for pool, states in snapshot.items()
            for state, count in states.items()
        }

    def _observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        for (pool, state), count in list(self._sizes.items()):
            yield Observation(count, {POOL: pool, STATE: state})


@lru_cache(maxsize=1)
def default_metrics() -> ProxyMetrics:
    """The process-wide instruments on the global ``trawl`` meter (created once)."""
    return ProxyMetrics()
