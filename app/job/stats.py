"""Queue and job statistics, sampled from SQL (the source of truth), never in a metric callback.

**Oldest ready age**, the one definition used by the gauge ``trawl.queue.oldest_age`` and by
the queue health check's backlog (``app/job/checks.py``): a task is *ready* when it is queued
and due (``next_attempt_at <= now``); its age is the time since it became due. A retry or a
politeness deferral is not ready before its due time, so waiting out a back-off is not
counted as backlog; a reaped task is due at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.db.base import utcnow
from app.job.models import Job, JobStatus, Task, TaskStatus

ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING)

#: The column a ready task's age is measured from.
READY_SINCE = Task.next_attempt_at


def due(now: datetime) -> ColumnElement[bool]:
    """Queued tasks count as ready when this holds (see the module docstring)."""
    return READY_SINCE <= now  # noqa: SIM300  (a SQL expression, column first)


def ready(now: datetime) -> ColumnElement[bool]:
    return and_(Task.status == TaskStatus.QUEUED, due(now))


def ready_age_s(now: datetime, since: Any) -> float | None:
    """Seconds since ``since`` (the ``min(READY_SINCE)`` of the ready tasks), ``None`` when
    there is no ready task. SQLite returns aggregates of datetimes as naive UTC."""
    if not isinstance(since, datetime):
        return None
    if since.tzinfo is None:
        since = since.replace(tzinfo=now.tzinfo)
    age: float = (now - since).total_seconds()
    return max(age, 0.0)


@dataclass
class QueueStats:
    depth: dict[str, int] = field(default_factory=dict)  # ready, delayed, in_flight, dead
    oldest_ready_age_s: float = 0.0
    jobs_active: dict[str, int] = field(default_factory=dict)
    sampled_at: float = field(default_factory=time.monotonic)


async def sample(session: AsyncSession) -> QueueStats:
    now = utcnow()
    is_due = due(now)
    rows = await session.execute(
        select(
            func.count().filter(Task.status == TaskStatus.QUEUED, is_due),
            func.count().filter(Task.status == TaskStatus.QUEUED, ~is_due),
            func.count().filter(Task.status == TaskStatus.RUNNING),
            func.min(READY_SINCE).filter(Task.status == TaskStatus.QUEUED, is_due),
        ).where(Task.status.in_([TaskStatus.QUEUED, TaskStatus.RUNNING]))
    )
    ready_count, delayed, running, oldest = rows.one()
    dead = await session.scalar(
        select(func.count())
        .select_from(Task)
        .where(Task.status == TaskStatus.FAILED, Task.finished_at >= now - timedelta(hours=24))
    )
    jobs = await session.execute(
        select(Job.status, func.count())
        .where(Job.status.in_(ACTIVE_JOB_STATUSES))
        .group_by(Job.status)
    )
    return QueueStats(
        depth={
            "ready": ready_count,
            "delayed": delayed,
            "in_flight": running,
            "dead": int(dead or 0),
        },
        oldest_ready_age_s=ready_age_s(now, oldest) or 0.0,
        jobs_active={s.value: 0 for s in ACTIVE_JOB_STATUSES} | {str(s): int(c) for s, c in jobs},
    )


@dataclass(frozen=True)
class Backlog:
    depth: int  # queued tasks
    ready: int  # queued and due
    oldest_ready_age_s: float | None  # None: no ready task


async def backlog(conn: AsyncConnection) -> Backlog:
    """Queued tasks, the ready ones, and the age of the oldest ready one, in one query (the
    queue health check runs it on its own short-timeout connection)."""
    now = utcnow()
    is_ready = due(now)
    query = select(
        func.count(),
        func.coalesce(func.sum(case((is_ready, 1), else_=0)), 0),
        func.min(case((is_ready, READY_SINCE), else_=None)),
    ).where(Task.status == TaskStatus.QUEUED)
    depth, ready_count, oldest = (await conn.execute(query)).one()
    return Backlog(int(depth), int(ready_count), ready_age_s(now, oldest))
