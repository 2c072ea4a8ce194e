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


def size_bucket(urls: int) -> str:
    return "1" if urls <= 1 else "2-10" if urls <= 10 else "11-100" if urls <= 100 else "101+"


def outcome(value: str) -> str:
    return str(safe_attr(value, OUTCOMES))


GaugeSource = Callable[[], Iterable[tuple[float, dict[str, Any]]]]


class BusinessMetrics:
    """The instruments of one meter provider. Get them with :func:`instruments`."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.fetch_attempts = meter.create_counter(
            "trawl.fetch.attempts", "{attempt}", "Fetch attempts, by classified outcome."
        )
        self.fetch_duration = meter.create_histogram(
            "trawl.fetch.duration",
            "s",
            "Time of one fetch attempt.",
            explicit_bucket_boundaries_advisory=list(SECONDS_BUCKETS),
        )
        self.response_size = meter.create_histogram(
            "trawl.fetch.response.size",
            "By",
            "Body size of fetched responses.",
            explicit_bucket_boundaries_advisory=list(BYTES_BUCKETS),
        )
        self.bans = meter.create_counter("trawl.fetch.bans", "{ban}", "Ban signals detected.")
        self.throttled = meter.create_counter(
            "trawl.domain.throttled", "{event}", "Per-domain politeness waits and deferrals."
        )
        self.task_finished = meter.create_counter(
            "trawl.task.finished", "{task}", "Tasks that reached a final state."
        )
        self.task_attempts = meter.create_histogram(
            "trawl.task.attempts",
            "{attempt}",
            "Attempts a task took.",
            explicit_bucket_boundaries_advisory=list(ATTEMPT_BUCKETS),
        )
        self.job_submitted = meter.create_counter(
            "trawl.job.submitted", "{job}", "Job submissions, accepted or rejected."
        )
        self.job_finished = meter.create_counter(
            "trawl.job.finished", "{job}", "Jobs that reached a terminal status."
        )
        self.job_duration = meter.create_histogram(
            "trawl.job.duration",
            "s",
            "End-to-end job time.",
            explicit_bucket_boundaries_advisory=list(LONG_SECONDS_BUCKETS),
        )
        self.queue_wait = meter.create_histogram(
            "trawl.queue.wait.duration",
            "s",
            "Time from queueing to start.",
            explicit_bucket_boundaries_advisory=list(LONG_SECONDS_BUCKETS),
        )
        self.enqueued = meter.create_counter(
            "trawl.queue.enqueued", "{task}", "Tasks entering the queue."
        )
        self.processed = meter.create_counter(
            "trawl.queue.processed", "{task}", "Attempts workers finished."
        )
        self.active = meter.create_up_down_counter(
            "trawl.queue.active", "{task}", "Tasks running in this worker now."
        )
        self.reaped = meter.create_counter(
            "trawl.queue.reaped", "{task}", "Tasks requeued from lost workers."
        )
        self.errors = meter.create_counter(
            "trawl.errors", "{error}", "Unhandled exceptions, by type and grouping key."
        )
        self.error_groups = meter.create_counter(
            "trawl.errors.groups", "{group}", "New and regressed error groups."
        )
        self._gauges: dict[str, GaugeSource] = {}
        for name, unit, desc in (
            ("trawl.job.active", "{job}", "Jobs in flight, from SQL."),
            ("trawl.queue.depth", "{task}", "Tasks by queue state, from SQL."),
            ("trawl.queue.oldest_age", "s", "Age of the oldest ready task."),
        ):
            meter.create_observable_gauge(name, [self._observer(name)], unit, desc)

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
