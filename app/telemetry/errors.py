"""Capturing unhandled exceptions: grouping key on the span, the log record and a counter.

The key is ``otel.fingerprint``: exception type plus in-app frames (module and function, no
line numbers, no message values), so it is bounded by code paths, not by input. It has one
name everywhere: ``trawl.error.group`` (span, exception event, log line, OTLP log record,
the ``trawl.errors`` counter).

The error's context (API key id, never the key; job, task and request ids; the route or the
target domain) goes on the span, the log line and the error group's ``last_context``.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, Protocol

from opentelemetry import trace

import otel
from app.telemetry.metrics import instruments


class ErrorSink(Protocol):
    """Where captured errors are grouped: ``app.error_group.service.ErrorTracker``."""

    def note(
        self,
        key: str,
        *,
        error_type: str,
        component: str,
        culprit: str,
        trace_id: str | None,
        context: dict[str, Any],
    ) -> None: ...


IN_APP = ("app",)
log = logging.getLogger("trawl.errors")
_tracker: ErrorSink | None = None
_sentry: Any = None


def set_tracker(tracker: ErrorSink | None) -> None:
    global _tracker
    _tracker = tracker


#: ``context`` keys of :func:`capture` (as in the error group's ``last_context``) and the
#: attribute / log field each one becomes.
CONTEXT_ATTRIBUTES = {
    "route": "http.route",
    "method": "http.request.method",
    "request_id": "http.request.id",
    "api_key_id": "trawl.api_key.id",
    "job_id": "trawl.job.id",
    "task_id": "trawl.task.id",
    "worker_id": "trawl.worker.id",
    "domain": "url.domain",
}


def enable_sentry(dsn: str, environment: str, release: str) -> bool:
    """Optional: also send errors to Sentry, fingerprinted with our grouping key and scrubbed
    (``otel/sentry.py``)."""
    global _sentry
    _sentry = otel.init_sentry(dsn, environment, release, IN_APP)
    return _sentry is not None


def disable_sentry() -> None:
    global _sentry
    if _sentry is not None:
        otel.close_sentry()
    _sentry = None


def context_attributes(context: dict[str, Any]) -> dict[str, Any]:
    """``capture``'s context as span attributes / log fields (unknown keys under
    ``trawl.error.context.``), values redacted."""
    out: dict[str, Any] = {}
    for key, value in context.items():
        if value is None:
            continue
        name = CONTEXT_ATTRIBUTES.get(key, f"trawl.error.context.{key}")
        out[name] = otel.redact_value(
            key, value if isinstance(value, str | int | float | bool) else str(value)
        )
    return out


def type_name(exc: BaseException) -> str:
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def culprit(exc: BaseException) -> str:
    """The innermost in-app frame as ``module.function`` (no line number); the innermost frame
    of all when none is in-app."""
    tb: TracebackType | None = exc.__traceback__
    in_app = last = "<unknown>"
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        last = f"{module}.{tb.tb_frame.f_code.co_name}"
        if module.split(".")[0] in IN_APP:
            in_app = last
        tb = tb.tb_next
    return in_app if in_app != "<unknown>" else last


def capture(exc: BaseException, *, component: str, context: dict[str, Any]) -> str:
    """Record ``exc`` everywhere it must show; returns its grouping key. Never raises.

    ``context`` keys: see :data:`CONTEXT_ATTRIBUTES` (``None`` values are left out)."""
    try:
        key = otel.fingerprint(exc, IN_APP)
        span = trace.get_current_span()
        fields = context_attributes(context)
        if span.is_recording():
            span.set_attributes(fields)
        otel.record_exception(span, exc, key)
        span_ctx = span.get_span_context()
        trace_id = format(span_ctx.trace_id, "032x") if span_ctx.is_valid else None
        error_type = type_name(exc)
        instruments().errors.add(
            1, {"error.type": error_type, otel.GROUP_KEY_ATTR: key, "trawl.component": component}
        )
        log.error("unhandled %s", error_type, exc_info=exc, extra=fields)
        if _tracker is not None:
            _tracker.note(
                key,
                error_type=error_type,
                component=component,
                culprit=culprit(exc),
                trace_id=trace_id,
                context={k: otel.redact_value(k, v) for k, v in context.items() if v is not None},
            )
        if _sentry is not None:
            with _sentry.new_scope() as scope:
                scope.fingerprint = [key]
                _sentry.capture_exception(exc)
        return key
    except Exception:  # telemetry must never raise into the app
        log.debug("error capture failed", exc_info=True)
        return ""
