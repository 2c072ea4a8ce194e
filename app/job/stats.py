"""Queue and job gauges, sampled from SQL (the source of truth), never in a metric callback."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import utcnow
from app.job.models import Job, JobStatus, Task, TaskStatus

ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING)


@dataclass
class QueueStats:
    depth: dict[str, int] = field(default_factory=dict)  # ready, delayed, in_flight, dead
    oldest_ready_age_s: float = 0.0
    jobs_active: dict[str, int] = field(default_factory=dict)
    sampled_at: float = field(default_factory=time.monotonic)


async def sample(session: AsyncSession) -> QueueStats:
    now = utcnow()
    queued_due = Task.next_attempt_at <= now
    rows = await session.execute(
        select(
            func.count().filter(Task.status == TaskStatus.QUEUED, queued_due),
            func.count().filter(Task.status == TaskStatus.QUEUED, ~queued_due),
            func.count().filter(Task.status == TaskStatus.RUNNING),
            func.min(Task.next_attempt_at).filter(Task.status == TaskStatus.QUEUED, queued_due),
        ).where(Task.status.in_([TaskStatus.QUEUED, TaskStatus.RUNNING]))
    )
    ready, delayed, running, oldest = rows.one()
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
    if oldest is not None and oldest.tzinfo is None:  # SQLite aggregates come back as naive
        oldest = oldest.replace(tzinfo=now.tzinfo)
    return QueueStats(
        depth={"ready": ready, "delayed": delayed, "in_flight": running, "dead": int(dead or 0)},
        oldest_ready_age_s=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        jobs_active={s.value: 0 for s in ACTIVE_JOB_STATUSES} | {str(s): int(c) for s, c in jobs},
    )
