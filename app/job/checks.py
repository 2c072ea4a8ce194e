"""The job domain's health checks (docs/health.md): ``queue`` (critical) and ``workers``.

They run on the health service's own short-timeout connections (its probes), never on the
application's pools; ``register`` adds them to a :class:`~app.health.HealthService`.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.health import (
    SOFT_SHARE,
    Check,
    CheckResult,
    DataValue,
    HealthService,
    abandon,
    bounded,
    degraded,
    healthy,
    unhealthy,
)
from app.job import stats
from app.queue import count_workers, stream_state
from app.settings import Settings


def register(health: HealthService, settings: Settings) -> None:
    health.register(
        "queue",
        queue_check(health.redis_probe.client, health.db_probe.engine, settings),
        critical=True,
    )
    health.register("workers", workers_check(health.redis_probe.client, settings))


async def _backlog(engine: AsyncEngine) -> dict[str, DataValue]:
    async with engine.connect() as conn:
        backlog = await stats.backlog(conn)
    age = backlog.oldest_ready_age_s
    return {
        "depth": backlog.depth,
        "ready": backlog.ready,
        "oldest_ready_age_s": None if age is None else round(age, 3),
    }


async def _stream(redis: Redis, prefix: str) -> dict[str, DataValue]:
    state = await stream_state(redis, prefix, create_group=True)
    data: dict[str, DataValue] = {
        "stream_length": state.length,
        "group_created": state.group_created,
    }
    if state.consumers is not None:  # the group existed
        data.update(pending=state.pending, consumers=state.consumers, lag=state.lag)
    return data


def queue_check(redis: Redis, engine: AsyncEngine, settings: Settings) -> Check:
    """Stream and consumer group usable (the status; a missing group is created); the backlog
    from SQL is best effort (unknown when the database is down: still healthy)."""
    soft_s = settings.health_check_timeout_s * SOFT_SHARE

    async def check() -> CheckResult:
        stream_task = asyncio.ensure_future(_stream(redis, settings.redis_prefix))
        backlog: dict[str, DataValue] = {}
        note = ""
        try:
            try:
                backlog = await bounded(_backlog(engine), soft_s)
            except Exception as exc:
                note = f"; backlog unknown ({type(exc).__name__})"
            data = {**await stream_task, **backlog}
        except BaseException:
            abandon(stream_task)
            raise
        age = backlog.get("oldest_ready_age_s")
        summary = f"{backlog.get('depth', '?')} queued, {backlog.get('ready', '?')} ready"
        if data.get("group_created"):
            summary += "; consumer group was missing and has been created"
        if isinstance(age, float) and age > settings.health_queue_max_age_s:
            return degraded(f"{summary}; oldest ready task waits {age:.0f}s{note}", **data)
        return healthy(f"{summary}{note}", **data)

    return check


def workers_check(redis: Redis, settings: Settings) -> Check:
    """At least one worker's liveness key (refreshed every heartbeat) has not expired."""

    async def check() -> CheckResult:
        count = await count_workers(redis, settings.redis_prefix)
        if count == 0:
            return unhealthy(
                f"no worker heartbeat in the last {settings.stale_after_s:g}s", count=0
            )
        return healthy(f"{count} worker(s) with a fresh heartbeat", count=count)

    return check
