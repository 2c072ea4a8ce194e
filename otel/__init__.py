"""Trawl telemetry SDK: OpenTelemetry setup, JSON logs, error grouping, redaction.

Never imports ``app``; never raises into the caller. This module is the package's public face:
the application imports ``otel`` and uses the names in ``__all__``, never a submodule (an
import-linter contract). See docs/telemetry-sdk.md.

    tel = otel.configure("trawl-api", service_version=__version__)
    otel.configure_logging("INFO")
    ...
    otel.shutdown()
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace.export import SpanExporter

# _semconv sets OTEL_SEMCONV_STABILITY_OPT_IN; it sorts (and so runs) before any module
# below that touches contrib instrumentations.
from otel import _semconv, _setup
from otel._setup import DEFAULT_SHUTDOWN_TIMEOUT_S, Telemetry
from otel.asgi import TelemetryMiddleware
from otel.collector import collector_endpoint
from otel.context import bind_context, current_context, reset_context, set_context
from otel.errors import GROUP_KEY_ATTR, fingerprint, record_exception
from otel.export_stats import export_failures
from otel.http_client import traced_transport
from otel.instrument import instrument_redis, instrument_sqlalchemy, quiet_unless_sampled
from otel.logs import configure_logging
from otel.metrics import DURATION_BUCKETS_S, meter, safe_attr
from otel.redact import redact_text, redact_url, redact_value
from otel.runtime import LoopMonitor, instrument_runtime
from otel.sentry import close_sentry, init_sentry

__all__ = [
    "DURATION_BUCKETS_S",
    "GROUP_KEY_ATTR",
    "LoopMonitor",
    "Telemetry",
    "TelemetryMiddleware",
    "bind_context",
    "close_sentry",
    "collector_endpoint",
    "configure",
    "configure_logging",
    "current_context",
    "export_failures",
    "fingerprint",
    "force_flush",
    "init_sentry",
    "instrument_redis",
    "instrument_runtime",
    "instrument_sqlalchemy",
    "meter",
    "prometheus_exposition",
    "quiet_unless_sampled",
    "record_exception",
    "redact_text",
    "redact_url",
    "redact_value",
    "reset_context",
    "safe_attr",
    "set_context",
    "shutdown",
    "suppress_instrumentation",
    "traced_transport",
]

_log = logging.getLogger("otel")
del _semconv


def configure(
    service_name: str,
    *,
    service_version: str,
    environment: str | None = None,
    extra_resource: Mapping[str, Any] | None = None,
    span_exporter: SpanExporter | None = None,
    metric_readers: Sequence[MetricReader] | None = None,
    log_exporter: LogRecordExporter | None = None,
    cardinality_limit: int = _setup.DEFAULT_CARDINALITY_LIMIT,
    set_global: bool = True,
    prometheus_port: int = _setup.PROMETHEUS_DEFAULT_PORT,
) -> Telemetry:
    """Install tracer, meter and logger providers for this process from ``OTEL_*`` env vars.

    Call once per process (in each worker after fork). A second call in the same process
    returns the existing handle. ``span_exporter`` / ``metric_readers`` / ``log_exporter``
    replace the env-selected exporters (tests). ``OTEL_SDK_DISABLED=true`` installs nothing.
    Configuration errors are logged as warnings and yield a disabled (no-op) handle.
    ``prometheus_port`` is the scrape endpoint's port when ``OTEL_METRICS_EXPORTER`` includes
    ``prometheus`` and ``OTEL_EXPORTER_PROMETHEUS_PORT`` is unset (one per process role, so
    that an API and a worker on one host do not compete for a port).
    """
    current = _setup.active()
    if current is not None and current.pid == os.getpid():
        _log.warning("otel.configure() called twice; keeping the first configuration")
        return current
    fallback = Telemetry(service_name=service_name, instance_id="")
    try:
        if _setup.sdk_disabled():
            _setup.set_active(fallback)
            return fallback
        if set_global:
            _setup.prepare_globals()
        tel = _setup.install(
            service_name,
            service_version=service_version,
            environment=environment,
            extra_resource=extra_resource,
            span_exporter=span_exporter,
            metric_readers=metric_readers,
            log_exporter=log_exporter,
            cardinality_limit=cardinality_limit,
            set_global=set_global,
            prometheus_port=prometheus_port,
        )
    except Exception:
        _log.warning("telemetry configuration failed; running without telemetry", exc_info=True)
        _setup.set_active(fallback)
        return fallback
    _setup.set_active(tel)
    return tel


def shutdown(timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S) -> bool:
    """Flush and shut down the active providers within ``timeout_s``. Never raises."""
    tel = _setup.active()
    return True if tel is None else tel.shutdown(timeout_s)


def force_flush(timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S) -> bool:
    """Export everything buffered so far, within ``timeout_s``. Never raises."""
    tel = _setup.active()
    return True if tel is None else tel.force_flush(timeout_s)


def prometheus_exposition() -> tuple[bytes, str] | None:
    """The scrape exporter's current exposition (body, content type), for serving
    ``/metrics`` on an application port; ``None`` when the ``prometheus`` exporter is off.
    Runs every metric callback: call it off the event loop. Never raises."""
    tel = _setup.active()
    registry = None if tel is None else tel.prometheus_registry
    if registry is None:
        return None
    try:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(registry), CONTENT_TYPE_LATEST
    except Exception:
        _log.warning("prometheus exposition failed", exc_info=True)
        return None
