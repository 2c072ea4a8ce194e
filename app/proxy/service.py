"""Proxies as the admin API sees them. The proxy URL is encrypted at rest and never returned.

The functions that change pools or proxies commit: each is one unit of work
(docs/architecture.md)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import utcnow
from app.health import Check, CheckResult, degraded, healthy
from app.ids import new_id
from app.proxy import repository
from app.proxy.errors import ProxyNotFound, ProxyPoolNotFound
from app.proxy.health import Health, HealthStore, ProxyState, now_ms
from app.proxy.models import Proxy, ProxyPoolConfig, Strategy
from app.proxy.rotator import ProxyRotator
from app.proxy.schemas import (
    PoolRead,
    PoolUpdate,
    ProxyCreate,
    ProxyHealthRead,
    ProxyRead,
    ProxyUpdate,
    parse_proxy_url,
    redacted_label,
)
from app.security.secretbox import SecretBox


async def create(session: AsyncSession, box: SecretBox, payload: ProxyCreate) -> Proxy:
    raw = payload.url.get_secret_value()
    if await repository.get_pool(session, payload.pool) is None:
        session.add(ProxyPoolConfig(name=payload.pool, strategy=Strategy.ROUND_ROBIN))
        await session.flush()
    now = utcnow()
    proxy = Proxy(
        id=new_id("prx"),
        pool=payload.pool,
        url_enc=box.encrypt(raw),
        label=redacted_label(parse_proxy_url(raw)),
        enabled=payload.enabled,
        weight=payload.weight,
        created_at=now,
        updated_at=now,
    )
    session.add(proxy)
    await session.commit()
    return proxy


async def get(session: AsyncSession, proxy_id: str) -> Proxy:
    proxy = await repository.get_proxy(session, proxy_id)
    if proxy is None:
        raise ProxyNotFound(f"No proxy with id {proxy_id!r}")
    return proxy


async def update(
    session: AsyncSession, box: SecretBox, health: HealthStore, proxy_id: str, payload: ProxyUpdate
) -> Proxy:
    proxy = await get(session, proxy_id)
    if payload.enabled is not None:
        if payload.enabled and not proxy.enabled:
            await health.reset(proxy.id)  # re-enabling by an admin clears cooldown and dead
        proxy.enabled = payload.enabled
    if payload.weight is not None:
        proxy.weight = payload.weight
    if payload.url is not None:
        raw = payload.url.get_secret_value()
        proxy.url_enc = box.encrypt(raw)
        proxy.label = redacted_label(parse_proxy_url(raw))
        await health.reset(proxy.id)
    proxy.updated_at = utcnow()
    await session.commit()
    return proxy


async def delete(session: AsyncSession, health: HealthStore, proxy_id: str) -> Proxy:
    proxy = await get(session, proxy_id)
    await session.delete(proxy)
    await session.commit()
    await health.reset(proxy.id)
    return proxy


async def update_pool(session: AsyncSession, name: str, payload: PoolUpdate) -> ProxyPoolConfig:
    pool = await repository.get_pool(session, name)
    if pool is None:
        raise ProxyPoolNotFound(f"No proxy pool named {name!r}")
    if payload.strategy is not None:
        pool.strategy = payload.strategy
    if payload.sticky is not None:
        pool.sticky = payload.sticky
    pool.updated_at = utcnow()
    await session.commit()
    return pool


async def pool_exists(session: AsyncSession, name: str) -> bool:
    """A pool exists when it has a proxy (what a job may name in ``options.proxy_pool``)."""
    return await repository.exists(session, name)


def health_read(proxy: Proxy, health: Health) -> ProxyHealthRead:
    state = health.effective_state(now_ms()) if proxy.enabled else ProxyState.DISABLED
    return ProxyHealthRead(
        state=state.value,
        score=round(health.score, 4),
        consecutive_failures=health.failures,
        cooldown_until=health.cooldown_until,
    )


def to_read(proxy: Proxy, health: Health) -> ProxyRead:
    return ProxyRead(
        id=proxy.id,
        pool=proxy.pool,
        label=proxy.label,
        enabled=proxy.enabled,
        weight=proxy.weight,
        health=health_read(proxy, health),
        created_at=proxy.created_at,
        updated_at=proxy.updated_at,
    )


async def read_many(store: HealthStore, proxies: list[Proxy]) -> list[ProxyRead]:
    health = await store.read([p.id for p in proxies])
    return [to_read(p, health[p.id]) for p in proxies]


async def read(store: HealthStore, proxy: Proxy) -> ProxyRead:
    [one] = await read_many(store, [proxy])
    return one


async def list_proxies(
    session: AsyncSession, store: HealthStore, pool: str | None = None
) -> list[ProxyRead]:
    return await read_many(store, await repository.list_proxies(session, pool))


async def _summary(session: AsyncSession, store: HealthStore, pool: ProxyPoolConfig) -> PoolRead:
    proxies = await repository.list_proxies(session, pool.name)
    states = dict.fromkeys([s.value for s in ProxyState], 0)
    for item in await read_many(store, proxies):
        states[item.health.state] += 1
    return PoolRead(
        name=pool.name,
        strategy=Strategy(pool.strategy),
        sticky=pool.sticky,
        proxies=len(proxies),
        states=states,
    )


async def pools(session: AsyncSession, store: HealthStore) -> list[PoolRead]:
    return [await _summary(session, store, p) for p in await repository.list_pools(session)]


async def pool_read(session: AsyncSession, store: HealthStore, name: str) -> PoolRead:
    config = await repository.get_pool(session, name)
    if config is None:
        raise ProxyPoolNotFound(f"No proxy pool named {name!r}")
    return await _summary(session, store, config)


def pools_check(rotator: ProxyRotator) -> Check:
    """Health of the proxy pools: healthy proxies per pool; a pool with none is degraded."""

    async def check() -> CheckResult:
        snapshot = await rotator.snapshot()
        if not snapshot:
            return healthy("no proxy pools configured")
        data = {
            f"{pool}.healthy": int(states.get("healthy", 0)) for pool, states in snapshot.items()
        }
        empty = sorted(
            pool
            for pool, states in snapshot.items()
            if states.get("healthy", 0) == 0
            and sum(states.values()) - states.get("disabled", 0) > 0
        )
        if empty:
            return degraded(f"no healthy proxy in pool(s) {', '.join(empty)}", **data)
        return healthy(f"{len(snapshot)} pool(s) with healthy proxies", **data)

    return check
