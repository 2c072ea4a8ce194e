"""Choosing a proxy for a fetch, and learning from what happened.

``select()`` picks an available proxy of a pool by the pool's strategy (or keeps the sticky one
of this job and domain) and says why the proxy changed; ``report()`` feeds the outcome back into
the proxy's shared health. A pool with no available proxy yields ``None``: the caller fails the
attempt with ``no_proxy``; it never goes direct.
"""

from __future__ import annotations

import asyncio
import enum
import random
from dataclasses import dataclass, field

from redis.asyncio import Redis

from app.db import Database
from app.fetch.outcome import Outcome
from app.proxy import repository
from app.proxy.health import Health, HealthStore, ProxyState, Signal, now_ms, signal_of
from app.proxy.metrics import ProxyMetrics, default_metrics
from app.proxy.models import Strategy
from app.security.secretbox import SecretBox, SecretUnreadable
from app.settings import Settings

HEALTH_TIE = 0.05  # health_weighted: scores within this of the best share the traffic


class RotationReason(enum.StrEnum):
    STRATEGY = "strategy"
    BLOCKED = "blocked"
    PROXY_ERROR = "proxy_error"
    COOLDOWN = "cooldown"


@dataclass(frozen=True, slots=True)
class ProxyEntry:
    id: str
    url: str = field(repr=False)
    label: str
    weight: int
    enabled: bool


@dataclass(frozen=True, slots=True)
class PoolConfig:
    name: str
    strategy: Strategy
    sticky: bool
    proxies: tuple[ProxyEntry, ...]


@dataclass(frozen=True, slots=True)
class Selection:
    """The proxy for one attempt. ``proxy_url`` (with credentials) is for the transport only;
    log and display ``label``. ``reason`` is ``None`` when a sticky proxy was kept."""

    pool: str
    proxy_id: str
    proxy_url: str = field(repr=False)
    label: str
    reason: RotationReason | None
    job_id: str
    domain: str


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _failure_reason(outcome: Outcome) -> RotationReason:
    return RotationReason.BLOCKED if outcome == Outcome.BLOCKED else RotationReason.PROXY_ERROR


class ProxyRotator:
    def __init__(
        self,
        db: Database,
        redis: Redis,
        settings: Settings,
        *,
        box: SecretBox | None = None,
        metrics: ProxyMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.redis = redis
        self.settings = settings
        self.box = box or SecretBox.from_settings(settings)
        self.metrics = metrics or default_metrics()
        self.rng = rng or random.Random()  # noqa: S311 (load spreading, not a secret)
        self.health = HealthStore(redis, settings, rng=self.rng)
        self._configs: dict[str, tuple[float, PoolConfig | None]] = {}

    # -- configuration (SQL, cached briefly) -------------------------------------------------

    async def config(self, pool: str) -> PoolConfig | None:
        loop = asyncio.get_running_loop()
        cached = self._configs.get(pool)
        if cached is not None and loop.time() < cached[0]:
            return cached[1]
        async with self.db.session() as session:
            row, proxies = await repository.load_pool(session, pool)
        config = None
        if row is not None:
            entries = []
            for p in proxies:
                try:
                    url = self.box.decrypt(p.url_enc)
                except SecretUnreadable:
                    continue  # counted as missing; the admin API shows it
                entries.append(ProxyEntry(p.id, url, p.label, p.weight, p.enabled))
            config = PoolConfig(row.name, Strategy(row.strategy), row.sticky, tuple(entries))
        self._configs[pool] = (loop.time() + self.settings.proxy_config_refresh_s, config)
        return config

    # -- selection ---------------------------------------------------------------------------

    def _memo_key(self, job_id: str, domain: str) -> str:
        return f"{self.settings.redis_prefix}:proxy:job:{job_id}:{domain}"

    async def select(
        self, pool: str, *, job_id: str, domain: str, sticky: bool | None = None
    ) -> Selection | None:
        """An available proxy of ``pool`` for this job and domain, or ``None`` (fail closed)."""
        config = await self.config(pool)
        if config is None:
            return None
        enabled = [p for p in config.proxies if p.enabled]
        health = await self.health.read([p.id for p in enabled])
        now = now_ms()
        available = [p for p in enabled if health[p.id].available(now)]
        memo_key = self._memo_key(job_id, domain)
        memo = {_text(k): _text(v) for k, v in (await self.redis.hgetall(memo_key)).items()}
        previous, last_failure = memo.get("proxy"), memo.get("failure")
        if not available:
            return None
        keep = config.sticky if sticky is None else sticky
        reason = RotationReason.STRATEGY
        if last_failure in (RotationReason.BLOCKED, RotationReason.PROXY_ERROR):
            reason = RotationReason(last_failure)
        elif previous and keep:
            kept = next((p for p in available if p.id == previous), None)
            if kept is not None:
                await self.redis.pexpire(memo_key, int(self.settings.proxy_sticky_ttl_s * 1000))
                return self._selection(config, kept, None, job_id, domain)
            reason = RotationReason.COOLDOWN
        candidates = available
        if last_failure and previous and len(available) > 1:
            candidates = [p for p in available if p.id != previous]  # rotate away from it
        chosen = await self._pick(config, candidates, health)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(memo_key, "proxy", chosen.id)
            pipe.hdel(memo_key, "failure")
            pipe.pexpire(memo_key, int(self.settings.proxy_sticky_ttl_s * 1000))
            await pipe.execute()
        self.metrics.rotation(config.name, reason.value)
        return self._selection(config, chosen, reason, job_id, domain)

    @staticmethod
    def _selection(
        config: PoolConfig,
        proxy: ProxyEntry,
        reason: RotationReason | None,
        job_id: str,
        domain: str,
    ) -> Selection:
        return Selection(config.name, proxy.id, proxy.url, proxy.label, reason, job_id, domain)

    async def _pick(
        self, config: PoolConfig, candidates: list[ProxyEntry], health: dict[str, Health]
    ) -> ProxyEntry:
        ordered = sorted(candidates, key=lambda p: p.id)
        if config.strategy == Strategy.ROUND_ROBIN:
            turn = await self.redis.incr(f"{self.settings.redis_prefix}:proxy:rr:{config.name}")
            return ordered[(int(turn) - 1) % len(ordered)]
        if config.strategy == Strategy.HEALTH_WEIGHTED:
            best = max(health[p.id].score for p in ordered)
            ordered = [p for p in ordered if health[p.id].score >= best - HEALTH_TIE]
        return self.rng.choices(ordered, weights=[p.weight for p in ordered])[0]

    # -- feedback ----------------------------------------------------------------------------

    async def report(
        self, selection: Selection, outcome: Outcome, duration_s: float | None = None
    ) -> Health:
        """Update the proxy's shared health with the attempt's outcome; count the request (and
        time it, when ``duration_s`` is given)."""
        signal = signal_of(outcome)
        health = await self.health.record(selection.proxy_id, signal)
        if signal == Signal.FAILURE:
            memo_key = self._memo_key(selection.job_id, selection.domain)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(memo_key, "failure", _failure_reason(outcome).value)
                pipe.pexpire(memo_key, int(self.settings.proxy_sticky_ttl_s * 1000))
                await pipe.execute()
        self.metrics.request(selection.pool, outcome.value, duration_s)
        return health

    async def reset(self, proxy_id: str) -> None:
        await self.health.reset(proxy_id)

    # -- observation -------------------------------------------------------------------------

    async def snapshot(self) -> dict[str, dict[str, int]]:
        """Proxies per pool and state, read now; also refreshes the pool-size gauge's cache."""
        async with self.db.session() as session:
            pools = await repository.list_pools(session)
            proxies = await repository.list_proxies(session)
        health = await self.health.read([p.id for p in proxies if p.enabled])
        now = now_ms()
        out: dict[str, dict[str, int]] = {
            pool.name: dict.fromkeys([s.value for s in ProxyState], 0) for pool in pools
        }
        for p in proxies:
            state = health[p.id].effective_state(now) if p.enabled else ProxyState.DISABLED
            out.setdefault(p.pool, dict.fromkeys([s.value for s in ProxyState], 0))
            out[p.pool][state.value] += 1
        self.metrics.set_snapshot(out)
        return out
