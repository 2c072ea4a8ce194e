"""Sending task ids to the queue, recorded in SQL first (``dispatched_at``), so that a task
whose message is lost, or was never sent because Redis was down, is found again by the
dispatcher (``app/job/tasks.py``: ``dispatch_due``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.job import repository, telemetry
from app.queue import Publisher
from app.telemetry import inject

log = logging.getLogger("trawl.dispatcher")


async def publish(
    session: AsyncSession, publisher: Publisher, task_ids: Sequence[str], *, new: bool
) -> int:
    """Send ``task_ids`` to the stream and record it; returns how many were sent. A failure
    leaves the rest to the dispatcher. The tasks themselves must be committed already (a
    worker may take a message at once).

    For a new job (``new``) the tasks were committed marked as sent (``dispatched_at``, in the
    job's own transaction: a dispatcher between that commit and a later mark would send them
    a second time). One PRODUCER span covers the batch and its context goes into every message,
    so each task's CONSUMER span continues the submitting request's trace. The dispatcher marks
    what it sends here, and sends without context: those attempts start new traces, linked to
    the job's.
    """
    if not new:
        return await _send(session, publisher, task_ids, None, marked=False)
    with telemetry.producer_span(publisher.destination, len(task_ids)):
        sent = await _send(session, publisher, task_ids, inject(), marked=True)
    telemetry.tasks_enqueued(len(task_ids), "new")
    return sent


async def _send(
    session: AsyncSession,
    publisher: Publisher,
    task_ids: Sequence[str],
    carrier: dict[str, str] | None,
    *,
    marked: bool,
) -> int:
    # Marked before the send: a worker may take the message and defer the task (clearing the
    # mark) before a later write could land, which would strand it as "sent".
    if not marked:
        await repository.mark_dispatched(session, task_ids)
        await session.commit()
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
        await repository.unmark_dispatched(session, task_ids[len(sent) :])
        await session.commit()
    return len(sent)
