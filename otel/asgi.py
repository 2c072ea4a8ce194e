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
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from time import perf_counter
from typing import Any

from opentelemetry import context, metrics, propagate, trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from otel._current import SPAN_KEY as _SPAN_KEY
from otel._current import get_context as _get_context
from otel._setup import SIGNALS
from otel.errors import record_exception, type_name
from otel.fastpath import FrozenAttributes
from otel.metrics import DURATION_BUCKETS_S, HTTP_METHODS, normalize_method
from otel.sampling import RootSampling, root_sampling, unsampled_span

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
#: Attribute sets kept per middleware (routes x methods x status codes); more are built per
#: request.
_MAX_ATTRIBUTE_SETS = 512


def _has_parent(scope: Scope) -> bool:
    """The request carries a ``traceparent`` (a trusted one continues the caller's trace)."""
    return any(k == b"traceparent" for k, _v in scope.get("headers", ()))


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
        self._attrs: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._sampling: tuple[object, RootSampling | None] | None = None
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
        sampling = self._root_sampling()
        if (
            sampling is not None
            and _get_context().get(_SPAN_KEY) is None
            and (not self.trust_incoming or not _has_parent(scope))
        ):  # a root span
            trace_id, sampled = sampling.decide()
            if not sampled:  # decided before any span is built: the lean path
                await self._measure(scope, receive, send, unsampled_span(sampling, trace_id))
                return
            sampling.ids.preset(trace_id)  # the SDK draws this id and samples it
        await self._traced(scope, receive, send, sampling)

    def _root_sampling(self) -> RootSampling | None:
        """The root decision taken ahead (otel/sampling.py), cached per tracer provider."""
        provider = getattr(trace, "_TRACER_PROVIDER", None)
        cached = self._sampling
        if cached is not None and cached[0] is provider:
            return cached[1]
        sampling = root_sampling(provider) if SIGNALS.parent_based else None
        self._sampling = (provider, sampling)
        return sampling

    async def _traced(
        self, scope: Scope, receive: Receive, send: Send, sampling: RootSampling | None
    ) -> None:
        """The SERVER span (sampled, or decided by the SDK), then the duration histogram;
        ``sampling``: a trace id may be preset for the SDK, and no later span may get it."""
        start = perf_counter()
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
        try:
            span = self._tracer.start_span(
                "HTTP" if method == "_OTHER" else method,
                context=parent,
                kind=SpanKind.SERVER,
                attributes=span_attrs,
                links=links,
            )
        finally:
            if sampling is not None:
                sampling.ids.preset(0)
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

    async def _measure(
        self, scope: Scope, receive: Receive, send: Send, unsampled: Span | None = None
    ) -> None:
        """The duration histogram alone: metrics only (no trace exporter: no span, no
        context), or a root request not sampled (``unsampled``: its non-recording span is the
        current span, and the contrib instrumentations below are told to skip)."""
        start = perf_counter()
        status = 0
        token = None
        if unsampled is not None:
            token = context.attach(
                Context(
                    {**_get_context(), _SPAN_KEY: unsampled, _SUPPRESS_INSTRUMENTATION_KEY: True}
                )
            )

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
                route = getattr(scope.get("route"), "path", None)
                key = (scope.get("method"), scope.get("scheme"), route, status, error)
                attrs = self._attrs.get(key)
                if attrs is None:
                    attrs = self._attributes(key)
                self._duration.record(perf_counter() - start, attrs)
            except Exception:
                _log.debug("request telemetry failed", exc_info=True)
            if token is not None:
                context.detach(token)

    def _attributes(self, key: tuple[Any, ...]) -> dict[str, Any]:
        """``http.server.request.duration`` attributes of a (method, scheme, route, status,
        error) key, kept for the next request with the same key (their number is bounded by
        the app's routes, the known methods and the status codes it answers)."""
        method, scheme, route, status, error = key
        attrs: dict[str, Any] = {
            "http.request.method": normalize_method(method),
            "url.scheme": scheme or "http",
        }
        if isinstance(route, str):
            attrs["http.route"] = route
        if status:
            attrs["http.response.status_code"] = status
            if status >= 500 and error is None:
                error = str(status)
        if error is not None:
            attrs["error.type"] = error
        frozen = FrozenAttributes(attrs)
        # kept only for a known method as sent (anything else is "_OTHER", and its key would
        # be the client's choice)
        if method in HTTP_METHODS and len(self._attrs) < _MAX_ATTRIBUTE_SETS:
            self._attrs[key] = frozen
        return frozen

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
            self._duration.record(perf_counter() - start, attrs)
        except Exception:
            _log.debug("request telemetry failed", exc_info=True)
