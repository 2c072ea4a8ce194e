"""The business-metric catalogue: every Trawl metric is declared here, with the OpenTelemetry API.

Names are dotted and lowercase, units go in the unit field, histograms carry buckets suited to
their unit, and every attribute takes its values from a closed set below. Nothing that grows
with input — URL, domain, job or task id, proxy address, key id, exception message — is ever
an attribute. ``docs/telemetry.md`` is checked against ``CATALOGUE`` by a test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from otel import safe_attr

SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
LONG_SECONDS_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
BYTES_BUCKETS = (100, 1_000, 10_000, 50_000, 100_000, 500_000, 1_000_000, 5_000_000, 20_000_000)
ATTEMPT_BUCKETS = (1, 2, 3, 4, 5, 7, 10)

OUTCOMES = frozenset(
    {
        "success",
        "http_error",
        "blocked",
        "rate_limited",
        "proxy_error",
        "timeout",
        "connection_error",
        "extract_failed",
        "cancelled",
        "ssrf_blocked",
        "no_proxy",
    }
)
JOB_STATUSES = frozenset({"queued", "running", "cancelling", "completed", "failed", "cancelled"})
SUBMIT_OUTCOMES = frozenset({"accepted", "duplicate", "rejected_invalid", "rejected_conflict"})
PRIORITIES = frozenset({"low", "normal", "high"})
BAN_SIGNALS = frozenset({"status_401", "status_403", "challenge_page", "proxy_failure"})
THROTTLE_REASONS = frozenset({"concurrency", "rate", "throttled", "retry_after"})
QUEUE_STATES = frozenset({"ready", "delayed", "in_flight", "dead"})
ENQUEUE_REASONS = frozenset({"new", "retry", "reaped", "deferred", "redispatch"})
COMPONENTS = frozenset({"api", "worker"})
GROUP_KINDS = frozenset({"new", "regression"})
SIZE_BUCKETS = ("1", "2-10", "11-100", "101+")


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    kind: str
    unit: str
    attributes: tuple[str, ...]
    description: str


CATALOGUE: tuple[Spec, ...] = (
    Spec(
        "trawl.fetch.attempts",
        "counter",
        "{attempt}",
        ("trawl.outcome",),
        "Fetch attempts, by classified outcome.",
    ),
    Spec(
        "trawl.fetch.duration",
        "histogram",
        "s",
        ("trawl.outcome",),
        "Time of one fetch attempt, redirects included.",
    ),
    Spec("trawl.fetch.response.size", "histogram", "By", (), "Body size of fetched responses."),
    Spec(
        "trawl.fetch.bans",
        "counter",
        "{ban}",
        ("trawl.ban.signal",),
        "Ban signals detected (401/403, challenge page, proxy failure).",
    ),
    Spec(
        "trawl.domain.throttled",
        "counter",
        "{event}",
        ("trawl.throttle.reason",),
        "Times per-domain politeness made a task wait or deferred it.",
    ),
    Spec(
        "trawl.task.finished",
        "counter",
        "{task}",
        ("trawl.outcome",),
        "Tasks that reached a final state, by final outcome (success rate).",
    ),
    Spec(
        "trawl.task.attempts",
        "histogram",
        "{attempt}",
        ("trawl.outcome",),
        "Attempts a task took, by final outcome.",
    ),
    Spec(
        "trawl.job.submitted",
        "counter",
        "{job}",
        ("trawl.submit.outcome", "trawl.job.priority"),
        "Job submissions, accepted or rejected.",
    ),
    Spec(
        "trawl.job.finished",
        "counter",
        "{job}",
        ("trawl.job.status",),
        "Jobs that reached a terminal status.",
    ),
    Spec(
        "trawl.job.duration",
        "histogram",
        "s",
        ("trawl.job.status", "trawl.job.size"),
        "End-to-end job time, created to finished.",
    ),
    Spec(
        "trawl.job.active",
        "gauge",
        "{job}",
        ("trawl.job.status",),
        "Jobs in flight (queued, running, cancelling), from SQL.",
    ),
    Spec(
        "trawl.queue.depth",
        "gauge",
        "{task}",
        ("trawl.queue.state",),
        "Tasks by queue state: ready (due), delayed, in_flight (running), dead (failed, 24 h).",
    ),
    Spec(
        "trawl.queue.oldest_age",
        "gauge",
        "s",
        (),
        "Age of the oldest ready task (due and not running).",
    ),
    Spec(
        "trawl.queue.wait.duration",
        "histogram",
        "s",
        ("trawl.job.priority",),
        "Time from (re)queueing to a worker starting the attempt.",
    ),
    Spec(
        "trawl.queue.enqueued",
        "counter",
        "{task}",
        ("trawl.enqueue.reason",),
        "Tasks entering the queue: new, retry, reaped (arrival rate).",
    ),
    Spec(
        "trawl.queue.processed",
        "counter",
        "{task}",
        ("trawl.outcome",),
        "Attempts workers finished (processing rate).",
    ),
    Spec("trawl.queue.active", "updowncounter", "{task}", (), "Tasks running in this worker now."),
    Spec(
        "trawl.queue.reaped",
        "counter",
        "{task}",
        (),
        "Running tasks requeued because their worker stopped heart-beating.",
    ),
    Spec(
        "trawl.errors",
        "counter",
        "{error}",
        ("error.type", "trawl.error.group", "trawl.component"),
        "Unhandled exceptions, by type and grouping key.",
    ),
    Spec(
        "trawl.errors.groups",
        "counter",
        "{group}",
        ("trawl.error.kind",),
        "Error groups seen for the first time (new) or again after being resolved (regression).",
    ),
    # Created in app/proxy/metrics.py (meter ``trawl``).
    Spec(
        "trawl.proxy.requests",
        "counter",
        "{request}",
        ("trawl.proxy.pool", "trawl.outcome"),
        "Fetch attempts made through a proxy, by pool and outcome.",
    ),
    Spec(
        "trawl.proxy.rotations",
        "counter",
        "{rotation}",
        ("trawl.proxy.pool", "trawl.proxy.rotation.reason"),
        "Proxy choices that changed the proxy, by pool and reason.",
    ),
    Spec(
        "trawl.proxy.pool.size",
        "gauge",
        "{proxy}",
        ("trawl.proxy.pool", "trawl.proxy.state"),
        "Proxies per pool and state (last snapshot).",
    ),
    # Created in app/webhook/metrics.py (meter ``trawl``).
    Spec(
        "trawl.webhook.attempts",
        "counter",
        "{attempt}",
        ("trawl.webhook.outcome",),
        "Webhook HTTP attempts, by outcome.",
    ),
    Spec(
        "trawl.webhook.deliveries",
        "counter",
        "{delivery}",
        ("trawl.webhook.status",),
        "Webhook deliveries that reached a final status.",
    ),
    Spec(
        "trawl.webhook.duration",
        "histogram",
        "s",
        ("trawl.webhook.outcome",),
        "Duration of webhook HTTP attempts.",
    ),
    # Created in app/health/service.py (meter ``trawl.health``).
    Spec(
        "trawl.health.component.status",
        "gauge",
        "1",
        ("trawl.health.component",),
        "Health of each component: 1 healthy, 0.5 degraded, 0 unhealthy",
    ),
    Spec(
        "trawl.health.status",
        "gauge",
        "1",
        (),
        "Overall health: 1 healthy, 0.5 degraded, 0 unhealthy",
    ),
    # Created in otel/export_stats.py (meter ``otel``).
    Spec(
        "trawl.telemetry.export.failures",
        "counter",
        "{item}",
        ("trawl.telemetry.signal", "trawl.telemetry.reason"),
        "Telemetry items lost before the collector.",
    ),
)


SPECS: dict[str, Spec] = {spec.name: spec for spec in CATALOGUE}


def size_bucket(urls: int) -> str:
    return "1" if urls <= 1 else "2-10" if urls <= 10 else "11-100" if urls <= 100 else "101+"


def outcome(value: str) -> str:
    return str(safe_attr(value, OUTCOMES))


GaugeSource = Callable[[], Iterable[tuple[float, dict[str, Any]]]]


class BusinessMetrics:
    """The instruments of one meter provider. Get them with :func:`instruments`."""

    def __init__(self, meter: metrics.Meter) -> None:
        self._meter = meter
        self.fetch_attempts = self._counter("trawl.fetch.attempts")
        self.fetch_duration = self._histogram("trawl.fetch.duration", SECONDS_BUCKETS)
        self.response_size = self._histogram("trawl.fetch.response.size", BYTES_BUCKETS)
        self.bans = self._counter("trawl.fetch.bans")
        self.throttled = self._counter("trawl.domain.throttled")
        self.task_finished = self._counter("trawl.task.finished")
        self.task_attempts = self._histogram("trawl.task.attempts", ATTEMPT_BUCKETS)
        self.job_submitted = self._counter("trawl.job.submitted")
        self.job_finished = self._counter("trawl.job.finished")
        self.job_duration = self._histogram("trawl.job.duration", LONG_SECONDS_BUCKETS)
        self.queue_wait = self._histogram("trawl.queue.wait.duration", LONG_SECONDS_BUCKETS)
        self.enqueued = self._counter("trawl.queue.enqueued")
        self.processed = self._counter("trawl.queue.processed")
        spec = SPECS["trawl.queue.active"]
        self.active = meter.create_up_down_counter(spec.name, spec.unit, spec.description)
        self.reaped = self._counter("trawl.queue.reaped")
        self.errors = self._counter("trawl.errors")
        self.error_groups = self._counter("trawl.errors.groups")
        self._gauges: dict[str, GaugeSource] = {}
        for name in ("trawl.job.active", "trawl.queue.depth", "trawl.queue.oldest_age"):
            spec = SPECS[name]
            meter.create_observable_gauge(name, [self._observer(name)], spec.unit, spec.description)

    def _counter(self, name: str) -> metrics.Counter:
        spec = SPECS[name]
        return self._meter.create_counter(spec.name, spec.unit, spec.description)

    def _histogram(self, name: str, buckets: tuple[float, ...]) -> metrics.Histogram:
        spec = SPECS[name]
        return self._meter.create_histogram(
            spec.name,
            spec.unit,
            spec.description,
            explicit_bucket_boundaries_advisory=list(buckets),
        )

    def _observer(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            source = self._gauges.get(name)
            if source is None:
                return []
            return [Observation(value, attrs) for value, attrs in source()]

        return observe

    def set_gauge_source(self, name: str, source: GaugeSource | None) -> None:
        """Gauges read a snapshot kept by a sampler; the callback itself does no I/O."""
        if source is None:
            self._gauges.pop(name, None)
        else:
            self._gauges[name] = source


_cache: tuple[int, BusinessMetrics] | None = None


def instruments() -> BusinessMetrics:
    """The instruments for the current global meter provider (rebuilt if it changed)."""
    global _cache
    provider = metrics.get_meter_provider()
    if _cache is None or _cache[0] != id(provider):
        _cache = (id(provider), BusinessMetrics(provider.get_meter("trawl")))
    return _cache[1]
