"""The worker's edges: the queue handler and the periodic dispatcher, reaper and heartbeat."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from app.db import Database
from app.db.base import utcnow
from app.job import processing, repository
from app.queue.broker import Publisher

log = logging.getLogger("trawl.dispatcher")

DISPATCH_BATCH = 500


def make_handler(ctx: processing.WorkerContext) -> Callable[[str], Awaitable[None]]:
    async def scrape(task_id: str) -> None:
        await processing.process(ctx, task_id)

    return scrape


async def publish_tasks(db: Database, publisher: Publisher, task_ids: Sequence[str]) -> int:
    """Send tasks to the queue and record it. A failure leaves them to the dispatcher."""
    sent: list[str] = []
    try:
        for task_id in task_ids:
            await publisher.publish(task_id)
            sent.append(task_id)
    except Exception as exc:  # the queue is down: SQL still has every task
        log.warning(
            "queue publish failed; the dispatcher will retry",
            extra={"error.type": type(exc).__name__, "unsent": len(task_ids) - len(sent)},
        )
    if sent:
        async with db.transaction() as session:
            await repository.mark_dispatched(session, sent)
    return len(sent)


async def dispatch_due(db: Database, publisher: Publisher, redispatch_after_s: float) -> int:
    """Send every queued task that is due and not yet (or too long ago) sent."""
    now = utcnow()
    async with db.session() as session:
        due = await repository.due_undispatched(
            session, now, now - timedelta(seconds=redispatch_after_s), DISPATCH_BATCH
        )
    if not due:
        return 0
    return await publish_tasks(db, publisher, due)


async def reap(db: Database, stale_after_s: float) -> int:
    async with db.transaction() as session:
        count = await repository.reap_stale(session, utcnow() - timedelta(seconds=stale_after_s))
    if count:
        log.warning("requeued tasks of lost workers", extra={"tasks": count})
    return count


async def heartbeat(db: Database, worker_id: str) -> int:
    async with db.transaction() as session:
        return await repository.heartbeat(session, worker_id)
