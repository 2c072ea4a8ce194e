"""httpx transports that trace outgoing requests WITHOUT propagating context.

Scraped sites and webhook receivers are third parties: they must never see
``traceparent``/``tracestate``/``baggage`` (an anti-bot fingerprint and an internal-id leak).
These transports therefore create CLIENT spans and record ``http.client.request.duration``
(including failed requests, which the contrib instrumentation skips) but never call
``propagate.inject``. The inner call runs under ``suppress_http_instrumentation()`` so a
globally enabled ``HTTPXClientInstrumentor`` cannot inject headers behind our back.

Usage::

    client = httpx.AsyncClient(transport=otel.traced_transport(proxy=proxy_url))

The span ends when response headers arrive (the body may still be streaming).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.utils import suppress_http_instrumentation
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel._setup import SIGNALS
from otel.db import under_unsampled_parent
from otel.errors import exception_attributes, type_name
from otel.metrics import DURATION_BUCKETS_S, normalize_method
from otel.redact import redact_url

__all__ = ["AsyncTracedTransport", "TracedTransport", "traced_transport"]

_log = logging.getLogger("otel")
_SCOPE = "otel.http_client"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Recorder:
    """Span + duration bookkeeping shared by the sync and async transports."""

    def __init__(self) -> None:
        self._tracer = trace.get_tracer(_SCOPE)
        self._duration = metrics.get_meter(_SCOPE).create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS_S),
        )

    @contextmanager
    def request(self, request: httpx.Request) -> Iterator[dict[str, Any]]:
        method = normalize_method(request.method)
        attrs: dict[str, Any] = {"http.request.method": method}
        if method == "_OTHER":
            attrs["http.request.method_original"] = request.method
        if not SIGNALS.tracing or under_unsampled_parent():
            # metrics only, or off, or inside an unsampled span under a parent-based sampler
            # (nothing below it can be sampled): no span, no span attributes, no URL redaction
            with self._measured(attrs) as measured:
                yield measured
            return
        url = request.url
        span_attrs = dict(attrs)
        span_attrs["server.address"] = url.host
        span_attrs["server.port"] = url.port or _DEFAULT_PORTS.get(url.scheme, 0)
        span_attrs["url.full"] = redact_url(str(url.copy_with(username=None, password=None)))
        name = "HTTP" if method == "_OTHER" else method
        start = time.perf_counter()
        outcome: dict[str, Any] = {}
        with self._tracer.start_as_current_span(
            name,
            kind=SpanKind.CLIENT,
            attributes=span_attrs,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield outcome
            except BaseException as exc:
                attrs["error.type"] = type_name(exc)
                try:
                    span.set_attribute("error.type", attrs["error.type"])
                    span.add_event("exception", exception_attributes(exc))  # redacted
                    span.set_status(Status(StatusCode.ERROR, attrs["error.type"]))
                except Exception:
                    _log.debug("span error recording failed", exc_info=True)
                raise
            else:
                status = outcome.get("status")
                if isinstance(status, int):
                    attrs["http.response.status_code"] = status
                    span.set_attribute("http.response.status_code", status)
                    if status >= 400:
                        attrs["error.type"] = str(status)
                        span.set_attribute("error.type", str(status))
                        span.set_status(Status(StatusCode.ERROR))
                version = outcome.get("version")
                if isinstance(version, str) and version.startswith("HTTP/"):
                    attrs["network.protocol.version"] = version[5:]
            finally:
                try:
                    self._duration.record(time.perf_counter() - start, attrs)
                except Exception:
                    _log.debug("duration recording failed", exc_info=True)

    @contextmanager
    def _measured(self, attrs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The duration histogram alone, with the same attributes as the traced path."""
        start = time.perf_counter()
        outcome: dict[str, Any] = {}
        try:
            yield outcome
        except BaseException as exc:
            attrs["error.type"] = type_name(exc)
            raise
        else:
            status = outcome.get("status")
            if isinstance(status, int):
                attrs["http.response.status_code"] = status
                if status >= 400:
                    attrs["error.type"] = str(status)
            version = outcome.get("version")
            if isinstance(version, str) and version.startswith("HTTP/"):
                attrs["network.protocol.version"] = version[5:]
        finally:
            if SIGNALS.metrics:
                try:
                    self._duration.record(time.perf_counter() - start, attrs)
                except Exception:
                    _log.debug("duration recording failed", exc_info=True)


def _outcome(outcome: dict[str, Any], response: httpx.Response) -> None:
    outcome["status"] = response.status_code
    outcome["version"] = response.extensions.get("http_version", b"").decode("ascii", "replace")


class AsyncTracedTransport(httpx.AsyncBaseTransport):
    """Wraps an ``httpx.AsyncBaseTransport``; spans + metrics, no context propagation."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner
        self._rec = _Recorder()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with self._rec.request(request) as outcome:
            with suppress_http_instrumentation():
                response = await self._inner.handle_async_request(request)
            _outcome(outcome, response)
            return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class TracedTransport(httpx.BaseTransport):
    """Sync variant of :class:`AsyncTracedTransport`."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner
        self._rec = _Recorder()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._rec.request(request) as outcome:
            with suppress_http_instrumentation():
                response = self._inner.handle_request(request)
            _outcome(outcome, response)
            return response

    def close(self) -> None:
        self._inner.close()


def traced_transport(
    inner: httpx.AsyncBaseTransport | None = None, **transport_kwargs: Any
) -> AsyncTracedTransport:
    """``AsyncTracedTransport`` around ``inner`` or a new ``httpx.AsyncHTTPTransport(**kwargs)``."""
    return AsyncTracedTransport(inner or httpx.AsyncHTTPTransport(**transport_kwargs))
