"""The task queue: taskiq over a Redis stream (acknowledged delivery, consumer group).

The stream only transports task ids. SQL holds each task's state, so a lost or duplicated
message is harmless: the dispatcher re-sends what SQL says is due, and a worker claims a task
with a compare-and-set before it runs it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from taskiq.kicker import AsyncKicker
from taskiq_redis import RedisStreamBroker

SCRAPE_TASK = "trawl.scrape"
CONSUMER_GROUP = "workers"


def stream_name(prefix: str) -> str:
    return f"{prefix}:tasks"


def build_broker(
    redis_url: str,
    prefix: str,
    *,
    idle_timeout_s: float = 600.0,
    maxlen: int = 100_000,
    consumer_name: str | None = None,
) -> RedisStreamBroker:
    return RedisStreamBroker(
        url=redis_url,
        queue_name=stream_name(prefix),
        consumer_group_name=CONSUMER_GROUP,
        consumer_name=consumer_name,
        consumer_id="0",  # a new group reads what was queued before it existed
        idle_timeout=int(idle_timeout_s * 1000),
        unacknowledged_lock_timeout=30.0,
        maxlen=maxlen,
        xread_block=1000,
        max_connection_pool_size=50,
    )


class Publisher:
    """Sends ``task_id`` messages; the API and the dispatcher use it."""

    def __init__(self, broker: RedisStreamBroker) -> None:
        self.broker = broker

    @property
    def destination(self) -> str:
        """The stream's name (``{prefix}:tasks``): the messaging destination of queue spans."""
        return str(self.broker.queue_name)

    async def publish(self, task_id: str, carrier: dict[str, str] | None = None) -> None:
        """``carrier`` is W3C trace context for the consumer span (empty from the dispatcher)."""
        kicker: AsyncKicker[[str, dict[str, str] | None], None] = AsyncKicker(
            SCRAPE_TASK, self.broker, {}
        )
        await kicker.kiq(task_id, carrier or None)


def register_handler(
    broker: RedisStreamBroker, handler: Callable[[str, dict[str, str] | None], Awaitable[None]]
) -> None:
    broker.register_task(handler, task_name=SCRAPE_TASK)


@dataclass(frozen=True)
class StreamState:
    """The task stream and the workers' consumer group. The group's numbers are ``None`` while
    the group does not exist."""

    length: int  # XLEN: messages in the stream (trimmed to its maxlen)
    pending: int | None  # delivered to a consumer of the group and not acknowledged yet
    consumers: int | None
    lag: int | None  # entries not yet delivered to the group (Redis >= 7)
    group_created: bool = False  # this call created the missing group


async def stream_state(redis: Redis, prefix: str, *, create_group: bool = False) -> StreamState:
    """Length of the task stream and its consumer group's numbers; with ``create_group``, a
    missing group is created first (as the broker does at start-up)."""
    stream = stream_name(prefix)
    try:
        groups: list[dict[str, Any]] = await redis.xinfo_groups(stream)
    except ResponseError as exc:  # no such key: nothing sent yet
        if "no such key" not in str(exc).lower():
            raise
        groups = []
    group = next((g for g in groups if _text(g.get("name")) == CONSUMER_GROUP), None)
    created = False
    if group is None and create_group:
        try:
            await redis.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
            created = True
        except ResponseError as exc:
            if "busygroup" not in str(exc).lower():
                raise
    length = int(await redis.xlen(stream))
    if group is None:
        return StreamState(length, None, None, None, group_created=created)
    return StreamState(
        length,
        pending=_int(group.get("pending")),
        consumers=_int(group.get("consumers")),
        lag=_int(group.get("lag")),
    )


# -- worker liveness: every worker refreshes its key; the workers health check counts them ---


def worker_key(prefix: str, worker_id: str) -> str:
    """The key a live worker refreshes with a TTL (``TRAWL_STALE_AFTER_S``)."""
    return f"{prefix}:worker:{worker_id}"


async def count_workers(redis: Redis, prefix: str) -> int:
    """Workers whose liveness key has not expired."""
    pattern = worker_key(_glob_escape(prefix), "*")
    return sum([1 async for _ in redis.scan_iter(match=pattern, count=1000)])


_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def _glob_escape(text: str) -> str:
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
