"""Health endpoints and the HealthService against real Redis and SQL: healthy, stopped and hung.

"Stopped" is a closed loopback port; "hung" is a loopback server that accepts connections and
never answers. Elapsed-time assertions are functional bounds (the endpoint does not hang),
not performance targets.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from pydantic import SecretStr

from app.db import Database
from app.health import CheckResult, HealthService, HealthStatus, degraded, healthy
from app.healthcheck import alive_file, check_worker
from app.job import checks as job_checks
from app.main import create_app
from app.settings import Settings
from app.worker import Worker
from tests.support.config import ADMIN_KEY, make_settings
from tests.support.hung_server import HungServer
from tests.support.net import closed_port
from tests.support.wait import eventually

TIMEOUT_S = 0.5
BUDGET_S = 3.0  # timeout + a generous margin: proves "does not hang", nothing more
OTEL_ENV = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_LOGS_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
)


# --------------------------------------------------------------------------- helpers


@pytest_asyncio.fixture(loop_scope="session")
async def hung() -> AsyncIterator[HungServer]:
    server = await HungServer().start()
    yield server
    await server.stop()


@pytest.fixture
def no_otel_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No OTEL_* variables: also lets a local SDK provider work (OTEL_SDK_DISABLED unset)."""
    for name in OTEL_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def redis_at(kind: str, hung: HungServer, good: str) -> str:
    return {
        "healthy": good,
        "stopped": f"redis://127.0.0.1:{closed_port()}/0",
        "hung": f"redis://127.0.0.1:{hung.port}/0",
    }[kind]


def db_at(kind: str, hung: HungServer, good: str) -> str:
    return {
        "healthy": good,
        "stopped": f"postgresql+asyncpg://u@127.0.0.1:{closed_port()}/db",
        "hung": f"postgresql+asyncpg://u@127.0.0.1:{hung.port}/db",
    }[kind]


class Swap:
    """Build HealthServices and put one into the running app; restore and close after."""

    def __init__(self, app: Any, settings: Settings, database_url: str, redis_url: str) -> None:
        self.app, self.settings = app, settings
        self.database_url, self.redis_url = database_url, redis_url
        self.original: HealthService = app.state.services.health
        self.built: list[tuple[HealthService, Database]] = []

    def build(
        self, *, database_url: str | None = None, redis_url: str | None = None, **overrides: Any
    ) -> HealthService:
        values: dict[str, Any] = {
            "redis_prefix": self.settings.redis_prefix,
            "health_check_timeout_s": TIMEOUT_S,
            "health_cache_ttl_s": 0.0,
            **overrides,
        }
        db_url = database_url or self.database_url
        r_url = redis_url or self.redis_url
        settings = make_settings(db_url, r_url, **values)
        db = Database(db_url)
        service = HealthService(settings, db=db, redis_url=r_url)
        job_checks.register(service, settings)  # as the API does
        self.built.append((service, db))
        return service

    def install(self, service: HealthService) -> HealthService:
        self.app.state.services.health = service
        return service

    async def close(self) -> None:
        self.app.state.services.health = self.original
        for service, db in self.built:
            await service.close()
            await db.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def swap(
    app: Any, settings: Settings, database_url: str, redis_url: str
) -> AsyncIterator[Swap]:
    s = Swap(app, settings, database_url, redis_url)
    yield s
    await s.close()


async def timed(coro: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = await coro
    return result, time.monotonic() - started


# --------------------------------------------------------------------------- liveness


async def test_liveness_touches_no_dependency() -> None:
    # No lifespan ran: no database, no Redis, no services at all.
    bare = create_app(make_settings("sqlite+aiosqlite:///nowhere/x.db", "redis://127.0.0.1:1/0"))
    transport = httpx.ASGITransport(app=bare)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r.headers["cache-control"] == "no-store"


# --------------------------------------------------------------------------- readiness


async def test_ready_when_everything_is_up(admin_client: httpx.AsyncClient) -> None:
    r = await admin_client.get("/health/ready")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready"
    assert body["failing"] == []
    assert body["draining"] is False
    assert body["components"] == {"database": "healthy", "redis": "healthy", "queue": "healthy"}


@pytest.mark.parametrize("kind", ["stopped", "hung"])
async def test_ready_names_redis_when_redis_is_down(
    kind: str, swap: Swap, hung: HungServer, redis_url: str, admin_client: httpx.AsyncClient
) -> None:
    swap.install(swap.build(redis_url=redis_at(kind, hung, redis_url)))
    r, elapsed = await timed(admin_client.get("/health/ready"))
    assert elapsed < BUDGET_S
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["status"] == "not_ready"
    assert "redis" in body["failing"]
    assert "queue" in body["failing"]  # the stream lives in Redis
    assert "database" not in body["failing"]
    assert body["components"]["database"] == "healthy"


@pytest.mark.parametrize("kind", ["stopped", "hung"])
async def test_ready_names_database_when_database_is_down(
    kind: str, swap: Swap, hung: HungServer, database_url: str, admin_client: httpx.AsyncClient
) -> None:
    swap.install(swap.build(database_url=db_at(kind, hung, database_url)))
    r, elapsed = await timed(admin_client.get("/health/ready"))
    assert elapsed < BUDGET_S
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["failing"] == ["database"]
    # the queue is still usable; only its backlog numbers are unknown
    assert body["components"]["queue"] == "healthy"
    assert body["components"]["redis"] == "healthy"


@pytest.mark.parametrize("kind", ["stopped", "hung"])
async def test_service_reports_hung_or_stopped_dependencies_within_timeout(
    kind: str, swap: Swap, hung: HungServer, database_url: str, redis_url: str
) -> None:
    service = swap.build(
        database_url=db_at(kind, hung, database_url), redis_url=redis_at(kind, hung, redis_url)
    )
    report, elapsed = await timed(service.detailed())
    assert elapsed < BUDGET_S
    assert report.status is HealthStatus.UNHEALTHY
    for name in ("database", "redis", "queue", "workers"):
        component = report.components[name]
        assert component.status is HealthStatus.UNHEALTHY, (name, component)
        assert component.latency_ms < BUDGET_S * 1000
        assert "127.0.0.1" not in component.detail or "@" not in component.detail
    if kind == "hung":
        assert "no answer within 0.5s" in report.components["redis"].detail
    # a second probe does not wait on the hung server either
    _, elapsed = await timed(service.detailed())
    assert elapsed < BUDGET_S


async def test_migrations_not_at_head_is_not_ready(tmp_path: Path, swap: Swap) -> None:
    fresh = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"  # reachable, never migrated
    service = swap.build(database_url=fresh)
    ready = await service.readiness()
    assert ready.status == "not_ready"
    assert ready.failing == ["database"]
    database = (await service.check(["database"]))["database"]
    assert "run migrations" in database.detail
    assert database.data["revision"] is None
    assert database.data["head"]


async def test_routine_checks_log_nothing(swap: Swap, caplog: pytest.LogCaptureFixture) -> None:
    """The refresh runs every 15 s: a healthy database check writes no log line (Alembic's
    migration context used to log two INFO lines per call)."""
    service = swap.build()
    with caplog.at_level(logging.DEBUG):
        database = (await service.check(["database"]))["database"]
    assert database.status is HealthStatus.HEALTHY, database
    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []


async def test_draining_is_not_ready(swap: Swap, admin_client: httpx.AsyncClient) -> None:
    service = swap.install(swap.build())
    assert (await admin_client.get("/health/ready")).status_code == 200
    service.begin_draining()
    r = await admin_client.get("/health/ready")
    assert r.status_code == 503
    assert r.json()["draining"] is True
    assert r.json()["status"] == "not_ready"


async def test_app_starts_not_ready_when_redis_hangs(hung: HungServer, database_url: str) -> None:
    settings = make_settings(
        database_url, f"redis://127.0.0.1:{hung.port}/0", health_check_timeout_s=TIMEOUT_S
    )
    application = create_app(settings)
    started = time.monotonic()
    async with application.router.lifespan_context(application):
        assert time.monotonic() - started < 2.0 + BUDGET_S
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert (await c.get("/health")).status_code == 200
            r, elapsed = await timed(c.get("/health/ready"))
        assert elapsed < BUDGET_S
        assert r.status_code == 503
        assert "redis" in r.json()["failing"]
    assert time.monotonic() - started < 2 * (2.0 + BUDGET_S)


# --------------------------------------------------------------------------- detailed


async def test_detailed_requires_an_admin_key(
    app: Any, client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as anonymous:
        assert (await anonymous.get("/health/detailed")).status_code == 401
        # readiness stays open for load balancers
        assert (await anonymous.get("/health/ready")).status_code == 200
    assert (await client.get("/health/detailed")).status_code == 403
    assert (await admin_client.get("/health/detailed")).status_code in (200, 503)


async def test_detailed_reports_every_component_without_secrets(
    swap: Swap, no_otel_env: pytest.MonkeyPatch, admin_client: httpx.AsyncClient
) -> None:
    swap.install(swap.build())
    r = await admin_client.get("/health/detailed")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["components"]) == {
        "database",
        "redis",
        "queue",
        "workers",
        "collector",
        "disk",
    }
    for name, component in body["components"].items():
        assert component["status"] in ("healthy", "degraded", "unhealthy"), name
        assert isinstance(component["latency_ms"], float)
        assert component["detail"]
    assert body["components"]["collector"] == {
        **body["components"]["collector"],
        "status": "healthy",
        "detail": "not configured",
    }
    queue = body["components"]["queue"]["data"]
    assert {"depth", "ready", "oldest_ready_age_s", "stream_length"} <= set(queue)
    assert 0 <= queue["ready"] <= queue["depth"]
    assert {name: c["critical"] for name, c in body["components"].items()} == {
        "database": True,
        "redis": True,
        "queue": True,
        "workers": False,
        "collector": False,
        "disk": False,
    }
    text = r.text
    assert ADMIN_KEY not in text
    assert "redis://" not in text and "postgresql" not in text and "sqlite" not in text


async def test_detailed_counts_workers_with_a_fresh_heartbeat(
    worker: Worker, swap: Swap, settings: Settings
) -> None:
    service = swap.build()

    async def healthy_workers() -> Any:
        workers = (await service.check(["workers"]))["workers"]
        assert workers.status is HealthStatus.HEALTHY, workers
        return workers

    workers = await eventually(healthy_workers, what="a worker heartbeat")
    count = workers.data["count"]
    assert isinstance(count, int) and count >= 1
    # the same worker keeps its container healthcheck file fresh
    ok, reason = check_worker(settings.data_dir, settings.stale_after_s)
    assert ok, reason


async def test_no_worker_is_unhealthy_component_but_only_degrades_overall(swap: Swap) -> None:
    service = swap.build(redis_prefix="trawl-test-noworkers")
    report = await service.detailed()
    assert report.components["workers"].status is HealthStatus.UNHEALTHY
    assert report.components["workers"].data["count"] == 0
    assert report.status is not HealthStatus.UNHEALTHY


async def test_unreachable_collector_is_degraded_not_unhealthy(
    swap: Swap, no_otel_env: pytest.MonkeyPatch
) -> None:
    no_otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    service = swap.build()
    report = await service.detailed()
    collector = report.components["collector"]
    assert collector.status is HealthStatus.DEGRADED, collector
    assert "unreachable" in collector.detail
    assert collector.critical is False
    assert report.status is not HealthStatus.UNHEALTHY


async def test_reachable_collector_is_healthy(
    swap: Swap, hung: HungServer, no_otel_env: pytest.MonkeyPatch
) -> None:
    # a TCP accept is enough: the check only proves the endpoint is reachable
    no_otel_env.setenv(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{hung.port}/v1/traces"
    )
    collector = (await swap.build().check(["collector"]))["collector"]
    assert collector.status is HealthStatus.HEALTHY, collector
    assert collector.data == {"host": "127.0.0.1", "port": hung.port}


async def test_collector_not_checked_when_exporters_are_not_otlp(
    swap: Swap, no_otel_env: pytest.MonkeyPatch
) -> None:
    no_otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    for signal in ("TRACES", "METRICS", "LOGS"):
        no_otel_env.setenv(f"OTEL_{signal}_EXPORTER", "console")
    collector = (await swap.build().check(["collector"]))["collector"]
    assert (collector.status, collector.detail) == (HealthStatus.HEALTHY, "not configured")


async def test_disk_thresholds(swap: Swap, tmp_path: Path) -> None:
    where = tmp_path / "not" / "created" / "yet"  # the nearest existing parent is measured
    low = swap.build(
        data_dir=where,
        health_disk_degraded_free_ratio=1.0,
        health_disk_degraded_free_bytes=10**18,
    )
    full = swap.build(
        data_dir=where,
        health_disk_unhealthy_free_ratio=1.0,
        health_disk_unhealthy_free_bytes=10**18,
    )
    lenient = swap.build(
        data_dir=where,
        health_disk_degraded_free_ratio=0.0,
        health_disk_unhealthy_free_ratio=0.0,
    )
    assert (await low.check(["disk"]))["disk"].status is HealthStatus.DEGRADED
    assert (await full.check(["disk"]))["disk"].status is HealthStatus.UNHEALTHY
    disk = (await lenient.check(["disk"]))["disk"]
    assert disk.status is HealthStatus.HEALTHY
    assert isinstance(disk.data["free_bytes"], int) and disk.data["free_bytes"] > 0


async def test_queue_group_is_created_when_missing(swap: Swap) -> None:
    service = swap.build(redis_prefix=f"trawl-test-q{os.getpid()}-{time.monotonic_ns()}")
    first = (await service.check(["queue"]))["queue"]
    assert first.status is HealthStatus.HEALTHY, first
    assert first.data["group_created"] is True
    second = (await service.refresh(["queue"]))["queue"]
    assert second.data["group_created"] is False
    assert second.data["pending"] == 0


# --------------------------------------------------------------------------- service mechanics


async def test_results_are_cached_and_shared(swap: Swap) -> None:
    calls = 0

    async def counted() -> CheckResult:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.5)
        return healthy("fine")

    cached = swap.build(health_cache_ttl_s=30.0, health_check_timeout_s=2.0)
    cached.register("proxy_pools", counted)
    await cached.check(["proxy_pools"])
    await cached.check(["proxy_pools"])
    assert calls == 1  # the second call was served from the cache

    calls = 0
    uncached = swap.build(health_cache_ttl_s=0.0, health_check_timeout_s=2.0)
    uncached.register("proxy_pools", counted)
    await asyncio.gather(*(uncached.check(["proxy_pools"]) for _ in range(5)))
    assert calls == 1  # concurrent probes shared one run
    # TTL 0: a later probe is served the last result at once, and starts one refresh that
    # every probe meanwhile shares
    served, elapsed = await timed(
        asyncio.gather(*(uncached.check(["proxy_pools"]) for _ in range(5)))
    )
    assert elapsed < 0.4  # did not wait for the 0.5 s check
    assert all(r["proxy_pools"].detail == "fine" for r in served)
    assert all(r["proxy_pools"].age_s >= 0 for r in served)
    # counted() counts when it starts: five refreshes would jump straight past 2
    await eventually(lambda: calls >= 2, what="one background refresh")
    assert calls == 2


async def test_probes_never_wait_on_a_hung_dependency(swap: Swap) -> None:
    """A check that starts to hang after a good result: probes get the last result at once
    (with its age) until the background refresh's timeout marks the component unhealthy."""
    hang = asyncio.Event()
    release = asyncio.Event()

    async def flaky() -> CheckResult:
        if hang.is_set():
            await release.wait()
        return healthy("fine")

    service = swap.build(health_cache_ttl_s=0.0)
    service.register("webhook_outbox", flaky, critical=True)
    first = await service.readiness()
    assert first.status == "ready"
    hang.set()
    seen: list[str] = []

    async def unready() -> bool:
        ready, elapsed = await timed(service.readiness())
        # served from the last result, never waiting for the hung check (0.5 s timeout)
        assert elapsed < 0.4, elapsed
        seen.append(ready.status)
        return ready.status == "not_ready" and ready.failing == ["webhook_outbox"]

    await eventually(unready, what="the refresh's timeout to mark the component unhealthy")
    assert seen[0] == "ready"  # the stale result was served while the refresh hung
    report = (await service.check(["webhook_outbox"]))["webhook_outbox"]
    assert report.detail.startswith("no answer within 0.5s")
    release.set()


async def test_a_check_that_never_returns_is_unhealthy_within_the_timeout(swap: Swap) -> None:
    release = asyncio.Event()

    async def stuck() -> CheckResult:
        while not release.is_set():  # ignores cancellation, like a driver stuck in a close
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue
        return healthy("released")

    service = swap.build()
    service.register("webhook_outbox", stuck)
    first, elapsed = await timed(service.check(["webhook_outbox"]))
    assert elapsed < BUDGET_S
    assert first["webhook_outbox"].status is HealthStatus.UNHEALTHY
    assert first["webhook_outbox"].detail == "no answer within 0.5s"
    second, elapsed = await timed(service.check(["webhook_outbox"]))
    assert elapsed < 0.4  # the last result, served at once
    assert second["webhook_outbox"].status is HealthStatus.UNHEALTHY

    async def not_restarted() -> bool:
        # the refresh is not started again while the previous run is still stuck
        third = await service.check(["webhook_outbox"])
        return "previous check still hung" in third["webhook_outbox"].detail

    await eventually(not_restarted, what="the refresh to report the stuck run")
    release.set()

    async def recovered() -> bool:
        third = await service.check(["webhook_outbox"])
        return third["webhook_outbox"].status is HealthStatus.HEALTHY

    await eventually(recovered, what="the check to run again once the stuck one ended")


async def test_a_failing_check_is_unhealthy_with_a_redacted_detail(swap: Swap) -> None:
    async def broken() -> CheckResult:
        raise ConnectionError("cannot reach redis://user:s3cret@cache.internal:6379/0")

    service = swap.build()
    service.register("proxy_pools", broken)
    result = (await service.check(["proxy_pools"]))["proxy_pools"]
    assert result.status is HealthStatus.UNHEALTHY
    assert "s3cret" not in result.detail
    assert result.detail.startswith("ConnectionError: ")


async def test_registered_components_roll_up(swap: Swap) -> None:
    async def slow_pool() -> CheckResult:
        return degraded("1 of 3 proxies healthy", healthy=1, total=3)

    service = swap.build(redis_prefix="trawl-test-rollup")
    service.register("proxy_pools", slow_pool)
    service.register("workers", slow_pool)  # replace: no worker needed for this test
    report = await service.detailed()
    assert report.components["proxy_pools"].status is HealthStatus.DEGRADED
    assert report.components["proxy_pools"].data == {"healthy": 1, "total": 3}
    assert report.status is HealthStatus.DEGRADED  # non-critical degraded -> degraded
    ready = await service.readiness()
    assert ready.status == "ready"

    async def down() -> CheckResult:
        raise RuntimeError("outbox table missing")

    service.register("webhook_outbox", down, critical=True)
    assert (await service.detailed()).status is HealthStatus.UNHEALTHY
    assert (await service.readiness()).failing == ["webhook_outbox"]


async def test_a_check_returning_invalid_data_is_unhealthy(swap: Swap) -> None:
    async def bad_data() -> CheckResult:
        return CheckResult(HealthStatus.HEALTHY, "ok", {"pools": object()})

    service = swap.build()
    service.register("proxy_pools", bad_data)
    result = (await service.check(["proxy_pools"]))["proxy_pools"]
    assert result.status is HealthStatus.UNHEALTHY
    assert result.detail == "the check returned an invalid result"


def test_component_names_are_a_bounded_set(swap: Swap) -> None:
    service = swap.build()

    async def ok() -> CheckResult:
        return healthy("ok")

    for bad in ("Proxy", "proxy pools", "x" * 40, "", "1st", "p{user}"):
        with pytest.raises(ValueError, match="invalid"):
            service.register(bad, ok)
    for i in range(32 - len(service.components)):
        service.register(f"extra_{i}", ok)
    with pytest.raises(ValueError, match="too many"):
        service.register("one_more", ok)
    service.register("extra_0", ok)  # replacing an existing one is fine


async def test_status_gauges(swap: Swap, hung: HungServer, no_otel_env: pytest.MonkeyPatch) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    service = swap.build(redis_url=f"redis://127.0.0.1:{hung.port}/0")

    async def pools() -> CheckResult:
        return degraded("1 of 3 proxies healthy")

    service.register("proxy_pools", pools)
    service.register_metrics(provider.get_meter("test"))
    await service.check()

    values: dict[str, dict[str, float]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                expected_unit = "s" if metric.name == "trawl.health.component.age" else "{status}"
                assert metric.unit == expected_unit, metric.name
                for point in metric.data.data_points:
                    key = str((point.attributes or {}).get("trawl.health.component", ""))
                    values.setdefault(metric.name, {})[key] = point.value
    components = values["trawl.health.component.status"]
    assert components["database"] == 1.0
    assert components["redis"] == 0.0
    assert components["queue"] == 0.0
    assert components["proxy_pools"] == 0.5
    assert set(components) == set(service.components)
    assert values["trawl.health.status"] == {"": 0.0}
    ages = values["trawl.health.component.age"]
    assert set(ages) == set(service.components)
    assert all(0 <= age < 60 for age in ages.values())
    provider.shutdown()


async def test_checks_record_no_spans(swap: Swap, no_otel_env: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    service = swap.build()
    client = service.redis_probe.client
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    RedisInstrumentor.instrument_client(client, tracer_provider=provider)
    try:
        await client.ping()  # control: the instrumented client does trace
        assert exporter.get_finished_spans()
        exporter.clear()
        await service.check(["redis", "queue", "workers"])
        assert exporter.get_finished_spans() == ()
    finally:
        RedisInstrumentor.uninstrument_client(client)
        provider.shutdown()


async def test_openapi_documents_the_health_endpoints(admin_client: httpx.AsyncClient) -> None:
    spec = (await admin_client.get("/openapi.json")).json()
    ready = spec["paths"]["/health/ready"]["get"]["responses"]
    assert {"200", "503"} <= set(ready)
    assert ready["503"]["content"]["application/json"]["schema"]["$ref"].endswith("/Readiness")
    detailed = spec["paths"]["/health/detailed"]["get"]["responses"]
    assert {"200", "503"} <= set(detailed)
    assert "/health" in spec["paths"]


# --------------------------------------------------------------------------- worker healthcheck


@pytest.fixture
def healthcheck_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("TRAWL_") and k != "DATABASE_URL"
    }
    env.update(
        {"TRAWL_DATA_DIR": str(tmp_path), "TRAWL_ENVIRONMENT": "test", "TRAWL_STALE_AFTER_S": "5"}
    )
    yield env


def run_healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.healthcheck", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_worker_healthcheck_command(healthcheck_env: dict[str, str], tmp_path: Path) -> None:
    none = run_healthcheck(healthcheck_env)
    assert none.returncode == 1
    assert "no worker heartbeat file" in none.stderr
    assert len(none.stderr.strip().splitlines()) == 1

    path = alive_file(tmp_path, pid=4242)
    path.touch()
    fresh = run_healthcheck(healthcheck_env)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.startswith("ok: ")

    old = time.time() - 60
    os.utime(path, (old, old))
    stale = run_healthcheck(healthcheck_env)
    assert stale.returncode == 1
    assert "stale after 5s" in stale.stderr

    usage = subprocess.run(
        [sys.executable, "-m", "app.healthcheck"],
        env=healthcheck_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert usage.returncode == 2


async def test_detailed_with_a_hung_database_answers_at_once(
    app: Any, settings: Settings, admin_client: httpx.AsyncClient, hung: HungServer
) -> None:
    """The admin key cannot be checked against a hung database: 503 within the timeout, and
    the health token still reads the report without the database."""
    services = app.state.services
    original_db, original_settings = services.db, services.settings
    hung_db = Database(f"postgresql+asyncpg://u@127.0.0.1:{hung.port}/db")
    services.db = hung_db
    services.settings = original_settings.model_copy(
        update={"health_check_timeout_s": TIMEOUT_S, "health_token": SecretStr("t" * 40)}
    )
    try:
        started = time.monotonic()
        r = await admin_client.get("/health/detailed")
        assert time.monotonic() - started < TIMEOUT_S + 2.5  # bounded, not hanging
        assert r.status_code == 503
        assert r.json()["type"] == "/problems/auth-unavailable"
        r = await admin_client.get(
            "/health/detailed", headers={"authorization": "Bearer " + "t" * 40}
        )
        assert r.status_code in (200, 503)
        assert "components" in r.json()
        wrong = await admin_client.get(
            "/health/detailed", headers={"authorization": "Bearer " + "x" * 40}
        )
        assert wrong.status_code == 503  # not the token: an API key, unverifiable right now
    finally:
        services.db, services.settings = original_db, original_settings
        await hung_db.dispose()
