"""The worker's edges: the queue handler and the periodic dispatcher, reaper and heartbeat."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from app.db import Database
from app.db.base import utcnow
from app.job import processing, repository, telemetry
from app.queue import Publisher
from app.telemetry import capture, inject, instruments

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


async def publish_tasks(
    db: Database, publisher: Publisher, task_ids: Sequence[str], *, reason: str = "new"
) -> int:
    """Send tasks to the queue and record it. A failure leaves them to the dispatcher.

    For a new job one PRODUCER span covers the batch and its context goes into every message,
    so each task's CONSUMER span continues the submitting request's trace. The dispatcher sends
    without context: those attempts start new traces, linked to the job's.
    """
    if reason != "new":
        return await _send(db, publisher, task_ids, None)
    with telemetry.producer_span(publisher.destination, len(task_ids)):
        sent = await _send(db, publisher, task_ids, inject())
    telemetry.tasks_enqueued(len(task_ids), "new")
    return sent


async def _send(
    db: Database, publisher: Publisher, task_ids: Sequence[str], carrier: dict[str, str] | None
) -> int:
    # Marked before the send: a worker may take the message and defer the task (clearing the
    # mark) before a later write could land, which would strand it as "sent".
    async with db.transaction() as session:
        await repository.mark_dispatched(session, task_ids)
    sent: list[str] = []
    try:
        for task_id in task_ids:
            await publisher.publish(task_id, carrier)
            sent.append(task_id)
    except Exception as exc:  # the queue is down: SQL still has every task
        log.warning(
            "queue publish failed; the dispatcher will retry",
            extra={
                "error.type": type(exc).__name__,
                "trawl.queue.unsent": len(task_ids) - len(sent),
            },
        )
        async with db.transaction() as session:
            await repository.unmark_dispatched(session, task_ids[len(sent) :])
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
    return await publish_tasks(db, publisher, due, reason="dispatch")


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
