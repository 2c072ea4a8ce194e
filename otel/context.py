"""Request/job/task correlation fields carried in contextvars.

Fields bound here appear in every JSON log line (ECS names), as attributes on OTLP log
records and, when ``span=True``, as attributes on the current span.

One name per field, the same in logs and on spans:

======================  =====================
keyword                 log field / attribute
======================  =====================
``request_id``          ``http.request.id``
``api_key_id``          ``trawl.api_key.id``
``job_id``              ``trawl.job.id``
``task_id``             ``trawl.task.id``
======================  =====================
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType

from otel._current import SPAN_KEY, get_context

__all__ = ["bind_context", "current_context", "reset_context", "set_context"]

_log = logging.getLogger("otel")

# keyword -> (log field, span attribute)
FIELDS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "request_id": ("http.request.id", "http.request.id"),
        "api_key_id": ("trawl.api_key.id", "trawl.api_key.id"),
        "job_id": ("trawl.job.id", "trawl.job.id"),
        "task_id": ("trawl.task.id", "trawl.task.id"),
    }
)

_EMPTY: Mapping[str, str] = MappingProxyType({})
_ctx: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "trawl_otel_context", default=_EMPTY
)

Token = contextvars.Token[Mapping[str, str]]


def current_context() -> Mapping[str, str]:
    """Bound fields keyed by their log name, e.g. ``{"trawl.job.id": "..."}``."""
    return _ctx.get()


def set_context(
    *,
    request_id: str | None = None,
    api_key_id: str | None = None,
    job_id: str | None = None,
    task_id: str | None = None,
    span: bool = True,
) -> Token:
    """Bind fields for the rest of the current context; returns a token for :func:`reset_context`.

    ``None`` values leave an already-bound field untouched.
    """
    given = {
        "request_id": request_id,
        "api_key_id": api_key_id,
        "job_id": job_id,
        "task_id": task_id,
    }
    new = dict(_ctx.get())
    span_attrs: dict[str, str] = {}
    for key, value in given.items():
        if value is None:
            continue
        log_name, span_name = FIELDS[key]
        new[log_name] = str(value)
        span_attrs[span_name] = str(value)
    token = _ctx.set(MappingProxyType(new))
    if span and span_attrs:
        try:
            current = get_context().get(SPAN_KEY)
            if current is not None and current.is_recording():
                current.set_attributes(span_attrs)
        except Exception:
            _log.debug("could not set context attributes on span", exc_info=True)
    return token


def reset_context(token: Token) -> None:
    """Undo a :func:`set_context` call. Never raises."""
    try:
        _ctx.reset(token)
    except (ValueError, RuntimeError):
        _log.debug("context token reset from another context", exc_info=True)


@contextmanager
def bind_context(
    *,
    request_id: str | None = None,
    api_key_id: str | None = None,
    job_id: str | None = None,
    task_id: str | None = None,
    span: bool = True,
) -> Iterator[Mapping[str, str]]:
    """``with bind_context(job_id=j.id): ...`` - fields are visible to logs inside the block."""
    token = set_context(
        request_id=request_id, api_key_id=api_key_id, job_id=job_id, task_id=task_id, span=span
    )
    try:
        yield _ctx.get()
    finally:
        reset_context(token)
