"""Per-domain politeness against a real Redis: reserved starts, booked returns, the concurrency
limit and ``Retry-After`` throttling; and, through a real worker, that a backlog on one domain
comes back about once per task instead of every few seconds.

Intervals are seconds long, so that the few milliseconds between two calls cannot change what
is asserted.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from app.job.urls import check_url, domain_of
from app.main import create_app
from app.queue import Politeness, stream_name
from app.worker import Worker
from tests.support.config import ADMIN_KEY, make_settings
from tests.support.databases import Databases
from tests.support.jobs import job_body, wait_job
from tests.support.target_site import TargetSite
from tests.support.wait import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")
LEASE_S = 60.0
SLACK_S = 0.5  # time that may pass between two calls of a test


@pytest_asyncio.fixture(loop_scope="session")
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def _domain() -> str:
    return f"polite-{uuid.uuid4().hex[:8]}.example"


def _politeness(redis: Redis, **kw: Any) -> Politeness:
    return Politeness(redis, f"trawl-test-{uuid.uuid4().hex[:8]}", **kw)


async def test_one_start_now_and_the_next_ones_reserved_one_interval_apart(redis: Redis) -> None:
    polite = _politeness(redis, concurrency=50, rate_per_s=0.5)  # one start per 2 s
    domain = _domain()
    grants = [await polite.acquire(domain, LEASE_S, budget_s=60) for _ in range(4)]
    assert grants[0].granted and grants[0].wait_s == 0
    later = grants[1:]
    assert all(g.reserved and not g.granted and not g.defer for g in later)
    assert {g.reason for g in later} == {"rate"}
    waits = [g.wait_s for g in later]
    for k, wait in enumerate(waits, start=1):
        assert 2.0 * k - SLACK_S <= wait <= 2.0 * k
    # the reserved caller, back at its start, takes its lease without moving the next start
    held = await polite.acquire(domain, LEASE_S, budget_s=60, reserved=True)
    assert held.granted
    after = await polite.acquire(domain, LEASE_S, budget_s=60)
    assert after.reserved and 8.0 - SLACK_S <= after.wait_s <= 8.0
    leases = await redis.zcard(polite._keys(domain)[0])
    assert leases == 2  # the first grant and the reserved one


async def test_a_wait_beyond_the_budget_is_booked_one_interval_after_the_last(
    redis: Redis,
) -> None:
    polite = _politeness(redis, concurrency=50, rate_per_s=0.5, horizon_s=7)
    domain = _domain()
    assert (await polite.acquire(domain, LEASE_S, budget_s=0)).granted
    booked = [await polite.acquire(domain, LEASE_S, budget_s=0) for _ in range(4)]
    assert all(g.defer and not g.reserved and g.reason == "rate" for g in booked)
    waits = [g.wait_s for g in booked]
    for k, wait in enumerate(waits[:3], start=1):
        assert 2.0 * k - SLACK_S <= wait <= 2.0 * k
    # the horizon caps a booking (a cancelled job's bookings cannot hold the line longer)
    assert 7.0 - SLACK_S <= waits[3] <= 7.0
    # a booking takes no start and no lease: a caller willing to wait still gets the next one
    reserved = await polite.acquire(domain, LEASE_S, budget_s=60)
    assert reserved.reserved and reserved.wait_s <= 2.0
    assert await redis.zcard(polite._keys(domain)[0]) == 1


async def test_a_full_domain_is_waited_out_or_booked_and_freed_by_a_release(
    redis: Redis,
) -> None:
    polite = _politeness(redis, concurrency=1, rate_per_s=1000)
    domain = _domain()
    first = await polite.acquire(domain, LEASE_S, budget_s=10)
    assert first.granted
    short = await polite.acquire(domain, LEASE_S, budget_s=10)
    assert short.reason == "concurrency" and not short.defer and 0 < short.wait_s <= 1.0
    long = await polite.acquire(domain, LEASE_S, budget_s=0)
    assert long.reason == "concurrency" and long.defer
    await polite.release(domain, first.token)
    # past the 1 ms interval of the first start, so that only the concurrency limit answers
    await asyncio.sleep(0.005)
    assert (await polite.acquire(domain, LEASE_S, budget_s=0)).granted


async def test_a_throttled_domain_books_its_returns_after_the_retry_after(redis: Redis) -> None:
    polite = _politeness(redis, concurrency=50, rate_per_s=0.5)
    domain = _domain()
    await polite.throttle(domain, 30)
    short = await polite.acquire(domain, LEASE_S, budget_s=60)
    assert short.reason == "throttled" and not short.defer
    assert 30 - SLACK_S <= short.wait_s <= 30
    first = await polite.acquire(domain, LEASE_S, budget_s=2)
    second = await polite.acquire(domain, LEASE_S, budget_s=2)
    assert first.defer and second.defer and {first.reason, second.reason} == {"throttled"}
    assert 30 - SLACK_S <= first.wait_s <= 30
    assert 2.0 - SLACK_S <= second.wait_s - first.wait_s <= 2.0
    assert await redis.zcard(polite._keys(domain)[0]) == 0


async def test_workers_whose_clocks_disagree_share_one_schedule(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scripts read Redis's clock, not the caller's: a worker on a host whose clock runs
    30 s ahead (or an event loop that read the time long before its script ran) does not move
    the domain's next start, so the worker after it is not booked 30 s out."""
    polite = _politeness(redis, concurrency=50, rate_per_s=0.5)  # one start per 2 s
    domain = _domain()
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 30.0)  # a host 30 s ahead
    ahead = await polite.acquire(domain, LEASE_S, budget_s=0)
    await polite.throttle(domain, 1.0)  # a Retry-After of 1 s, read on that host
    monkeypatch.setattr(time, "time", real_time)
    assert ahead.granted
    after = await polite.acquire(domain, LEASE_S, budget_s=60)
    # throttled for 1 s by Redis's clock, not 31 s; then the next start, 2 s after the first
    assert after.reason == "throttled" and not after.defer and after.wait_s <= 1.0
    booked = await polite.acquire(domain, LEASE_S, budget_s=0)
    assert booked.defer and booked.wait_s <= 2.0


@pytest_asyncio.fixture(loop_scope="session")
async def polite_stack(
    databases: Databases, redis_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """An API and a worker whose domains admit 10 starts a second, 2 at a time, and whose
    worker waits at most 0.3 s for a slot."""
    settings = make_settings(
        await databases.anew(),
        redis_url,
        domain_rate_per_s=10.0,
        domain_concurrency=2,
        politeness_max_wait_s=0.3,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        worker = Worker(settings, redis_url)
        running = asyncio.create_task(worker.run())
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://trawl.test",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
        ) as client:
            yield client, settings
        worker.stop()
        await asyncio.wait_for(running, 40)


async def test_a_backlog_on_one_domain_comes_back_about_once_per_task(
    polite_stack: tuple[httpx.AsyncClient, Any], site: TargetSite, redis: Redis
) -> None:
    """40 URLs on one domain at 10 starts a second: the worker can wait out 3 of them, the
    others are deferred. Each deferred task is booked a return time of its own, so the stream
    gets about one more message per deferred task: 32 to 37 sent again in six runs here, on
    SQLite and PostgreSQL. Before (a deferred task retried after the next free start, within a
    few hundred milliseconds, and a dispatcher could send a new job's tasks a second time):
    51 and 77 on SQLite, 112 and 120 on PostgreSQL."""
    client, settings = polite_stack
    urls = [site.url(f"/page/polite-{i}") for i in range(40)]
    r = await client.post("/v1/jobs", json=job_body(urls))
    assert r.status_code == 202, r.text
    done = await wait_job(client, r.json()["id"], timeout=60)
    assert done["status"] == "completed" and done["progress"]["succeeded"] == 40
    info = await redis.xinfo_stream(stream_name(settings.redis_prefix))
    sent_again = int(info["entries-added"]) - len(urls)
    assert 0 < sent_again <= 1.25 * len(urls), sent_again


async def test_a_cancelled_jobs_bookings_are_forgotten(
    polite_stack: tuple[httpx.AsyncClient, Any], site: TargetSite, redis: Redis
) -> None:
    """A cancelled job's waiting tasks never come back: the next job's tasks are not booked
    behind them (the domain would sit idle until the line ran out)."""
    client, settings = polite_stack
    urls = [site.url(f"/page/cancelled-{i}") for i in range(200)]
    domain = domain_of(check_url(urls[0], max_length=len(urls[0])))
    polite = Politeness(redis, settings.redis_prefix, concurrency=2, rate_per_s=10)
    booked_key = polite._keys(domain)[3]
    r = await client.post("/v1/jobs", json=job_body(urls))
    assert r.status_code == 202, r.text

    async def booked_seconds_ahead() -> bool:
        value = await redis.get(booked_key)
        return value is not None and int(value) - time.time() * 1000 > 4000

    await eventually(booked_seconds_ahead, 60, what="returns booked seconds ahead")
    cancel = await client.post(f"/v1/jobs/{r.json()['id']}/cancel")
    assert cancel.status_code == 202, cancel.text
    # behind at most the reservations still held, and the bookings of the few deliveries the
    # worker had in hand when the job was cancelled (0.1 s each)
    nxt = await polite.acquire(domain, LEASE_S, budget_s=0)
    assert nxt.granted or nxt.wait_s <= 2.0, nxt
