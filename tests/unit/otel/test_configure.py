from __future__ import annotations

import logging

import pytest
from opentelemetry import metrics, trace
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import otel
from otel import _setup
from otel.metrics import DURATION_BUCKETS_S, safe_attr
from tests.support.otel_env import Env


def test_resource_attributes(tel_env: Env) -> None:
    attrs = tel_env.tel.resource.attributes  # type: ignore[union-attr]
    assert attrs["service.name"] == "trawl-test"
    assert attrs["service.namespace"] == "trawl"
    assert attrs["service.version"] == "9.9.9"
    assert attrs["deployment.environment.name"] == "test"
    assert len(str(attrs["service.instance.id"])) == 36
    assert tel_env.tel.instance_id == attrs["service.instance.id"]


def test_env_overrides_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    _setup.reset()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=prod,service.namespace=ns"
    )
    for sig in ("TRACES", "METRICS", "LOGS"):
        monkeypatch.setenv(f"OTEL_{sig}_EXPORTER", "none")
    tel = otel.configure("arg-name", service_version="1", environment="dev")
    try:
        attrs = tel.resource.attributes  # type: ignore[union-attr]
        assert attrs["service.name"] == "from-env"
        assert attrs["deployment.environment.name"] == "prod"
        assert attrs["service.namespace"] == "ns"
        assert tel.service_name == "from-env"
    finally:
        _setup.reset()


def test_sdk_disabled_installs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    _setup.reset()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    tel = otel.configure("svc", service_version="1")
    try:
        assert not tel.enabled
        assert tel.tracer_provider is None
        with trace.get_tracer("t").start_as_current_span("x") as span:
            assert not span.get_span_context().is_valid
        assert otel.shutdown() is True
        assert otel.force_flush() is True
    finally:
        _setup.reset()


def test_configure_twice_returns_same(tel_env: Env) -> None:
    again = otel.configure("other", service_version="2")
    assert again is tel_env.tel


def test_global_providers_and_sampler_default(tel_env: Env) -> None:
    with trace.get_tracer("t").start_as_current_span("root") as span:
        assert span.get_span_context().trace_flags.sampled
    tel_env.flush()
    assert [s.name for s in tel_env.spans.get_finished_spans()] == ["root"]


def test_grpc_protocol_warns_and_falls_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _setup.reset()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "none")
    with caplog.at_level(logging.WARNING, logger="otel"):
        tel = otel.configure("svc", service_version="1")
    try:
        assert tel.enabled
        assert "http/protobuf" in caplog.text
    finally:
        tel.shutdown(timeout_s=1.0)
        _setup.reset()


def test_bad_config_falls_back_to_noop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _setup.reset()
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", "not-a-port")
    with caplog.at_level(logging.WARNING, logger="otel"):
        tel = otel.configure("svc", service_version="1")
    try:
        assert not tel.enabled
        assert "running without telemetry" in caplog.text
    finally:
        _setup.reset()


def test_a_meter_taken_before_configure_leaves_no_instrument_behind() -> None:
    """OpenTelemetry's placeholder provider re-creates its instruments, callbacks and all, on
    every provider installed later, where they shadow the instruments made for that provider:
    ``otel.meter`` hands out a no-op meter until a provider is installed."""
    _setup.reset()
    early = otel.meter("trawl.test.early")
    early.create_observable_gauge("trawl.test.value", callbacks=[lambda _o: [Observation(1)]])
    reader = InMemoryMetricReader()
    otel.configure("svc", service_version="1", metric_readers=[reader])
    try:
        later = otel.meter("trawl.test.early")
        later.create_observable_gauge("trawl.test.value", callbacks=[lambda _o: [Observation(2)]])
        data = reader.get_metrics_data()
        assert data is not None
        values = [
            p.value
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "trawl.test.value"
            for p in m.data.data_points  # type: ignore[attr-defined]
        ]
        assert values == [2]
    finally:
        _setup.reset()


def test_duration_view_buckets_and_client_attrs_dropped(tel_env: Env) -> None:
    hist = metrics.get_meter("m").create_histogram("http.client.request.duration", unit="s")
    hist.record(
        0.3,
        {
            "http.request.method": "GET",
            "server.address": "example.org",
            "server.port": 443,
            "url.full": "https://example.org/x",
            "http.response.status_code": 200,
        },
    )
    data = tel_env.metrics.get_metrics_data()
    points = [
        p
        for rm in data.resource_metrics  # type: ignore[union-attr]
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "http.client.request.duration"
        for p in m.data.data_points
    ]
    assert len(points) == 1
    assert dict(points[0].attributes or {}) == {
        "http.request.method": "GET",
        "http.response.status_code": 200,
    }
    assert tuple(points[0].explicit_bounds) == DURATION_BUCKETS_S  # type: ignore[attr-defined]


def test_safe_attr() -> None:
    allowed = frozenset({"ok", "timeout"})
    assert safe_attr("ok", allowed) == "ok"
    assert safe_attr("weird", allowed) == "_OTHER"
    assert safe_attr(None, allowed, other="other") == "other"


def _periodic_intervals(tel: otel.Telemetry) -> list[float]:
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    assert tel.meter_provider is not None
    readers = tel.meter_provider._metric_readers
    return [
        r._export_interval_millis for r in readers if isinstance(r, PeriodicExportingMetricReader)
    ]


def test_metrics_are_exported_every_10_s_unless_the_standard_variable_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console")
    monkeypatch.delenv("OTEL_METRIC_EXPORT_INTERVAL", raising=False)
    assert _periodic_intervals(otel.configure("trawl-test", service_version="1")) == [10_000]
    _setup.reset()
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "2500")
    assert _periodic_intervals(otel.configure("trawl-test", service_version="1")) == [2500]
