"""Trace helpers for the job path: context in queue messages, queue spans (messaging semantic
conventions: ``send {stream}`` / ``process {stream}``), links on retry."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import otel
from app.queue.broker import CONSUMER_GROUP

_W3C = TraceContextTextMapPropagator()

__all__ = [
    "background_span",
    "consumer_span",
    "current_traceparent",
    "inject",
    "producer_span",
    "tracer",
]

MESSAGING_SYSTEM = "redis"  # Redis Streams (not a well-known semconv value: a custom one)


def tracer() -> trace.Tracer:
    return trace.get_tracer("trawl")


REQUEST_ID = "x-request-id"


def inject() -> dict[str, str]:
    """W3C trace context of the current span and the request id, for a queue message (internal:
    never sent to third parties)."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    request_id = otel.current_context().get("http.request.id")
    if request_id:
        carrier[REQUEST_ID] = request_id
    return carrier


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
        with tracer().start_as_current_span(
            name, kind=kind, links=links, attributes=attributes
        ) as span:
            yield span
    finally:
        context.detach(token)


@contextmanager
def producer_span(destination: str, message_count: int) -> Iterator[trace.Span]:
    """The PRODUCER span ``send {destination}`` of one batch of task messages (``destination``:
    the stream's real name, e.g. ``trawl:tasks``)."""
    with tracer().start_as_current_span(
        f"send {destination}",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.destination.name": destination,
            "messaging.batch.message_count": message_count,
        },
    ) as span:
        yield span


@contextmanager
def consumer_span(
    carrier: Mapping[str, str] | None,
    job_traceparent: str | None,
    attributes: dict[str, Any],
    *,
    destination: str,
    consumer_group: str = CONSUMER_GROUP,
) -> Iterator[trace.Span]:
    """The CONSUMER span ``process {destination}`` of one task attempt.

    A message sent from the submitting request carries its context: the attempt continues that
    trace. A message sent later (retry, reaper, dispatcher) starts a new trace linked to the
    job's original one, so a retry hours later does not stretch the request's trace.
    """
    with background_span(
        f"process {destination}",
        SpanKind.CONSUMER,
        carrier=carrier,
        link_traceparent=job_traceparent,
        attributes={
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.destination.name": destination,
            "messaging.consumer.group.name": consumer_group,
            **attributes,
        },
    ) as span:
        yield span
