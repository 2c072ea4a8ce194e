"""The task queue: taskiq over a Redis stream (acknowledged delivery, consumer group).

The stream only transports task ids. SQL holds each task's state, so a lost or duplicated
message is harmless: the dispatcher re-sends what SQL says is due, and a worker claims a task
with a compare-and-set before it runs it.
"""

from __future__ import annotations

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
class StreamStats:
    length: int  # XLEN: messages in the stream (trimmed to its maxlen)
    pending: int  # delivered to a consumer of the group and not acknowledged yet


async def stream_stats(redis: Redis, prefix: str) -> StreamStats:
    """Length of the task stream and the workers group's pending entries (0 before the
    stream or the group exists)."""
    stream = stream_name(prefix)
    length = int(await redis.xlen(stream))
    try:
        groups: list[dict[str, Any]] = await redis.xinfo_groups(stream)
    except ResponseError as exc:  # no such key: nothing sent yet
        if "no such key" not in str(exc).lower():
            raise
        groups = []
    pending = 0
    for group in groups:
        name = group.get("name")
        if (name.decode() if isinstance(name, bytes) else str(name)) == CONSUMER_GROUP:
            pending = int(group.get("pending") or 0)
    return StreamStats(length=length, pending=pending)
