"""Queue gauges (app/job/gauges.py) from real SQL and a real Redis stream; one oldest-ready
definition for the gauge and the health check; the ``/metrics`` route; ``make run`` ports."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from redis.asyncio import Redis

from app.auth.models import ApiKey
from app.db import Database
from app.db.base import utcnow
from app.health.checks import DatabaseProbe
from app.job.checks import queue_check
from app.job.gauges import QueueGauges
from app.job.models import Job, Task
from app.main import create_app
from app.queue.broker import CONSUMER_GROUP, stream_name
from app.telemetry.metrics import BusinessMetrics
from tests.support.config import make_settings
from tests.support.databases import Databases

HOUR = timedelta(hours=1)


@pytest_asyncio.fixture(loop_scope="session")
async def seeded(databases: Databases) -> AsyncIterator[Database]:
    """A database with one job: a task due an hour ago (queued two hours ago), a task deferred
    an hour into the future (queued a day ago), a running task."""
    db = Database(await databases.anew())
    now = utcnow()
    async with db.transaction() as s:
        s.add(ApiKey(id="key_g", name="g", prefix="p", key_hash="g" * 64, scopes=["jobs"]))
        await s.flush()
        s.add(
            Job(
                id="job_g",
                api_key_id="key_g",
                request_hash="0" * 64,
                extract={},
                options={},
                total_tasks=3,
            )
        )
        await s.flush()
        for tid, status, due, enqueued in (
            ("tsk_due", "queued", now - HOUR, now - 2 * HOUR),
            ("tsk_deferred", "queued", now + HOUR, now - 24 * HOUR),
            ("tsk_running", "running", now - 3 * HOUR, now - 3 * HOUR),
        ):
            s.add(
                Task(
                    id=tid,
                    job_id="job_g",
                    position=0,
                    url="http://x/",
                    domain="x",
                    status=status,
                    attempt=0,
                    max_attempts=3,
                    next_attempt_at=due,
                    enqueued_at=enqueued,
                )
            )
    try:
        yield db
    finally:
        await db.dispose()


def _gauges(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], float]]]:
    data = reader.get_metrics_data()
    if data is None:  # nothing observed at all
        return {}
    return {
        m.name: [(dict(p.attributes or {}), float(p.value)) for p in m.data.data_points]
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name.startswith(("trawl.queue.", "trawl.job.active"))
    }


@dataclass
class Metered:
    reader: InMemoryMetricReader
    metrics: BusinessMetrics


@pytest.fixture
def metered() -> Iterator[Metered]:
    """The business instruments on a provider of their own, read in memory."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield Metered(reader, BusinessMetrics(provider.get_meter("trawl")))
    provider.shutdown()


async def test_one_oldest_ready_definition_for_the_gauge_and_the_health_check(
    seeded: Database, redis_url: str, metered: Metered
) -> None:
    """Age since the task became due: the deferred task is not ready (its day-old enqueue time
    must not count) and the ready one is an hour old, not two."""
    redis = Redis.from_url(redis_url)
    prefix = f"trawl-g-{uuid.uuid4().hex[:6]}"
    gauges = QueueGauges(seeded, redis, prefix, 10.0, metrics=metered.metrics)
    probe = DatabaseProbe(seeded.url, timeout_s=5)
    settings = make_settings(seeded.url, redis_url, redis_prefix=prefix)
    check = queue_check(redis, probe.engine, settings)
    try:
        gauges.register()
        await gauges.sample()
        backlog = (await check()).data
        values = _gauges(metered.reader)
    finally:
        gauges.unregister()
        await probe.close()
        await redis.aclose()
    gauge_age = values["trawl.queue.oldest_age"][0][1]
    health_age = backlog["oldest_ready_age_s"]
    assert isinstance(health_age, float)
    for age in (gauge_age, health_age):
        assert HOUR.total_seconds() <= age < 2 * HOUR.total_seconds()
    assert backlog["ready"] == 1 and backlog["depth"] == 2
    depth = {a["trawl.queue.state"]: v for a, v in values["trawl.queue.depth"]}
    assert depth == {"ready": 1, "delayed": 1, "in_flight": 1, "dead": 0}
    active = {a["trawl.job.status"]: v for a, v in values["trawl.job.active"]}
    assert active == {"queued": 1, "running": 0, "cancelling": 0}


async def test_stream_gauges_and_a_silent_source(
    seeded: Database, redis_url: str, metered: Metered
) -> None:
    prefix = f"trawl-g-{uuid.uuid4().hex[:6]}"
    redis = Redis.from_url(redis_url)
    stream = stream_name(prefix)
    gauges = QueueGauges(seeded, redis, prefix, 10.0, metrics=metered.metrics)
    reader = metered.reader
    try:
        gauges.register()
        await gauges.sample()  # no stream yet: both 0
        values = _gauges(reader)
        assert values["trawl.queue.stream.length"] == [({}, 0.0)]
        assert values["trawl.queue.stream.pending"] == [({}, 0.0)]

        for i in range(3):
            await redis.xadd(stream, {"n": str(i)})
        await redis.xgroup_create(stream, CONSUMER_GROUP, id="0")
        await redis.xreadgroup(CONSUMER_GROUP, "c1", {stream: ">"}, count=2)
        await gauges.sample()
        values = _gauges(reader)
        assert values["trawl.queue.stream.length"] == [({}, 3.0)]
        assert values["trawl.queue.stream.pending"] == [({}, 2.0)]

        # a sampler that is not active (a worker that does not dispatch) reports nothing
        gauges.active = lambda: False
        await gauges.sample()
        assert not [v for v in _gauges(reader).values() if v]
    finally:
        gauges.unregister()
        await redis.delete(stream)
        await redis.aclose()


async def test_metrics_route_is_a_problem_without_the_scrape_exporter(
    admin_client: httpx.AsyncClient,
) -> None:
    r = await admin_client.get("/metrics")  # the suite runs with OTEL_METRICS_EXPORTER=none
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == "/problems/metrics-exporter-off"


async def test_metrics_route_can_be_turned_off(database_url: str, redis_url: str) -> None:
    async def problem_type(**overrides: Any) -> str:
        app = create_app(make_settings(database_url, redis_url, **overrides))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://trawl.test") as c:
            r = await c.get("/metrics")
        assert r.status_code == 404
        return str(r.json()["type"])

    assert await problem_type() == "/problems/metrics-exporter-off"  # the route is there
    assert await problem_type(metrics_endpoint_enabled=False) != "/problems/metrics-exporter-off"
