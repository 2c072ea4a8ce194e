"""Capturing unhandled exceptions: grouping key on the span, the log record and a counter.

The key is ``otel.fingerprint``: exception type plus in-app frames (module and function, no
line numbers, no message values), so it is bounded by code paths, not by input.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

import otel
from app.telemetry.metrics import instruments

if TYPE_CHECKING:
    from app.error_group.service import ErrorTracker

IN_APP = ("app",)
log = logging.getLogger("trawl.errors")
_tracker: ErrorTracker | None = None
_sentry: Any = None


def set_tracker(tracker: ErrorTracker | None) -> None:
    global _tracker
    _tracker = tracker


def enable_sentry(dsn: str, environment: str, release: str) -> bool:
    """Optional: also send errors to Sentry, fingerprinted with our grouping key."""
    global _sentry
    try:
        import sentry_sdk  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        log.warning("SENTRY_DSN is set but sentry-sdk is not installed; Sentry stays off")
        return False
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        default_integrations=False,
        send_default_pii=False,
    )
    _sentry = sentry_sdk
    return True


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
    """Record ``exc`` everywhere it must show; returns its grouping key. Never raises."""
    try:
        key = otel.fingerprint(exc, IN_APP)
        span = trace.get_current_span()
        otel.record_exception(span, exc, key)
        span_ctx = span.get_span_context()
        trace_id = format(span_ctx.trace_id, "032x") if span_ctx.is_valid else None
        error_type = type_name(exc)
        instruments().errors.add(
            1, {"error.type": error_type, "trawl.error.group": key, "trawl.component": component}
        )
        fields = {f"trawl.error.{k}": v for k, v in context.items() if v is not None}
        log.error("unhandled %s", error_type, exc_info=exc, extra=fields)
        if _tracker is not None:
            _tracker.note(
                key,
                error_type=error_type,
                component=component,
                culprit=culprit(exc),
                trace_id=trace_id,
                context=context,
            )
        if _sentry is not None:
            with _sentry.new_scope() as scope:
                scope.fingerprint = [key]
                _sentry.capture_exception(exc)
        return key
    except Exception:  # telemetry must never raise into the app
        log.debug("error capture failed", exc_info=True)
        return ""
