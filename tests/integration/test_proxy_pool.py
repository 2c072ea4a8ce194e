"""Proxy rotation and health against real Redis, a real database, real forward proxies and the
loopback target site."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from pydantic import SecretStr
from redis.asyncio import Redis

from app.db import Database
from app.fetch.client import FetchPolicy
from app.fetch.outcome import Outcome
from app.proxy import service as proxy_service
from app.proxy.egress import Egress, ProxyClients
from app.proxy.health import ProxyState, Signal, now_ms
from app.proxy.metrics import ProxyMetrics
from app.proxy.models import Strategy
from app.proxy.rotator import ProxyRotator, RotationReason
from app.proxy.schemas import PoolUpdate, ProxyCreate
from app.security.secretbox import SecretBox
from app.settings import Settings
from tests.support.config import make_settings
from tests.support.forward_proxy import ForwardProxy
from tests.support.net import closed_port
from tests.support.target_site import TargetSite
from tests.support.wait import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")

FAST = {
    "proxy_cooldown_base_s": 0.3,
    "proxy_cooldown_cap_s": 2.0,
    "proxy_cooldown_jitter": 0.0,
    "proxy_dead_after": 3,
    "proxy_dead_retry_s": 0.6,
    "proxy_config_refresh_s": 0.0,
}
POLICY = FetchPolicy(timeout_s=3, max_bytes=100_000, max_redirects=3, headers={})


@pytest.fixture
def psettings(database_url: str, redis_url: str) -> Settings:
    return make_settings(database_url, redis_url, **FAST)


@pytest_asyncio.fixture(loop_scope="session")
async def db(psettings: Settings) -> AsyncIterator[Database]:
    database = Database(psettings.sqlalchemy_url)
    yield database
    await database.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def aredis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest_asyncio.fixture(loop_scope="session")
async def rotator(
    db: Database, aredis: Redis, psettings: Settings, reader: InMemoryMetricReader
) -> ProxyRotator:
    meter = MeterProvider(metric_readers=[reader]).get_meter("trawl")
    return ProxyRotator(db, aredis, psettings, metrics=ProxyMetrics(meter), rng=random.Random(7))


async def add_pool(
    db: Database,
    settings: Settings,
    urls: list[str],
    strategy: Strategy = Strategy.ROUND_ROBIN,
    weights: list[int] | None = None,
    sticky: bool = False,
) -> tuple[str, list[str]]:
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    box = SecretBox.from_settings(settings)
    ids = []
    async with db.session() as session:  # each service call commits (a unit of work)
        for i, url in enumerate(urls):
            weight = weights[i] if weights else 1
            proxy = await proxy_service.create(
                session, box, ProxyCreate(pool=pool, url=SecretStr(url), weight=weight)
            )
            ids.append(proxy.id)
        await proxy_service.update_pool(session, pool, PoolUpdate(strategy=strategy, sticky=sticky))
    return pool, ids


async def available(rotator: ProxyRotator, proxy_id: str) -> bool:
    """The proxy's cooldown is over (read from the shared health, no selection made)."""
    return (await rotator.health.read([proxy_id]))[proxy_id].available(now_ms())


def fake_urls(n: int) -> list[str]:
    return [f"http://127.0.0.1:{closed_port()}" for _ in range(n)]


async def test_round_robin_order(rotator: ProxyRotator, db: Database, psettings: Settings) -> None:
    pool, ids = await add_pool(db, psettings, fake_urls(3))
    picks = []
    for i in range(6):
        sel = await rotator.select(pool, job_id=f"j{i}", domain="d")
        assert sel is not None and sel.reason == RotationReason.STRATEGY
        picks.append(sel.proxy_id)
    assert picks == ids + ids


async def test_random_respects_weights(
    rotator: ProxyRotator, db: Database, psettings: Settings
) -> None:
    pool, ids = await add_pool(db, psettings, fake_urls(2), Strategy.RANDOM, weights=[1, 4])
    counts = Counter()
    for i in range(300):
        sel = await rotator.select(pool, job_id=f"j{i}", domain="d")
        assert sel is not None
        counts[sel.proxy_id] += 1
    assert set(counts) == set(ids)
    assert counts[ids[1]] > 2 * counts[ids[0]]


async def test_health_weighted_prefers_best_score(
    rotator: ProxyRotator, db: Database, psettings: Settings
) -> None:
    pool, ids = await add_pool(db, psettings, fake_urls(2), Strategy.HEALTH_WEIGHTED)
    await rotator.health.record(ids[0], Signal.FAILURE)  # score 0.8, cooling down ~0.3 s
    await eventually(lambda: available(rotator, ids[0]), what="the cooldown to end")
    picks = set()  # available again, but with a worse score
    for i in range(20):
        sel = await rotator.select(pool, job_id=f"h{i}", domain="d")
        assert sel is not None
        picks.add(sel.proxy_id)
    assert picks == {ids[1]}


async def test_banned_proxy_cools_down_then_recovers(
    rotator: ProxyRotator, db: Database, psettings: Settings
) -> None:
    pool, ids = await add_pool(db, psettings, fake_urls(2))
    first = await rotator.select(pool, job_id="job", domain="shop.test")
    assert first is not None and first.proxy_id == ids[0]
    health = await rotator.report(first, Outcome.BLOCKED)
    assert health.state == ProxyState.COOLING_DOWN and health.failures == 1
    nxt = await rotator.select(pool, job_id="job", domain="shop.test")
    assert nxt is not None
    assert nxt.proxy_id == ids[1] and nxt.reason == RotationReason.BLOCKED
    for i in range(3):  # while cooling down, only the other proxy is used
        sel = await rotator.select(pool, job_id=f"other{i}", domain="d")
        assert sel is not None and sel.proxy_id == ids[1]
    assert (await rotator.snapshot())[pool]["cooling_down"] == 1
    await eventually(lambda: available(rotator, ids[0]), what="the cooldown to end")
    back = {(await rotator.select(pool, job_id=f"x{i}", domain="d")) for i in range(2)}
    assert {s.proxy_id for s in back if s} == set(ids)
    recovered = await rotator.report(first, Outcome.SUCCESS)
    assert recovered.state == ProxyState.HEALTHY and recovered.failures == 0
    assert (await rotator.snapshot())[pool]["healthy"] == 2


async def test_backoff_grows_and_dead_after_consecutive_failures(
    rotator: ProxyRotator, db: Database, psettings: Settings
) -> None:
    pool, [_pid] = await add_pool(db, psettings, fake_urls(1))
    sel = await rotator.select(pool, job_id="j", domain="d")
    assert sel is not None
    cooldowns = []
    for _ in range(3):
        before = time.time() * 1000
        h = await rotator.report(sel, Outcome.PROXY_ERROR)
        cooldowns.append(h.cooldown_until_ms - before)
    assert cooldowns[0] < cooldowns[1]  # 0.3 s, 0.6 s, then dead (max(1.2 s, 0.6 s))
    assert h.state == ProxyState.DEAD and h.failures == 3
    assert await rotator.select(pool, job_id="j2", domain="d") is None  # fail closed
    assert (await rotator.snapshot())[pool]["dead"] == 1
    await eventually(lambda: available(rotator, _pid), what="the dead proxy's retry time")
    probe = await rotator.select(pool, job_id="j3", domain="d")  # one probe after the long wait
    assert probe is not None
    assert (await rotator.report(probe, Outcome.SUCCESS)).state == ProxyState.HEALTHY


async def test_rate_limit_and_target_errors_do_not_burn_proxies(
    rotator: ProxyRotator, db: Database, psettings: Settings
) -> None:
    pool, [_pid] = await add_pool(db, psettings, fake_urls(1))
    sel = await rotator.select(pool, job_id="j", domain="d")
    assert sel is not None
    for outcome in [Outcome.RATE_LIMITED] * 10 + [Outcome.HTTP_ERROR, Outcome.EXTRACT_FAILED]:
        h = await rotator.report(sel, outcome)
        assert h.state == ProxyState.HEALTHY and h.failures == 0 and h.score == 1.0
    assert await rotator.select(pool, job_id="j", domain="d") is not None


async def test_no_proxy_available_and_unknown_pool(
    rotator: ProxyRotator, db: Database, psettings: Settings
) -> None:
    pool, ids = await add_pool(db, psettings, fake_urls(2))
    for _ in ids:
        sel = await rotator.select(pool, job_id="j", domain="d")
        assert sel is not None
        await rotator.report(sel, Outcome.PROXY_ERROR)
    assert await rotator.select(pool, job_id="j", domain="d") is None
    assert await rotator.select("no-such-pool", job_id="j", domain="d") is None


async def test_sticky_per_job_and_domain(
    rotator: ProxyRotator, db: Database, psettings: Settings
) -> None:
    pool, _ids = await add_pool(db, psettings, fake_urls(3), sticky=True)
    first = await rotator.select(pool, job_id="s", domain="a.test")
    assert first is not None and first.reason == RotationReason.STRATEGY
    for _ in range(3):
        again = await rotator.select(pool, job_id="s", domain="a.test")
        assert again is not None and again.proxy_id == first.proxy_id and again.reason is None
    other_domain = await rotator.select(pool, job_id="s", domain="b.test")
    assert other_domain is not None and other_domain.proxy_id != first.proxy_id
    # another job gets the sticky proxy banned: this job's next pick rotates for 'cooldown'
    await rotator.health.record(first.proxy_id, Signal.FAILURE)
    moved = await rotator.select(pool, job_id="s", domain="a.test")
    assert moved is not None
    assert moved.proxy_id != first.proxy_id and moved.reason == RotationReason.COOLDOWN


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out.setdefault(metric.name, []).extend(metric.data.data_points)
    return out


async def test_metrics_count_requests_rotations_and_pool_size(
    rotator: ProxyRotator, db: Database, psettings: Settings, reader: InMemoryMetricReader
) -> None:
    secret_url = f"http://user:s3cret@127.0.0.1:{closed_port()}"
    pool, _ids = await add_pool(db, psettings, [secret_url, *fake_urls(1)])
    sel = await rotator.select(pool, job_id="m", domain="d")
    assert sel is not None
    await rotator.report(sel, Outcome.BLOCKED)
    sel2 = await rotator.select(pool, job_id="m", domain="d")
    assert sel2 is not None
    await rotator.report(sel2, Outcome.SUCCESS)
    await rotator.snapshot()
    points = _points(reader)
    requests = {
        (p.attributes["trawl.proxy.pool"], p.attributes["trawl.outcome"]): p.value
        for p in points["trawl.proxy.requests"]
    }
    assert requests == {(pool, "blocked"): 1, (pool, "success"): 1}
    rotations = {
        p.attributes["trawl.proxy.rotation.reason"]: p.value
        for p in points["trawl.proxy.rotations"]
        if p.attributes["trawl.proxy.pool"] == pool
    }
    assert rotations == {"strategy": 1, "blocked": 1}
    sizes = {
        p.attributes["trawl.proxy.state"]: p.value
        for p in points["trawl.proxy.pool.size"]
        if p.attributes["trawl.proxy.pool"] == pool
    }
    assert sizes["cooling_down"] == 1 and sizes["healthy"] == 1
    for plist in points.values():
        for p in plist:
            for value in p.attributes.values():
                assert "127.0.0.1" not in str(value) and "s3cret" not in str(value)
    assert "s3cret" not in repr(sel) and "s3cret" not in sel.label


# -- through real forward proxies ------------------------------------------------------------


@pytest.fixture(scope="module")
def proxies() -> Iterator[dict[str, ForwardProxy]]:
    started = {
        "a": ForwardProxy("a").start(),
        "b": ForwardProxy("b").start(),
        "auth": ForwardProxy("auth", auth=("user", "pa:ss")).start(),
        "ban": ForwardProxy("ban", mode="ban").start(),
        "captcha": ForwardProxy("captcha", mode="captcha").start(),
        "hang": ForwardProxy("hang", mode="hang").start(),
    }
    yield started
    for p in started.values():
        p.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def egress(rotator: ProxyRotator, psettings: Settings) -> AsyncIterator[Egress]:
    direct = httpx.AsyncClient(trust_env=False)
    out = Egress(
        direct=direct,
        guard=None,
        rotator=rotator,
        clients=ProxyClients.for_user_agent(psettings.user_agent),
    )
    yield out
    await out.aclose()
    await direct.aclose()


async def test_fetch_through_a_real_proxy_with_credentials(
    egress: Egress,
    db: Database,
    psettings: Settings,
    proxies: dict[str, ForwardProxy],
    site: TargetSite,
) -> None:
    url = proxies["auth"].url("user", "pa%3Ass")
    pool, _ = await add_pool(db, psettings, [url])
    result = await egress.fetch(
        site.url("/whoami"), POLICY, pool=pool, job_id="c", domain="127.0.0.1"
    )
    assert result.outcome == "success", result.verdict
    assert b"Title auth" in result.body


async def test_banned_proxy_rotates_to_another(
    egress: Egress,
    db: Database,
    psettings: Settings,
    proxies: dict[str, ForwardProxy],
    site: TargetSite,
    rotator: ProxyRotator,
    reader: InMemoryMetricReader,
) -> None:
    pool, ids = await add_pool(db, psettings, [proxies["a"].url(), proxies["b"].url()])
    url = site.url("/ban-some?names=a")
    first = await egress.fetch(url, POLICY, pool=pool, job_id="r", domain="127.0.0.1")
    assert first.outcome == "blocked"
    second = await egress.fetch(url, POLICY, pool=pool, job_id="r", domain="127.0.0.1")
    assert second.outcome == "success" and b"Title b" in second.body
    # each attempt is timed per pool and outcome (the per-pool latency of the proxies board)
    timed = {
        p.attributes["trawl.outcome"]: (p.count, p.sum)
        for p in _points(reader)["trawl.proxy.request.duration"]
        if p.attributes["trawl.proxy.pool"] == pool
    }
    assert timed == {
        "blocked": (1, first.duration_s),
        "success": (1, second.duration_s),
    }
    health = await rotator.health.read(ids)
    assert health[ids[0]].state == ProxyState.COOLING_DOWN
    assert health[ids[1]].state == ProxyState.HEALTHY


@pytest.mark.parametrize(
    ("kind", "outcome"),
    [("ban", "blocked"), ("captcha", "blocked"), ("refused", "proxy_error"), ("hang", "timeout")],
)
async def test_bad_proxies_are_penalised(
    egress: Egress,
    db: Database,
    psettings: Settings,
    proxies: dict[str, ForwardProxy],
    site: TargetSite,
    rotator: ProxyRotator,
    kind: str,
    outcome: str,
) -> None:
    url = (
        f"http://user:s3cret@127.0.0.1:{closed_port()}"
        if kind == "refused"
        else proxies[kind].url()
    )
    pool, [pid] = await add_pool(db, psettings, [url])
    policy = FetchPolicy(timeout_s=0.5, max_bytes=100_000, max_redirects=3, headers={})
    before = site.hits["/page/1"]
    result = await egress.fetch(
        site.url("/page/1"), policy, pool=pool, job_id=kind, domain="127.0.0.1"
    )
    assert result.outcome == outcome
    assert "s3cret" not in result.verdict.reason and "127.0.0.1" not in result.verdict.reason
    assert (await rotator.health.read([pid]))[pid].state == ProxyState.COOLING_DOWN
    # all proxies of the pool down: fail closed, never direct
    again = await egress.fetch(
        site.url("/page/1"), policy, pool=pool, job_id=kind, domain="127.0.0.1"
    )
    assert again.outcome == "no_proxy" and again.verdict.retryable
    assert site.hits["/page/1"] == before


async def test_429_through_a_proxy_does_not_burn_it(
    egress: Egress,
    db: Database,
    psettings: Settings,
    proxies: dict[str, ForwardProxy],
    site: TargetSite,
    rotator: ProxyRotator,
) -> None:
    pool, [pid] = await add_pool(db, psettings, [proxies["a"].url()])
    for _ in range(3):
        result = await egress.fetch(
            site.url("/ratelimit?retry_after=1"), POLICY, pool=pool, job_id="rl", domain="x"
        )
        assert result.outcome == "rate_limited" and result.retry_after_s == 1
    health = (await rotator.health.read([pid]))[pid]
    assert health.state == ProxyState.HEALTHY and health.failures == 0


async def test_pools_health_check_degrades_when_a_pool_has_no_healthy_proxy(
    rotator: ProxyRotator, db: Database, psettings: Settings
) -> None:
    pool, _ids = await add_pool(db, psettings, fake_urls(1))
    check = proxy_service.pools_check(rotator)
    before = await check()
    assert before.data[f"{pool}.healthy"] == 1
    sel = await rotator.select(pool, job_id="h", domain="d")
    assert sel is not None
    await rotator.report(sel, Outcome.BLOCKED)  # its only proxy cools down
    after = await check()
    assert after.status == "degraded"
    assert pool in after.detail and after.data[f"{pool}.healthy"] == 0
    assert "127.0.0.1" not in after.detail  # pool names only, never proxy addresses


async def test_detailed_health_lists_proxy_pools_and_webhook_outbox(
    admin_client: Any,
) -> None:
    r = await admin_client.get("/health/detailed")
    components = r.json()["components"]
    assert {"proxy_pools", "webhook_outbox"} <= set(components)
    assert {"pending", "sending", "dead"} <= set(components["webhook_outbox"]["data"])
    assert components["proxy_pools"]["status"] in ("healthy", "degraded")
    assert components["proxy_pools"]["critical"] is False
