"""One Prometheus name per metric, whichever path it takes (issue 8).

* OTLP path: a real OTLP/HTTP export, captured by the loopback receiver, translated by the port
  of the collector's rules (tests/support/prom_translate.py, itself checked against upstream's
  test cases in tests/unit/test_prom_translate.py);
* scrape path: the SDK's Prometheus exporter as ``otel.configure`` builds it, really scraped
  over HTTP.

Every ``CATALOGUE`` and ``INSTRUMENTATION`` metric is emitted once, from its spec, into one
provider that feeds both paths; the real instruments match their specs (last tests here and
tests/unit/test_telemetry_docs.py), so the names hold for what the processes emit.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import metrics
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    InMemoryMetricReader,
    Metric,
    Sum,
)
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import otel
from app.telemetry.metrics import CATALOGUE, INSTRUMENTATION, Spec
from otel import _setup, runtime
from otel.db import instrument_engine
from tests.support.otlp_receiver import Receiver, serve
from tests.support.prom_translate import Family, prw_series
from tests.support.wait import eventually, eventually_blocking

ALL_SPECS = CATALOGUE + INSTRUMENTATION
#: Labels that identify the process differently on each path (docs/telemetry.md).
OTLP_ONLY = {"job", "instance"}
SCRAPE_ONLY = {"otel_scope_name", "otel_scope_version", "otel_scope_schema_url"}
STABLE_SELECTORS = {"service_name", "deployment_environment_name"}


@dataclass
class TwoPaths:
    tel: otel.Telemetry
    receiver: Receiver

    def scrape(self) -> str:
        assert self.tel.prometheus_address is not None
        host, port = self.tel.prometheus_address
        response = httpx.get(f"http://{host}:{port}/metrics", timeout=10)
        assert response.status_code == 200
        return response.text

    def export(self) -> list[Any]:
        before = len(self.receiver.get("/v1/metrics"))
        assert self.tel.force_flush(10.0)
        requests = self.receiver.get("/v1/metrics")
        assert len(requests) > before, "no OTLP export arrived"
        return requests[before:]


@pytest.fixture
def two_paths(monkeypatch: pytest.MonkeyPatch) -> Iterator[TwoPaths]:
    """``otel.configure`` from the environment with both metric exporters: OTLP to the
    loopback receiver and the scrape endpoint on a free port."""
    with serve() as receiver:
        monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp,prometheus")
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
        monkeypatch.setenv("OTEL_LOGS_EXPORTER", "none")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", "0")
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "600000")  # exports on force_flush
        _setup.reset()
        runtime._reset_for_tests()
        tel = otel.configure("trawl-worker", service_version="9.9.9", environment="test")
        assert tel.prometheus_address is not None
        try:
            yield TwoPaths(tel, receiver)
        finally:
            _setup.reset()
            runtime._reset_for_tests()


def _emit(meter: metrics.Meter, spec: Spec) -> None:
    attrs = {key: "x" for key in spec.attributes}
    if spec.kind == "counter":
        meter.create_counter(spec.name, spec.unit, spec.description).add(1, attrs)
    elif spec.kind == "updowncounter":
        meter.create_up_down_counter(spec.name, spec.unit, spec.description).add(1, attrs)
    elif spec.kind == "histogram":
        meter.create_histogram(spec.name, spec.unit, spec.description).record(0.5, attrs)
    else:
        meter.create_observable_gauge(
            spec.name, [lambda _o, a=attrs: [Observation(1.0, a)]], spec.unit, spec.description
        )


@dataclass
class Scraped:
    samples: set[str]
    labels: set[str]
    kind: str


def _scraped(exposition: str) -> dict[str, Scraped]:
    """Families of a scrape by the names of their samples' series (``x_total``, ``x``)."""
    out: dict[str, Scraped] = {}
    for family in text_string_to_metric_families(exposition):
        names = {s.name for s in family.samples}
        labels = {k for s in family.samples for k in s.labels}
        key = f"{family.name}_total" if family.type == "counter" else family.name
        out[key] = Scraped(names, labels, family.type)
    return out


def _otlp(requests: list[Any]) -> dict[str, Family]:
    return {f.otlp_name: f for f in prw_series(requests)}


def _assert_same(otlp: Family, scraped: dict[str, Scraped]) -> None:
    assert otlp.name in scraped, f"{otlp.otlp_name}: {otlp.name} not on the scrape endpoint"
    on_scrape = scraped[otlp.name]
    assert on_scrape.samples == otlp.samples, otlp.otlp_name
    assert on_scrape.labels - SCRAPE_ONLY == otlp.labels - OTLP_ONLY, otlp.otlp_name
    assert on_scrape.labels >= STABLE_SELECTORS, otlp.otlp_name
    assert otlp.labels >= STABLE_SELECTORS, otlp.otlp_name


def test_every_catalogue_metric_has_one_name_on_both_paths(two_paths: TwoPaths) -> None:
    meter = metrics.get_meter("parity")
    for spec in ALL_SPECS:
        _emit(meter, spec)
    otlp = _otlp(two_paths.export())
    scraped = _scraped(two_paths.scrape())
    for spec in ALL_SPECS:
        assert spec.name in otlp, f"{spec.name} missing from the OTLP export"
        _assert_same(otlp[spec.name], scraped)
    # the two names issue 8 found different are gone for good
    everything = {f.name for f in otlp.values()} | set(scraped)
    assert not {n for n in everything if n.endswith("_ratio") or "connections_usage" in n}


def test_the_selectors_carry_the_resource_on_both_paths(two_paths: TwoPaths) -> None:
    metrics.get_meter("parity").create_counter("trawl.parity.probe", "{probe}").add(1)
    requests = two_paths.export()
    resource = {
        kv.key: kv.value.string_value
        for req in requests
        for rm in req.resource_metrics
        for kv in rm.resource.attributes
    }
    exposition = two_paths.scrape()
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            # scrape: the reader copies the two resource attributes onto every series ...
            assert sample.labels["service_name"] == "trawl-worker"
            assert sample.labels["deployment_environment_name"] == "test"
    # ... and the full resource is on target_info; over OTLP the collector makes the same
    # target_info (job = namespace/name, instance = the instance id) and copies the two
    assert resource["service.name"] == "trawl-worker"
    assert resource["deployment.environment.name"] == "test"
    target = next(f for f in text_string_to_metric_families(exposition) if f.name == "target_info")
    assert target.samples[0].labels["service_instance_id"] == resource["service.instance.id"]
    families = list(prw_series(requests))
    assert all({"job", "instance", *STABLE_SELECTORS} <= f.labels for f in families)


def test_a_real_process_exposes_the_same_names_on_both_paths(two_paths: TwoPaths) -> None:
    """The real instruments, not their specs: runtime, event loop, database."""

    async def exercise() -> None:
        engine = create_async_engine("sqlite+aiosqlite:///:memory:")
        assert instrument_engine(engine)
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        monitor = otel.LoopMonitor(interval_s=0.05)
        monitor.start()
        started = time.time()  # after start(), which stamps a first tick itself
        await eventually(lambda: monitor.last_tick > started, what="a loop monitor tick")
        otlp = _otlp(two_paths.export())
        scraped = _scraped(two_paths.scrape())
        await monitor.stop()
        await engine.dispose()
        for name in (
            "process.cpu.time",
            "process.memory.usage",
            "cpython.gc.collections",
            "trawl.gc.pause.time",
            "trawl.event_loop.lag",
            "trawl.event_loop.last_tick",
            "db.client.operation.duration",
            "db.client.connection.wait_time",
            "db.client.connection.timeouts",
        ):
            assert name in otlp, name
        for family in otlp.values():
            _assert_same(family, scraped)

    assert otel.instrument_runtime()
    asyncio.run(exercise())


# ------------------------------------------------------------------ real instruments = specs


def _kind(metric: Metric) -> str:
    data: Any = metric.data
    if isinstance(data, Histogram):
        return "histogram"
    if isinstance(data, Gauge):
        return "gauge"
    assert isinstance(data, Sum)
    return "counter" if data.is_monotonic else "updowncounter"


def _emitted(reader: InMemoryMetricReader) -> dict[str, Metric]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }


def _matches(metric: Metric, spec: Spec) -> None:
    assert _kind(metric) == spec.kind, spec.name
    assert metric.unit == spec.unit, spec.name
    assert metric.description == spec.description, spec.name
    keys = {k for p in metric.data.data_points for k in (p.attributes or {})}
    assert keys == set(spec.attributes), (spec.name, keys)


def test_runtime_and_database_instruments_match_their_specs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What otel/runtime.py, otel/db.py and the system-metrics instrumentation emit is exactly
    their catalogue entry (kind, unit, description, attribute keys)."""
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    _setup.reset()
    runtime._reset_for_tests()
    reader = InMemoryMetricReader()
    otel.configure("trawl-test", service_version="1", metric_readers=[reader])
    prefixes = ("process.", "cpython.", "db.", "trawl.gc.", "trawl.event_loop.")

    async def exercise() -> dict[str, Metric]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'specs.db'}")
        assert instrument_engine(engine)
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            with pytest.raises(Exception, match="no such table"):
                await conn.execute(text("SELECT * FROM missing"))
        monitor = otel.LoopMonitor(interval_s=0.05)
        monitor.start()
        started = time.time()
        await eventually(lambda: monitor.last_tick > started, what="a loop monitor tick")
        emitted = _emitted(reader)
        await monitor.stop()
        await engine.dispose()
        return emitted

    try:
        assert otel.instrument_runtime()
        emitted = asyncio.run(exercise())
        specs = {s.name: s for s in ALL_SPECS if s.name.startswith(prefixes)}
        assert {n for n in emitted if n.startswith(prefixes)} == set(specs)
        for name, spec in specs.items():
            _matches(emitted[name], spec)
        failed = [
            p.attributes
            for p in emitted["db.client.operation.duration"].data.data_points
            if "error.type" in (p.attributes or {})
        ]
        assert failed == [
            {
                "db.system.name": "sqlite",
                "db.operation.name": "SELECT",
                "error.type": "sqlite3.OperationalError",
            }
        ]
    finally:
        _setup.reset()
        runtime._reset_for_tests()


def test_the_heartbeat_stops_on_both_paths_while_the_loop_is_blocked(
    two_paths: TwoPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK exports from its own threads: a blocked loop keeps exporting, but its last tick
    stops moving, the same on the scrape endpoint and over OTLP."""
    # only this test's loop: the suite's session loop (idle between its tests) has monitors too
    monkeypatch.setattr(runtime, "_MONITORS", weakref.WeakSet())
    assert otel.instrument_runtime()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    monitor = otel.LoopMonitor(interval_s=0.05)
    try:
        loop.call_soon_threadsafe(monitor.start)

        def ticks() -> tuple[float, float]:
            scraped = next(
                s.value
                for f in text_string_to_metric_families(two_paths.scrape())
                for s in f.samples
                if s.name == "trawl_event_loop_last_tick_seconds"
            )
            pushed = [
                p.as_double
                for req in two_paths.export()
                for rm in req.resource_metrics
                for sm in rm.scope_metrics
                for m in sm.metrics
                if m.name == "trawl.event_loop.last_tick"
                for p in m.gauge.data_points
            ]
            assert len(pushed) == 1
            return scraped, pushed[0]

        started = time.time()
        # healthy: both paths show ticks after `started`
        eventually_blocking(lambda: min(ticks()) > started, what="the loop monitor to tick")

        entered, released = threading.Event(), threading.Event()

        def block() -> None:  # a blocking call on the loop: it is stuck until released
            entered.set()
            released.wait(30)

        loop.call_soon_threadsafe(block)
        assert entered.wait(10)
        blocked_at = time.time()

        def settled() -> tuple[float, float] | None:
            # a scrape may still serve the collection before the last tick (the exporter's
            # queue): read until both paths show the same, the blocked loop's last tick
            now = ticks()
            return now if now[0] == now[1] else None

        first = eventually_blocking(settled, what="both paths to show the same last tick")
        # let the wall clock move on
        eventually_blocking(lambda: time.time() > blocked_at + 0.5, what="half a second")
        second = ticks()  # both paths still answer (the SDK's threads) ...
        assert first == second  # ... with a tick that no longer moves ...
        assert first[0] == first[1] <= blocked_at  # ... the same on both paths
        released.set()

        eventually_blocking(lambda: min(ticks()) > blocked_at, what="the loop monitor to resume")
    finally:
        asyncio.run_coroutine_threadsafe(monitor.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
