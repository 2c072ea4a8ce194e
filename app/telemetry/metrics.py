"""The metric catalogue: every Trawl metric is declared here, with the OpenTelemetry API.

Names are dotted and lowercase, units go in the unit field, histograms carry buckets suited to
their unit, and every attribute takes its values from a closed set below. Nothing that grows
with input — URL, domain, job or task id, proxy address, key id, exception message — is ever
an attribute. ``CATALOGUE`` lists the ``trawl.*`` metrics, ``INSTRUMENTATION`` the
semantic-convention metrics of the instrumentation (HTTP, database, process runtime).
``docs/telemetry.md`` is checked against both by a test, and so is each metric's Prometheus
name on the OTLP and the scrape path (tests/integration/test_metric_names.py).

Units are chosen so that both paths give one Prometheus name: no ``1`` on a gauge (the
collector appends ``_ratio``, the scrape exporter does not) and no unit word that already
appears inside the name (the collector skips it, the scrape exporter appends it).

Every ``trawl.*`` instrument the app creates is built from its spec here (:func:`create`,
:func:`histogram`, :func:`observable_gauge`): name, unit and description have one source.
The ``otel`` package's own metrics cannot import this module; a test checks they match.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

import otel

#: Durations in seconds: ``otel.DURATION_BUCKETS_S`` (5 ms .. 120 s), the one set every
#: duration histogram uses, HTTP and database ones included; the two long waits below
#: (a whole job, a task's time in the queue) run to an hour.
SECONDS_BUCKETS = otel.DURATION_BUCKETS_S
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
SUBMIT_OUTCOMES = frozenset({"accepted", "duplicate", "rejected_invalid", "rejected_conflict"})
PRIORITIES = frozenset({"low", "normal", "high"})
BAN_SIGNALS = frozenset({"status_401", "status_403", "challenge_page", "proxy_failure"})
# "throttled": the domain is held off after a 429/503 with Retry-After (app/queue/politeness.py)
THROTTLE_REASONS = frozenset({"concurrency", "rate", "throttled"})
# a dispatcher re-send of a message already counted (stale, or lost by the stream) is not an
# arrival, so it has no reason of its own: the arrival rate counts each task once per attempt
ENQUEUE_REASONS = frozenset({"new", "retry", "reaped", "deferred"})
GROUP_KINDS = frozenset({"new", "regression"})
JOB_FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
WEBHOOK_OUTCOMES = frozenset(
    {"success", "http_error", "timeout", "connection_error", "redirect", "gone", "ssrf_blocked"}
)
WEBHOOK_FINAL_STATUSES = frozenset({"succeeded", "dead", "disabled"})


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
        "Age of the oldest ready task: time since it became due, queued and not running.",
    ),
    Spec(
        "trawl.queue.stream.length",
        "gauge",
        "{message}",
        (),
        "Messages in the Redis task stream (XLEN; trimmed to TRAWL_STREAM_MAXLEN).",
    ),
    Spec(
        "trawl.queue.stream.pending",
        "gauge",
        "{message}",
        (),
        "Messages delivered to a worker and not yet acknowledged (consumer group PEL).",
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
        "trawl.worker.capacity",
        "gauge",
        "{task}",
        (),
        "Tasks this worker may run at once (TRAWL_WORKER_CONCURRENCY).",
    ),
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
        "trawl.proxy.request.duration",
        "histogram",
        "s",
        ("trawl.proxy.pool", "trawl.outcome"),
        "Time of one fetch attempt through a proxy, by pool and outcome.",
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
    Spec(
        "trawl.webhook.backlog",
        "gauge",
        "{delivery}",
        ("trawl.webhook.status",),
        "Deliveries waiting (pending), being sent (sending) and dead-lettered (dead), from SQL.",
    ),
    # Created in app/health/service.py (meter ``trawl.health``).
    Spec(
        "trawl.health.component.status",
        "gauge",
        "{status}",
        ("trawl.health.component",),
        "Health of each component: 1 healthy, 0.5 degraded, 0 unhealthy",
    ),
    Spec(
        "trawl.health.status",
        "gauge",
        "{status}",
        (),
        "Overall health: 1 healthy, 0.5 degraded, 0 unhealthy",
    ),
    Spec(
        "trawl.health.component.age",
        "gauge",
        "s",
        ("trawl.health.component",),
        "Seconds since each component's last health result was produced",
    ),
    # Created in otel/export_stats.py (meter ``otel``).
    Spec(
        "trawl.telemetry.export.failures",
        "counter",
        "{item}",
        ("trawl.telemetry.signal", "trawl.telemetry.reason"),
        "Telemetry items lost before the collector.",
    ),
    # Created in otel/runtime.py (meter ``otel.runtime``), in the API and every worker.
    Spec(
        "trawl.event_loop.last_tick",
        "gauge",
        "s",
        (),
        "Unix time of the event loop's last heartbeat tick.",
    ),
    Spec(
        "trawl.event_loop.lag",
        "histogram",
        "s",
        (),
        "How late the event loop ran a timer due every second.",
    ),
    Spec(
        "trawl.gc.pause.time",
        "counter",
        "s",
        ("cpython.gc.generation",),
        "Time spent in garbage collections, by generation.",
    ),
)

#: Instrumentation metrics (semantic conventions), reported by the API and every worker unless
#: noted. Descriptions are the instruments' own.
INSTRUMENTATION: tuple[Spec, ...] = (
    # otel/asgi.py (API)
    Spec(
        "http.server.request.duration",
        "histogram",
        "s",
        (
            "http.request.method",
            "http.route",
            "http.response.status_code",
            "url.scheme",
            "error.type",
        ),
        "Duration of HTTP server requests.",
    ),
    # otel/http_client.py (fetches, proxied fetches, webhooks)
    Spec(
        "http.client.request.duration",
        "histogram",
        "s",
        (
            "http.request.method",
            "http.response.status_code",
            "error.type",
            "network.protocol.version",
        ),
        "Duration of HTTP client requests.",
    ),
    # otel/db.py
    Spec(
        "db.client.operation.duration",
        "histogram",
        "s",
        ("db.system.name", "db.operation.name", "error.type"),
        "Duration of database client operations.",
    ),
    Spec(
        "db.client.connection.count",
        "updowncounter",
        "{connection}",
        ("db.client.connection.pool.name", "db.client.connection.state"),
        "Connections in the pool, by state (idle, used).",
    ),
    Spec(
        "db.client.connection.max",
        "updowncounter",
        "{connection}",
        ("db.client.connection.pool.name",),
        "The most connections the pool may open.",
    ),
    Spec(
        "db.client.connection.pending_requests",
        "updowncounter",
        "{request}",
        ("db.client.connection.pool.name",),
        "Requests waiting for a connection from the pool.",
    ),
    Spec(
        "db.client.connection.wait_time",
        "histogram",
        "s",
        ("db.client.connection.pool.name",),
        "Time to obtain a connection from the pool.",
    ),
    Spec(
        "db.client.connection.timeouts",
        "counter",
        "{timeout}",
        ("db.client.connection.pool.name",),
        "Connection requests that timed out waiting for the pool.",
    ),
    # opentelemetry-instrumentation-system-metrics (otel/runtime.py selects these)
    Spec(
        "process.cpu.time",
        "counter",
        "s",
        ("type",),
        "Total CPU seconds broken down by different states.",
    ),
    Spec(
        "process.memory.usage",
        "updowncounter",
        "By",
        (),
        "The amount of physical memory in use.",
    ),
    Spec(
        "process.open_file_descriptor.count",
        "updowncounter",
        "",
        (),
        "Number of file descriptors in use by the process.",
    ),
    Spec("process.thread.count", "updowncounter", "", (), "Process threads count."),
    Spec(
        "cpython.gc.collections",
        "counter",
        "{collection}",
        ("cpython.gc.generation",),
        "The number of times a generation was collected since interpreter start.",
    ),
)


SPECS: dict[str, Spec] = {spec.name: spec for spec in CATALOGUE}
#: Gauges fed by a snapshot source (:meth:`BusinessMetrics.set_gauge_source`).
SOURCED_GAUGES = (
    "trawl.job.active",
    "trawl.queue.depth",
    "trawl.queue.oldest_age",
    "trawl.queue.stream.length",
    "trawl.queue.stream.pending",
    "trawl.worker.capacity",
)


def size_bucket(urls: int) -> str:
    return "1" if urls <= 1 else "2-10" if urls <= 10 else "11-100" if urls <= 100 else "101+"


def outcome(value: str) -> str:
    return str(otel.safe_attr(value, OUTCOMES))


def meter() -> metrics.Meter:
    """The ``trawl`` meter of the installed provider (a no-op one before ``otel.configure``):
    every ``trawl.*`` instrument of the app lives on it (one instrumentation scope)."""
    return otel.meter("trawl")


def counter(meter: metrics.Meter, name: str) -> metrics.Counter:
    """The counter ``name`` of the catalogue on ``meter`` (created once: asking again for it on
    the same meter returns the same instrument)."""
    spec = SPECS[name]
    return meter.create_counter(spec.name, spec.unit, spec.description)


def up_down_counter(meter: metrics.Meter, name: str) -> metrics.UpDownCounter:
    spec = SPECS[name]
    return meter.create_up_down_counter(spec.name, spec.unit, spec.description)


def create(meter: metrics.Meter, name: str) -> metrics.Counter | metrics.UpDownCounter:
    """The counter or up-down counter ``name``, whichever the catalogue says it is."""
    kind = SPECS[name].kind
    if kind == "counter":
        return counter(meter, name)
    if kind == "updowncounter":
        return up_down_counter(meter, name)
    raise ValueError(f"{name} is a {kind}, not a counter")


def histogram(meter: metrics.Meter, name: str, buckets: Sequence[float]) -> metrics.Histogram:
    spec = SPECS[name]
    return meter.create_histogram(
        spec.name,
        spec.unit,
        spec.description,
        explicit_bucket_boundaries_advisory=list(buckets),
    )


Callback = Callable[[CallbackOptions], Iterable[Observation]]


def observable_gauge(meter: metrics.Meter, name: str, callback: Callback) -> None:
    """The gauge ``name`` of the catalogue, reported by ``callback`` (which must do no I/O)."""
    spec = SPECS[name]
    meter.create_observable_gauge(spec.name, [callback], spec.unit, spec.description)


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
        self.active = up_down_counter(meter, "trawl.queue.active")
        self.reaped = self._counter("trawl.queue.reaped")
        self.errors = self._counter("trawl.errors")
        self.error_groups = self._counter("trawl.errors.groups")
        self._gauges: dict[str, dict[object, GaugeSource]] = {}
        for name in SOURCED_GAUGES:
            observable_gauge(meter, name, self._observer(name))

    def _counter(self, name: str) -> metrics.Counter:
        return counter(self._meter, name)

    def _histogram(self, name: str, buckets: Sequence[float]) -> metrics.Histogram:
        return histogram(self._meter, name, buckets)

    def _observer(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            sources = list(self._gauges.get(name, {}).values())
            return [Observation(value, attrs) for source in sources for value, attrs in source()]

        return observe

    def set_gauge_source(
        self, name: str, source: GaugeSource | None, *, owner: object = None
    ) -> None:
        """Gauges read a snapshot kept by a sampler; the callback itself does no I/O. Each
        ``owner`` (a sampler, a worker) sets or, with ``None``, removes its own source."""
        sources = self._gauges.setdefault(name, {})
        if source is None:
            sources.pop(owner, None)
        else:
            sources[owner] = source


# Keyed by the provider object itself, never its id(): a new provider may reuse the id of one
# that was collected, and would then be handed instruments that export nowhere.
_cache: tuple[metrics.MeterProvider, BusinessMetrics] | None = None


def instruments() -> BusinessMetrics:
    """The instruments for the current global meter provider (rebuilt if it changed)."""
    global _cache
    provider = metrics.get_meter_provider()
    if _cache is None or _cache[0] is not provider:
        _cache = (provider, BusinessMetrics(meter()))
    return _cache[1]
