"""The worker's edges: the queue handler, and one round of each of its loops (dispatcher,
reaper, heartbeat). Each round is its own short unit of work."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from app.db import Database
from app.db.base import utcnow
from app.job import processing, repository, telemetry
from app.job.publish import publish
from app.queue import Publisher
from app.telemetry import capture, instruments

log = logging.getLogger("trawl.dispatcher")

DISPATCH_BATCH = 500
Handler = Callable[[str, dict[str, str] | None], Awaitable[None]]


def make_handler(ctx: processing.WorkerContext) -> Handler:
    async def scrape(task_id: str, carrier: dict[str, str] | None = None) -> None:
        try:
            await processing.process(ctx, task_id, carrier)
        except Exception as exc:  # outside a task's span (e.g. its first read): still counted
            capture(
                exc, component="worker", context={"task_id": task_id, "worker_id": ctx.worker_id}
            )

    return scrape


async def dispatch_due(db: Database, publisher: Publisher, redispatch_after_s: float) -> int:
    """Send every queued task that is due and not yet (or too long ago) sent."""
    now = utcnow()
    async with db.session() as session:
        due = await repository.due_undispatched(
            session, now, now - timedelta(seconds=redispatch_after_s), DISPATCH_BATCH
        )
        if not due:
            return 0
        return await publish(session, publisher, due, new=False)


async def reap(db: Database, stale_after_s: float) -> int:
    async with db.transaction() as session:
        count = await repository.reap_stale(session, utcnow() - timedelta(seconds=stale_after_s))
    if count:
        instruments().reaped.add(count)
        telemetry.tasks_enqueued(count, "reaped")
        log.warning("requeued tasks of lost workers", extra={"trawl.reaper.requeued": count})
    return count


async def heartbeat(db: Database, worker_id: str, task_ids: Sequence[str]) -> int:
    async with db.transaction() as session:
        return await repository.heartbeat(session, worker_id, task_ids)
