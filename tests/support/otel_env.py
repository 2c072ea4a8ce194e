"""Telemetry tests' environment: providers with in-memory exporters (``tel_env``), and the
autouse fixtures that give each test no configured providers and the root logger back. A
conftest that wants them imports them (tests/unit/otel, tests/integration/otel)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel
from otel import _setup


@dataclass
class Env:
    tel: otel.Telemetry
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    logs: InMemoryLogRecordExporter

    def flush(self) -> None:
        assert self.tel.force_flush(5.0)


@pytest.fixture
def tel_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    _setup.reset()
    spans = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    logs = InMemoryLogRecordExporter()
    tel = otel.configure(
        "trawl-test",
        service_version="9.9.9",
        environment="test",
        span_exporter=spans,
        metric_readers=[reader],
        log_exporter=logs,
    )
    assert tel.enabled
    yield Env(tel, spans, reader, logs)
    _setup.reset()


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


@pytest.fixture(autouse=True)
def telemetry_enabled(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The suite turns exporters off by default (tests/conftest.py); these tests read the
    standard variables themselves and start from no configured providers."""
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    for signal in ("TRACES", "METRICS", "LOGS"):
        monkeypatch.delenv(f"OTEL_{signal}_EXPORTER", raising=False)
    _setup.reset()
    yield
    _setup.reset()
