"""Provider setup from the standard OTEL_* environment variables."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    ConsoleLogRecordExporter,
    LogRecordExporter,
)
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased

from otel import fastpath
from otel.export_stats import (
    STATS,
    CountingBatchLogRecordProcessor,
    CountingBatchSpanProcessor,
    CountingMetricExporter,
)
from otel.metrics import default_views
from otel.sampling import PresetIdGenerator
from otel.scrub import RedactingSpanExporter

_log = logging.getLogger("otel")

DEFAULT_NAMESPACE = "trawl"
DEFAULT_CARDINALITY_LIMIT = 2000
DEFAULT_SHUTDOWN_TIMEOUT_S = 5.0
#: Metric export interval when ``OTEL_METRIC_EXPORT_INTERVAL`` is unset (the SDK's own default
#: is 60 s, which alone would eat half of a two-minute alerting budget; docs/telemetry.md).
DEFAULT_METRIC_EXPORT_INTERVAL_MS = 10_000
PROMETHEUS_DEFAULT_HOST = "127.0.0.1"
PROMETHEUS_DEFAULT_PORT = 9464
#: Resource attributes the scrape exporter copies onto every series as labels, so rules and
#: dashboards select the same ``service_name`` / ``deployment_environment_name`` labels on
#: the scrape path as on the OTLP path (where the collector copies them; docs/telemetry.md).
PROMETHEUS_RESOURCE_LABELS: frozenset[str] = frozenset(
    {"service.name", "deployment.environment.name"}
)

_SIGNAL_ENV = {"traces": "TRACES", "metrics": "METRICS", "logs": "LOGS"}
_NO_EXEMPLARS = AlwaysOffExemplarFilter()


class _Signals:
    """What the global providers installed by :func:`install` do, read on hot paths (one
    attribute load): ``tracing`` only with an SDK tracer provider (a trace exporter is
    configured), ``metrics`` with an SDK meter provider. Both false until configured, with
    ``OTEL_SDK_DISABLED=true``, and after a reset."""

    __slots__ = ("metrics", "parent_based", "tracing")

    def __init__(self) -> None:
        self.tracing = False
        self.metrics = False
        #: the sampler follows the parent's decision (the default ``parentbased_*`` samplers):
        #: a child of an unsampled span is never sampled, so it need not be built at all
        self.parent_based = False


SIGNALS = _Signals()


@dataclass
class Telemetry:
    """Handle returned by :func:`configure`. Providers are ``None`` when disabled."""

    service_name: str
    instance_id: str
    resource: Resource | None = None
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    logger_provider: LoggerProvider | None = None
    pid: int = field(default_factory=os.getpid)
    #: The scrape exporter's registry and the ``(host, port)`` its HTTP server listens on,
    #: when ``OTEL_METRICS_EXPORTER`` includes ``prometheus``.
    prometheus_registry: Any = field(default=None, repr=False)
    prometheus_address: tuple[str, int] | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _stoppers: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _shut: bool = field(default=False, repr=False)

    @property
    def enabled(self) -> bool:
        """Providers were installed (``OTEL_SDK_DISABLED`` unset, configuration valid). The
        tracer provider may still be absent: no trace exporter means no spans at all."""
        return self.meter_provider is not None or self.tracer_provider is not None

    def force_flush(self, timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S) -> bool:
        """Flush all signals; returns False on timeout or error. Never raises."""
        calls: list[Callable[[], object]] = []
        if self.tracer_provider is not None:
            calls.append(self.tracer_provider.force_flush)
        if self.meter_provider is not None:
            calls.append(self.meter_provider.force_flush)
        if self.logger_provider is not None:
            calls.append(self.logger_provider.force_flush)
        return _run_bounded("force_flush", calls, timeout_s)

    def shutdown(self, timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S) -> bool:
        """Flush and shut down providers within ``timeout_s`` (all signals in parallel).

        If the deadline passes (e.g. collector down and exporters retrying), exporters are
        shut down directly, which aborts their retry back-off, and we return ``False``.
        Never raises.
        """
        if self._shut:
            return True
        self._shut = True
        calls: list[Callable[[], object]] = []
        if self.tracer_provider is not None:
            calls.append(self.tracer_provider.shutdown)
        if self.meter_provider is not None:
            mp = self.meter_provider
            calls.append(lambda: mp.shutdown(timeout_millis=timeout_s * 1000))
        if self.logger_provider is not None:
            calls.append(self.logger_provider.shutdown)
        ok = _run_bounded("shutdown", calls, timeout_s)
        STATS.log_summary()
        for stop in self._stoppers:
            try:
                stop()
            except Exception:
                _log.debug("telemetry stop step failed", exc_info=True)
        if not ok:
            for close in self._closers:
                try:
                    close()
                except Exception:
                    _log.debug("exporter abort failed", exc_info=True)
        return ok


def _run_bounded(what: str, calls: Sequence[Callable[[], object]], timeout_s: float) -> bool:
    results: list[bool] = []

    def run(call: Callable[[], object]) -> None:
        try:
            out = call()
            results.append(out is not False)
        except Exception:
            _log.debug("telemetry %s failed", what, exc_info=True)
            results.append(False)

    threads = [
        threading.Thread(target=run, args=(c,), daemon=True, name=f"otel-{what}") for c in calls
    ]
    deadline = time.monotonic() + max(timeout_s, 0.0)
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(deadline - time.monotonic(), 0.0))
    done = not any(t.is_alive() for t in threads)
    if not done:
        _log.warning("telemetry %s did not finish within %.1fs", what, timeout_s)
    return done and all(results)


# --------------------------------------------------------------------------- env parsing


def _env(name: str) -> str | None:
    val = os.environ.get(name)
    if val is None:
        return None
    val = val.strip()
    return val or None


def sdk_disabled() -> bool:
    return (_env("OTEL_SDK_DISABLED") or "").lower() == "true"


def _exporter_names(signal: str) -> list[str]:
    raw = _env(f"OTEL_{_SIGNAL_ENV[signal]}_EXPORTER") or "otlp"
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    if "none" in names:
        return []
    return names


def _check_protocol(signal: str) -> None:
    proto = _env(f"OTEL_EXPORTER_OTLP_{_SIGNAL_ENV[signal]}_PROTOCOL") or _env(
        "OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    if proto is None or proto.lower() == "http/protobuf":
        return
    _log.warning(
        "OTLP protocol %r is not supported for %s (only http/protobuf is installed); "
        "falling back to http/protobuf - point the endpoint at the collector's HTTP port (4318)",
        proto,
        signal,
    )


# --------------------------------------------------------------------------- resource


def build_resource(
    service_name: str,
    service_version: str,
    environment: str | None,
    extra: Mapping[str, Any] | None,
) -> Resource:
    """Resource with a fresh ``service.instance.id`` (uuid4) for this process.

    Precedence (highest first): ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``,
    ``extra``, the arguments, defaults. ``service.instance.id`` is always generated.
    """
    attrs: dict[str, Any] = {
        "service.name": service_name,
        "service.namespace": DEFAULT_NAMESPACE,
        "service.version": service_version,
    }
    if environment:
        attrs["deployment.environment.name"] = environment
    if extra:
        attrs.update(extra)
    attrs.update(OTELResourceDetector().detect().attributes)
    attrs["service.instance.id"] = str(uuid.uuid4())
    return Resource.create(attrs)


# --------------------------------------------------------------------------- exporters


def _span_exporters(closers: list[Callable[[], None]]) -> list[SpanExporter]:
    out: list[SpanExporter] = []
    for name in _exporter_names("traces"):
        if name == "otlp":
            _check_protocol("traces")
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exp = OTLPSpanExporter()
            closers.append(exp.shutdown)
            out.append(exp)
        elif name == "console":
            out.append(ConsoleSpanExporter())
        else:
            _log.warning("unsupported OTEL_TRACES_EXPORTER value %r ignored", name)
    return out


def _log_exporters(closers: list[Callable[[], None]]) -> list[LogRecordExporter]:
    out: list[LogRecordExporter] = []
    for name in _exporter_names("logs"):
        if name == "otlp":
            _check_protocol("logs")
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

            exp = OTLPLogExporter()
            closers.append(exp.shutdown)
            out.append(exp)
        elif name == "console":
            out.append(ConsoleLogRecordExporter())
        else:
            _log.warning("unsupported OTEL_LOGS_EXPORTER value %r ignored", name)
    return out


def _limits(limit: int) -> dict[type, int]:
    return {
        t: limit
        for t in (
            Counter,
            UpDownCounter,
            Histogram,
            ObservableCounter,
            ObservableUpDownCounter,
            ObservableGauge,
        )
    }


def metric_export_interval_ms() -> float | None:
    """``None`` when ``OTEL_METRIC_EXPORT_INTERVAL`` is set (the SDK reads and validates it),
    else :data:`DEFAULT_METRIC_EXPORT_INTERVAL_MS`."""
    return None if _env("OTEL_METRIC_EXPORT_INTERVAL") else DEFAULT_METRIC_EXPORT_INTERVAL_MS


def _periodic(exporter: MetricExporter, limit: int) -> PeriodicExportingMetricReader:
    return PeriodicExportingMetricReader(
        exporter,
        export_interval_millis=metric_export_interval_ms(),
        cardinality_limits=_limits(limit),
    )


@dataclass
class PrometheusEndpoint:
    reader: MetricReader
    registry: Any
    address: tuple[str, int]
    stop: Callable[[], None]


def prometheus_endpoint(limit: int, default_port: int) -> PrometheusEndpoint | None:
    """The scrape exporter: a reader on a registry of its own (nothing else of
    ``prometheus_client`` on it, so the scrape shows exactly what OTLP carries), served by
    ``prometheus_client``'s HTTP server in a background thread (it answers even while the
    event loop is blocked). ``None``, with a warning, when the port is taken."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, start_http_server

    host = _env("OTEL_EXPORTER_PROMETHEUS_HOST") or PROMETHEUS_DEFAULT_HOST
    port = int(_env("OTEL_EXPORTER_PROMETHEUS_PORT") or default_port)
    registry = CollectorRegistry(auto_describe=False)
    try:
        server, thread = start_http_server(port=port, addr=host, registry=registry)
    except OSError as exc:
        _log.warning("prometheus scrape endpoint %s:%s not started: %s", host, port, exc)
        return None
    reader = PrometheusMetricReader(
        registry=registry,
        resource_attribute_filter=PROMETHEUS_RESOURCE_LABELS.__contains__,
        cardinality_limits=_limits(limit),
    )

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=1.0)

    return PrometheusEndpoint(reader, registry, (host, int(server.server_port)), stop)


def _metric_readers(
    tel: Telemetry, closers: list[Callable[[], None]], limit: int, prometheus_port: int
) -> list[MetricReader]:
    out: list[MetricReader] = []
    for name in _exporter_names("metrics"):
        if name == "otlp":
            _check_protocol("metrics")
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            exp = OTLPMetricExporter()
            closers.append(exp.shutdown)
            out.append(_periodic(CountingMetricExporter(exp), limit))
        elif name == "console":
            out.append(_periodic(ConsoleMetricExporter(), limit))
        elif name == "prometheus":
            endpoint = prometheus_endpoint(limit, prometheus_port)
            if endpoint is not None:
                tel.prometheus_registry = endpoint.registry
                tel.prometheus_address = endpoint.address
                tel._stoppers.append(endpoint.stop)
                out.append(endpoint.reader)
        else:
            _log.warning("unsupported OTEL_METRICS_EXPORTER value %r ignored", name)
    return out


# --------------------------------------------------------------------------- globals


def _reset_global_providers() -> None:
    """Allow the global providers to be replaced (fork child or tests).

    The API only lets each global provider be set once per process; a forked worker
    inherits the parent's providers (and its ``service.instance.id``) and must replace
    them. Touches private API, hence guarded.
    """
    SIGNALS.tracing = SIGNALS.metrics = SIGNALS.parent_based = False
    try:
        from opentelemetry import _logs as logs_api
        from opentelemetry.metrics import _internal as metrics_internal
        from opentelemetry.util._once import Once

        trace._TRACER_PROVIDER_SET_ONCE = Once()
        trace._TRACER_PROVIDER = None
        metrics_internal._METER_PROVIDER_SET_ONCE = Once()
        metrics_internal._METER_PROVIDER = None
        logs_internal = logs_api._internal
        logs_internal._LOGGER_PROVIDER_SET_ONCE = Once()
        logs_internal._LOGGER_PROVIDER = None
    except Exception:
        _log.warning("could not reset global OpenTelemetry providers", exc_info=True)


def install(
    service_name: str,
    *,
    service_version: str,
    environment: str | None,
    extra_resource: Mapping[str, Any] | None,
    span_exporter: SpanExporter | None,
    metric_readers: Sequence[MetricReader] | None,
    log_exporter: LogRecordExporter | None,
    cardinality_limit: int,
    set_global: bool,
    prometheus_port: int = PROMETHEUS_DEFAULT_PORT,
) -> Telemetry:
    resource = build_resource(service_name, service_version, environment, extra_resource)
    attrs = resource.attributes
    tel = Telemetry(
        service_name=str(attrs.get("service.name", service_name)),
        instance_id=str(attrs["service.instance.id"]),
        resource=resource,
    )
    closers = tel._closers

    # Traces: sampler comes from OTEL_TRACES_SAMPLER(_ARG) (SDK default parentbased_always_on).
    # No trace exporter (OTEL_TRACES_EXPORTER=none, "metrics only"): no SDK tracer provider at
    # all, so the API's no-op tracer builds no span object, and the span-only instrumentation
    # (contrib SQLAlchemy and Redis) is not installed (otel/instrument.py).
    span_exporters = [span_exporter] if span_exporter is not None else _span_exporters(closers)
    # Every lost span, log record and metric data point is counted (otel/export_stats.py).
    STATS.bind(lambda: tel.meter_provider)
    tp: TracerProvider | None = None
    if span_exporters:
        # the SDK's random ids, with the next trace id settable: the HTTP middleware decides a
        # root request's sampling before building a span, and hands a sampled id to the SDK
        # (otel/sampling.py)
        tp = TracerProvider(
            resource=resource, shutdown_on_exit=False, id_generator=PresetIdGenerator()
        )
        for sx in span_exporters:  # every span is redacted before export (otel/scrub.py)
            tp.add_span_processor(CountingBatchSpanProcessor(RedactingSpanExporter(sx)))
    tel.tracer_provider = tp

    readers = (
        list(metric_readers)
        if metric_readers is not None
        else _metric_readers(tel, closers, cardinality_limit, prometheus_port)
    )
    # Without traces no exemplar could point anywhere: skip the per-measurement span lookup
    # of the default trace-based filter (OTEL_METRICS_EXEMPLAR_FILTER still wins).
    exemplars = None if tp is not None or _env("OTEL_METRICS_EXEMPLAR_FILTER") else _NO_EXEMPLARS
    # The SDK's histograms and counters skip its per-call overhead for attribute sets seen
    # before (otel/fastpath.py); TRAWL_FAST_METRICS=false keeps the SDK's own path throughout.
    if (_env("TRAWL_FAST_METRICS") or "true").lower() != "false":
        fastpath.install()
    else:
        fastpath.uninstall()
    tel.meter_provider = MeterProvider(
        resource=resource,
        metric_readers=readers,
        views=default_views(),
        shutdown_on_exit=False,
        exemplar_filter=exemplars,
    )

    # No log exporter (OTEL_LOGS_EXPORTER=none): no logger provider, so the OTLP bridge
    # (otel/logs.py) turns each record away at once instead of building it for nobody.
    log_exporters = [log_exporter] if log_exporter is not None else _log_exporters(closers)
    lp: LoggerProvider | None = None
    if log_exporters:
        lp = LoggerProvider(resource=resource, shutdown_on_exit=False)
        for lx in log_exporters:
            lp.add_log_record_processor(CountingBatchLogRecordProcessor(lx))
    tel.logger_provider = lp

    if set_global:
        if tp is not None:
            trace.set_tracer_provider(tp)
        metrics.set_meter_provider(tel.meter_provider)
        if lp is not None:
            set_logger_provider(lp)
        SIGNALS.tracing = tp is not None
        SIGNALS.metrics = True
        SIGNALS.parent_based = tp is not None and isinstance(tp.sampler, ParentBased)
    STATS.precreate()
    return tel


_active: Telemetry | None = None
_lock = threading.Lock()
_atexit_registered = False
_globals_pid: int | None = None


def prepare_globals() -> None:
    """Reset inherited global providers when running in a forked child."""
    global _globals_pid
    pid = os.getpid()
    if _globals_pid is not None and _globals_pid != pid:
        _reset_global_providers()
    _globals_pid = pid


def reset() -> None:
    """Shut down the active handle and clear global providers (tests, fork children)."""
    global _active, _globals_pid
    tel = _active
    _active = None
    if tel is not None:
        tel.shutdown(timeout_s=2.0)
    STATS.reset()
    _reset_global_providers()
    _globals_pid = None


def active() -> Telemetry | None:
    return _active


def set_active(tel: Telemetry | None) -> None:
    global _active, _atexit_registered
    with _lock:
        _active = tel
        if tel is not None and tel.enabled and not _atexit_registered:
            atexit.register(_shutdown_at_exit)
            _atexit_registered = True


def _shutdown_at_exit() -> None:
    tel = _active
    if tel is not None and tel.pid == os.getpid():
        tel.shutdown()


def _after_fork_in_child() -> None:
    # The inherited handle belongs to the parent: its instance id and exporter threads are
    # not ours. configure() in the child builds fresh providers with a new instance id.
    global _active
    _active = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
