"""The current context and span, read with the fewest calls, for hot paths.

The API's ``trace.get_current_span()`` is four Python calls and an ABC ``isinstance``;
with the default contextvars runtime the current context is one C call away. Other runtimes
(an ``OTEL_PYTHON_CONTEXT`` of one's own) go through the API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as context_api
from opentelemetry.context import Context
from opentelemetry.trace.propagation import _SPAN_KEY

__all__ = ["SPAN_KEY", "get_context"]

SPAN_KEY = _SPAN_KEY


def _context_getter() -> Callable[[], Context]:
    runtime = getattr(context_api, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    get = getattr(var, "get", None)
    if callable(get) and type(runtime).__name__ == "ContextVarsRuntimeContext":
        return get  # type: ignore[no-any-return]
    return context_api.get_current


#: ``get_context().get(SPAN_KEY)``: the current span, or None outside any span.
get_context: Callable[[], Mapping[str, Any]] = _context_getter()
