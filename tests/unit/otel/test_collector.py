from __future__ import annotations

import pytest

import otel

ENV = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_LOGS_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_not_configured_without_an_explicit_endpoint(env: pytest.MonkeyPatch) -> None:
    assert otel.collector_endpoint() is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://collector:4318", ("collector", 4318)),
        ("https://user:secret@otel.example.com/v1", ("otel.example.com", 443)),
        ("http://[::1]:4318", ("::1", 4318)),
        ("collector:4318", ("collector", 4318)),
        ("http://collector", ("collector", 80)),
    ],
)
def test_generic_endpoint(env: pytest.MonkeyPatch, value: str, expected: tuple[str, int]) -> None:
    env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", value)
    assert otel.collector_endpoint() == expected


def test_signal_endpoint_wins_and_only_otlp_signals_count(env: pytest.MonkeyPatch) -> None:
    env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318")
    env.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4318/v1/traces")
    env.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://metrics:4318/v1/metrics")
    assert otel.collector_endpoint() == ("traces", 4318)
    env.setenv("OTEL_TRACES_EXPORTER", "console")
    assert otel.collector_endpoint() == ("metrics", 4318)
    env.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    assert otel.collector_endpoint() == ("generic", 4318)  # logs: otlp, generic endpoint
    env.setenv("OTEL_LOGS_EXPORTER", "none")
    assert otel.collector_endpoint() is None


def test_disabled_sdk_has_no_collector(env: pytest.MonkeyPatch) -> None:
    env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    env.setenv("OTEL_SDK_DISABLED", "true")
    assert otel.collector_endpoint() is None


def test_unusable_endpoint_is_ignored(env: pytest.MonkeyPatch) -> None:
    env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://:4318")
    assert otel.collector_endpoint() is None
    env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector")
    assert otel.collector_endpoint() is None
