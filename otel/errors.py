"""Error grouping keys and exception recording on spans.

Grouping key algorithm (see docs/telemetry-sdk.md):

1. Walk ``__cause__`` (and un-suppressed ``__context__``) to the root exception.
2. Collect the traceback frames of the raised exception as ``module:qualified_function``
   (``f_globals["__name__"]`` and ``co_qualname``); **no line numbers, no messages**.
3. Keep frames whose module equals or is under one of the ``in_app`` prefixes; if none
   are in-app, keep all frames.
4. ``sha256("\\n".join([type_qualname, "root:" + root_type_qualname, *frames]))[:16]``.
"""

from __future__ import annotations

import hashlib
import logging
from types import TracebackType

from opentelemetry.trace import Span, Status, StatusCode

from otel.redact import format_exception, redact_exception

__all__ = ["GROUP_KEY_ATTR", "exception_attributes", "fingerprint", "record_exception"]

_log = logging.getLogger("otel")

#: The grouping key's one name: span attribute, ``exception`` event attribute, log field (stdout
#: JSON and OTLP) and metric attribute (``trawl.errors``). ``exception.*`` belongs to the
#: semantic conventions, so the key lives in Trawl's namespace.
GROUP_KEY_ATTR = "trawl.error.group"

DEFAULT_IN_APP: tuple[str, ...] = ("app",)
_MAX_CHAIN = 16


def type_name(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def _root(exc: BaseException) -> BaseException:
    seen = {id(exc)}
    cur = exc
    for _ in range(_MAX_CHAIN):
        nxt = cur.__cause__
        if nxt is None and not cur.__suppress_context__:
            nxt = cur.__context__
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(nxt))
        cur = nxt
    return cur


def _frames(tb: TracebackType | None) -> list[str]:
    out: list[str] = []
    while tb is not None:
        frame = tb.tb_frame
        module = str(frame.f_globals.get("__name__", "?"))
        code = frame.f_code
        func = getattr(code, "co_qualname", code.co_name)
        out.append(f"{module}:{func}")
        tb = tb.tb_next
    return out


def _in_app(frame: str, prefixes: tuple[str, ...]) -> bool:
    module = frame.split(":", 1)[0]
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def fingerprint(exc: BaseException, in_app: tuple[str, ...] = DEFAULT_IN_APP) -> str:
    """Stable 16-hex-char grouping key for ``exc`` (independent of message and line numbers)."""
    try:
        frames = _frames(exc.__traceback__)
        app_frames = [f for f in frames if _in_app(f, in_app)]
        parts = [type_name(exc), "root:" + type_name(_root(exc)), *(app_frames or frames)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    except Exception:
        _log.debug("fingerprint failed", exc_info=True)
        return hashlib.sha256(type(exc).__qualname__.encode()).hexdigest()[:16]


def exception_attributes(exc: BaseException) -> dict[str, str]:
    """Semantic-convention ``exception.*`` attributes with the message and stack trace
    redacted (secrets, URL credentials, database literals and parameters)."""
    return {
        "exception.type": type_name(exc),
        "exception.message": redact_exception(exc),
        "exception.stacktrace": format_exception(exc),
    }


def record_exception(
    span: Span,
    exc: BaseException,
    key: str | None = None,
    *,
    in_app: tuple[str, ...] = DEFAULT_IN_APP,
) -> str | None:
    """Record ``exc`` on ``span``: an ``exception`` event (type, redacted message and stack
    trace, grouping key), status ERROR, attributes ``error.type`` and ``trawl.error.group``.
    Returns the key.

    The raw ``str(exc)`` never reaches the span (``Span.record_exception`` would put it there).
    Never raises into the caller.
    """
    try:
        key = key or fingerprint(exc, in_app)
        etype = type_name(exc)
        if span.is_recording():
            event = exception_attributes(exc)
            event[GROUP_KEY_ATTR] = key
            span.add_event("exception", event)
            span.set_attributes({"error.type": etype, GROUP_KEY_ATTR: key})
            span.set_status(Status(StatusCode.ERROR, etype))
        return key
    except Exception:
        _log.debug("record_exception failed", exc_info=True)
        return None
