"""Trace helpers: the tracer, trace context (and the request id) carried in internal messages,
and spans for work started by poll loops, linked to the trace that caused it. The queue's own
spans (``send`` / ``process``) belong to the job domain: ``app/job/telemetry.py``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import otel

_W3C = TraceContextTextMapPropagator()

__all__ = [
    "background_span",
    "carried_request_id",
    "current_request_id",
    "current_traceparent",
    "inject",
    "tracer",
]


# Keyed by the provider object (tests and a forked child install new ones): the SDK's
# get_tracer compares instrumentation scopes on every call, several times per page.
_tracer: tuple[object, trace.Tracer] | None = None


def tracer() -> trace.Tracer:
    """The app's tracer on the current provider (made once per provider)."""
    global _tracer
    provider = trace.get_tracer_provider()
    cached = _tracer
    if cached is not None and cached[0] is provider:
        return cached[1]
    made = provider.get_tracer("trawl")
    _tracer = (provider, made)
    return made


REQUEST_ID = "x-request-id"


def current_request_id() -> str | None:
    """The request id bound for the current request (``X-Request-ID``), if any."""
    return otel.current_context().get("http.request.id")


def inject() -> dict[str, str]:
    """W3C trace context of the current span and the request id, for a queue message (internal:
    never sent to third parties)."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    request_id = current_request_id()
    if request_id:
        carrier[REQUEST_ID] = request_id
    return carrier


def carried_request_id(carrier: Mapping[str, str] | None) -> str | None:
    """The request id :func:`inject` put in a message (``None`` when it came from elsewhere)."""
    return (carrier or {}).get(REQUEST_ID)


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get("traceparent")


def _link(traceparent: str | None) -> list[Link]:
    if not traceparent:
        return []
    span_ctx = trace.get_current_span(_W3C.extract({"traceparent": traceparent})).get_span_context()
    return [Link(span_ctx)] if span_ctx.is_valid else []


@contextmanager
def background_span(
    name: str,
    kind: SpanKind,
    *,
    carrier: Mapping[str, str] | None = None,
    link_traceparent: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> Iterator[trace.Span]:
    """A span for work started by a poll loop: a child of ``carrier`` when that holds a trace
    context, else a new trace linked to ``link_traceparent`` (the job's original trace).

    It starts from a fresh base context: the loops run with instrumentation suppressed (no
    spans nobody reads), and none of that must leak into this span's trace.
    """
    ctx = propagate.extract(dict(carrier or {}), context=context.Context())
    has_parent = trace.get_current_span(ctx).get_span_context().is_valid
    links = [] if has_parent else _link(link_traceparent)
    token = context.attach(ctx)
    try:
        with (
            tracer().start_as_current_span(
                name, kind=kind, links=links, attributes=attributes
            ) as span,
            otel.quiet_unless_sampled(span),  # an unsampled attempt builds no SQL/Redis spans
        ):
            yield span
    finally:
        context.detach(token)
