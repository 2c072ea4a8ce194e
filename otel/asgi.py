"""Lean pure-ASGI server middleware: one SERVER span + ``http.server.request.duration``.

Cheaper than the contrib FastAPI instrumentation: no per-request route re-matching
(``http.route`` is read from ``scope["route"]`` after the app has handled the request),
no ``receive``/``send`` spans, no size histograms. Excluded paths are anchored regexes
matched against the path only (not ``scheme://host/path``) and skip spans and metrics.

An incoming ``traceparent`` is a request from the caller, not an order: unless
``trust_incoming`` is set, the SERVER span starts a new trace (sampled by our own sampler, with
our own trace id) and keeps the caller's span as a **link**, and the caller's ``tracestate``
and ``baggage`` are ignored. A public client therefore cannot force sampling (a flood of
``-01`` headers) nor pick the trace id that a ratio sampler decides on. Behind a gateway that
samples for us, ``trust_incoming=True`` continues the caller's trace with its decision.

    app.add_middleware(otel.asgi.TelemetryMiddleware)   # add last, at app construction
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from opentelemetry import context, metrics, propagate, trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from otel._setup import SIGNALS
from otel.errors import record_exception, type_name
from otel.metrics import DURATION_BUCKETS_S, normalize_method

__all__ = ["DEFAULT_EXCLUDED", "TelemetryMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_EXCLUDED: tuple[str, ...] = (r"^/health", r"^/metrics$")
_PROPAGATION_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})
_SCOPE = "otel.asgi"
_log = logging.getLogger("otel")


def _route(scope: Scope) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


class TelemetryMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        excluded: Sequence[str] = DEFAULT_EXCLUDED,
        in_app: tuple[str, ...] = ("app",),
        trust_incoming: bool = False,
    ) -> None:
        self.app = app
        self.in_app = in_app
        self.trust_incoming = trust_incoming
        self._excluded = re.compile("|".join(f"(?:{p})" for p in excluded)) if excluded else None
        self._tracer = trace.get_tracer(_SCOPE)
        self._duration = metrics.get_meter(_SCOPE).create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Duration of HTTP server requests.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS_S),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            not (SIGNALS.tracing or SIGNALS.metrics)  # telemetry off: nothing at all
            or scope.get("type") != "http"
            or (self._excluded is not None and self._excluded.search(scope.get("path", "")))
        ):
            await self.app(scope, receive, send)
            return
        if not SIGNALS.tracing:
            await self._measure(scope, receive, send)
            return

        start = time.perf_counter()
        method = normalize_method(scope.get("method"))
        attrs: dict[str, Any] = {
            "http.request.method": method,
            "url.scheme": scope.get("scheme", "http"),
        }
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope.get("headers", ())
            if k in _PROPAGATION_HEADERS
        }
        parent, links = self._parent(carrier)
        span_attrs = dict(attrs)
        span_attrs["url.path"] = scope.get("path", "")
        span = self._tracer.start_span(
            "HTTP" if method == "_OTHER" else method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=span_attrs,
            links=links,
        )
        ctx = trace.set_span_in_context(span, parent)
        if SIGNALS.parent_based and not span.get_span_context().trace_flags.sampled:
            # nothing below can be sampled: the contrib SQLAlchemy/Redis instrumentations
            # skip the request entirely (they build names, attributes and spans first and ask
            # the sampler last). Metrics are recorded as usual.
            ctx = context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, ctx)
        token = context.attach(ctx)
        status: list[int] = []

        async def send_wrapper(message: Message) -> None:
            if message.get("type") == "http.response.start":
                status.append(int(message.get("status", 0)))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException as exc:
            attrs["error.type"] = type_name(exc)
            record_exception(span, exc, in_app=self.in_app)
            raise
        finally:
            try:
                self._finish(scope, span, attrs, status, method, start)
            finally:
                context.detach(token)

    async def _measure(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Metrics only (no trace exporter): the duration histogram, no span, no context."""
        start = time.perf_counter()
        status = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message.get("status", 0))
            await send(message)

        error: str | None = None
        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException as exc:
            error = type_name(exc)
            raise
        finally:
            try:
                attrs: dict[str, Any] = {
                    "http.request.method": normalize_method(scope.get("method")),
                    "url.scheme": scope.get("scheme", "http"),
                }
                route = _route(scope)
                if route is not None:
                    attrs["http.route"] = route
                if status:
                    attrs["http.response.status_code"] = status
                    if status >= 500 and error is None:
                        error = str(status)
                if error is not None:
                    attrs["error.type"] = error
                self._duration.record(time.perf_counter() - start, attrs)
            except Exception:
                _log.debug("request telemetry failed", exc_info=True)

    def _parent(self, carrier: dict[str, str]) -> tuple[context.Context | None, list[Link]]:
        """The parent context for the SERVER span, and links: the caller's context itself when
        trusted; else none, and the caller's span (when valid) as a link."""
        if not carrier:
            return None, []
        try:
            extracted = propagate.extract(carrier)
            if self.trust_incoming:
                return extracted, []
            remote = trace.get_current_span(extracted).get_span_context()
            return None, [Link(remote)] if remote.is_valid else []
        except Exception:
            _log.debug("trace context extraction failed", exc_info=True)
            return None, []

    def _finish(
        self,
        scope: Scope,
        span: trace.Span,
        attrs: dict[str, Any],
        status: list[int],
        method: str,
        start: float,
    ) -> None:
        try:
            route = _route(scope)
            if route is not None:
                attrs["http.route"] = route
                span.update_name(f"{method if method != '_OTHER' else 'HTTP'} {route}")
            if status:
                code = status[0]
                attrs["http.response.status_code"] = code
                if code >= 500:
                    attrs.setdefault("error.type", str(code))
                    span.set_status(Status(StatusCode.ERROR))
            span.set_attributes(attrs)
            span.end()
            self._duration.record(time.perf_counter() - start, attrs)
        except Exception:
            _log.debug("request telemetry failed", exc_info=True)
