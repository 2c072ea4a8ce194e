"""The last line of defence for spans: a ``SpanExporter`` wrapper that redacts before export.

Trawl's own code records exceptions and URLs redacted at the source (``otel.record_exception``,
``otel.redact.redact_url``). Spans made elsewhere are not: the SDK records ``str(exc)`` and the
raw traceback when an exception escapes a ``start_as_current_span`` block, and the SQLAlchemy
instrumentation puts the driver's message (which can echo a bound value) in the span status.
This wrapper runs in the batch processor's export thread, off the request path, and copies a
span only when something in it had to be masked:

* ``exception`` events: ``exception.message`` and ``exception.stacktrace`` (database errors lose
  their quoted literals too);
* the status description;
* URL attributes (``url.full``, ``url.query``, ``http.url``, …);
* any string attribute whose *key* names a secret (``…authorization``, ``…api_key``).

Other attributes are left alone: generic text rules would mangle ordinary data such as
parameterised SQL (``key_hash = $1``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from otel.redact import (
    MASK,
    is_db_error_type,
    is_sensitive_key,
    redact_db_message,
    redact_text,
    redact_traceback,
    redact_url,
)

__all__ = ["RedactingSpanExporter", "scrub_span"]

_log = logging.getLogger("otel")

URL_ATTRIBUTES = frozenset(
    {"url.full", "url.query", "url.original", "http.url", "http.target", "url.fragment"}
)
_DB_SYSTEM = ("db.system.name", "db.system")


def _scrub_attrs(attrs: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A redacted copy of ``attrs``, or ``None`` when nothing had to change."""
    if not attrs:
        return None
    changed: dict[str, Any] = {}
    for key, value in attrs.items():
        if not isinstance(value, str):
            continue
        if key in URL_ATTRIBUTES:
            new = redact_url(value)
        elif is_sensitive_key(key):
            new = MASK
        else:
            continue
        if new != value:
            changed[key] = new
    return {**attrs, **changed} if changed else None


def _scrub_exception_event(attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    db = is_db_error_type(str(attrs.get("exception.type", "")))
    out = dict(attrs)
    message = attrs.get("exception.message")
    if isinstance(message, str):
        out["exception.message"] = (
            redact_db_message(redact_text(message)) if db else (redact_text(message))
        )
    stack = attrs.get("exception.stacktrace")
    if isinstance(stack, str):
        out["exception.stacktrace"] = redact_traceback(stack)
    return out if out != dict(attrs) else None


def _scrub_events(events: Sequence[Event]) -> list[Event] | None:
    changed = False
    out: list[Event] = []
    for event in events:
        attrs = event.attributes or {}
        new = _scrub_exception_event(attrs) if event.name == "exception" else _scrub_attrs(attrs)
        if new is None:
            out.append(event)
        else:
            changed = True
            out.append(Event(event.name, new, timestamp=event.timestamp))
    return out if changed else None


def _scrub_status(span: ReadableSpan) -> Status | None:
    status = span.status
    text = status.description
    if not text:
        return None
    attrs = span.attributes or {}
    new = redact_text(text)
    if any(attrs.get(k) for k in _DB_SYSTEM):
        new = redact_db_message(new)
    return None if new == text else Status(status.status_code, new)


def scrub_span(span: ReadableSpan) -> ReadableSpan:
    """``span`` itself when it holds nothing to mask, else a redacted copy."""
    attrs = _scrub_attrs(span.attributes)
    events = _scrub_events(span.events)
    status = _scrub_status(span)
    if attrs is None and events is None and status is None:
        return span
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attrs if attrs is not None else span.attributes,
        events=events if events is not None else span.events,
        links=span.links,
        kind=span.kind,
        status=status if status is not None else span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _safe_scrub(span: ReadableSpan) -> ReadableSpan | None:
    try:
        return scrub_span(span)
    except Exception:  # a span we cannot check is a span we do not send
        _log.debug("span redaction failed; span dropped", exc_info=True)
        return None


class RedactingSpanExporter(SpanExporter):
    """Wraps an exporter; every span passes :func:`scrub_span` first."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        clean = [s for s in (_safe_scrub(span) for span in spans) if s is not None]
        return self.inner.export(clean)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)
