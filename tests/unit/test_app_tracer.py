"""app.telemetry.tracing.tracer(): asked of each tracer provider once (the SDK's get_tracer
compares instrumentation scopes on every call), and follows a provider change."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

from app.telemetry import tracing


def _counting(provider: TracerProvider, calls: list[str]) -> TracerProvider:
    real = provider.get_tracer

    def get_tracer(name: str, *args: Any, **kwargs: Any) -> trace.Tracer:
        calls.append(name)
        return real(name, *args, **kwargs)

    provider.get_tracer = get_tracer  # type: ignore[method-assign,assignment]
    return provider


def test_the_tracer_is_made_once_per_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    first, second = _counting(TracerProvider(), calls), _counting(TracerProvider(), calls)
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: first)
    a = tracing.tracer()
    assert tracing.tracer() is a
    assert calls == ["trawl"]
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: second)
    b = tracing.tracer()
    assert tracing.tracer() is b
    assert calls == ["trawl", "trawl"]
    with b.start_as_current_span("work") as span:
        assert span.is_recording()  # a tracer of the provider now installed
    assert isinstance(span, ReadableSpan) and span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "trawl"
