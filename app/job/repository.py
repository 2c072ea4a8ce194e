"""SQL for jobs and tasks. Every state change is a guarded UPDATE (compare-and-set)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.db.base import utcnow
from app.job.models import (
    TERMINAL_JOB_STATUSES,
    Job,
    JobStatus,
    Task,
    TaskStatus,
)

_TERMINAL_JOBS = [s.value for s in TERMINAL_JOB_STATUSES]


async def get_owned(session: AsyncSession, job_id: str, api_key_id: str) -> Job | None:
    job = await session.get(Job, job_id)
    return job if job is not None and job.api_key_id == api_key_id else None


_JOB = Job.__table__.c
#: A status read: one Core statement (no ORM identity map or object), owner checked in SQL.
_READ_OWNED = select(Job.__table__).where(
    _JOB.id == bindparam("job_id"), _JOB.api_key_id == bindparam("api_key_id")
)


async def read_owned(conn: AsyncConnection, job_id: str, api_key_id: str) -> Row[Any] | None:
    """The job's row if it exists and belongs to ``api_key_id`` (columns as attributes)."""
    result = await conn.execute(_READ_OWNED, {"job_id": job_id, "api_key_id": api_key_id})
    return result.first()


async def by_idempotency_key(session: AsyncSession, api_key_id: str, key: str) -> Job | None:
    result = await session.execute(
        select(Job).where(Job.api_key_id == api_key_id, Job.idempotency_key == key)
    )
    return result.scalar_one_or_none()


async def list_jobs(
    session: AsyncSession,
    api_key_id: str,
    *,
    limit: int,
    before_id: str | None,
    status: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
) -> list[Job]:
    query = select(Job).where(Job.api_key_id == api_key_id)
    if before_id:
        query = query.where(Job.id < before_id)
    if status:
        query = query.where(Job.status == status)
    if created_after:
        query = query.where(Job.created_at >= created_after)
    if created_before:
        query = query.where(Job.created_at < created_before)
    result = await session.execute(query.order_by(Job.id.desc()).limit(limit))
    return list(result.scalars())


async def list_results(
    session: AsyncSession, job_id: str, *, limit: int, after_position: int, status: str | None
) -> list[Task]:
    query = select(Task).where(Task.job_id == job_id, Task.position > after_position)
    if status:
        query = query.where(Task.status == status)
    result = await session.execute(query.order_by(Task.position).limit(limit))
    return list(result.scalars())


async def get_task(session: AsyncSession, task_id: str) -> Task | None:
    return await session.get(Task, task_id)


async def claim_task(session: AsyncSession, task_id: str, worker_id: str) -> bool:
    """queued → running for this worker, if it is still queued and due. One winner only."""
    now = utcnow()
    result = await session.execute(
        update(Task)
        .where(
            Task.id == task_id,
            Task.status == TaskStatus.QUEUED,
            Task.next_attempt_at <= now + timedelta(seconds=1),
            Task.attempt < Task.max_attempts,
        )
        .values(
            status=TaskStatus.RUNNING,
            attempt=Task.attempt + 1,
            worker_id=worker_id,
            heartbeat_at=now,
            started_at=func.coalesce(Task.started_at, now),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def lock_job(session: AsyncSession, job_id: str) -> None:
    """Lock the job row for this transaction (PostgreSQL; SQLite locks the whole file), before
    a task row: a cancel locks the job, then its queued tasks, and taking the two in the other
    order deadlocks with it."""
    await session.execute(select(Job.id).where(Job.id == job_id).with_for_update())


async def mark_job_started(session: AsyncSession, job_id: str) -> bool:
    """queued → running; True for the one caller that moved it."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
        .values(status=JobStatus.RUNNING, started_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def defer_task(session: AsyncSession, task_id: str, until: datetime) -> None:
    """Push a queued task's next attempt back without spending an attempt (politeness)."""
    await session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status == TaskStatus.QUEUED)
        .values(next_attempt_at=until, dispatched_at=None)
        .execution_options(synchronize_session=False)
    )


async def settle_running_task(
    session: AsyncSession, task_id: str, worker_id: str, values: dict[str, Any]
) -> bool:
    """Write the outcome of an attempt, if this worker still owns the task."""
    result = await session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status == TaskStatus.RUNNING, Task.worker_id == worker_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def settle_queued_task(session: AsyncSession, task_id: str, values: dict[str, Any]) -> bool:
    result = await session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status == TaskStatus.QUEUED)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def add_finished_tasks(
    session: AsyncSession, job_id: str, *, succeeded: int = 0, failed: int = 0, cancelled: int = 0
) -> None:
    """Add tasks that reached a final status to the job's counters."""
    await session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            succeeded_tasks=Job.succeeded_tasks + succeeded,
            failed_tasks=Job.failed_tasks + failed,
            cancelled_tasks=Job.cancelled_tasks + cancelled,
        )
        .execution_options(synchronize_session=False)
    )


async def count_finished_task(
    session: AsyncSession, job_id: str, *, succeeded: int = 0, failed: int = 0, cancelled: int = 0
) -> bool:
    """:func:`add_finished_tasks` for one task, in one statement that also says whether the
    job may be done now (no task pending, not terminal yet): only then is
    :func:`finish_job_if_done` worth a read."""
    row = (
        await session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                succeeded_tasks=Job.succeeded_tasks + succeeded,
                failed_tasks=Job.failed_tasks + failed,
                cancelled_tasks=Job.cancelled_tasks + cancelled,
            )
            .returning(
                Job.total_tasks - Job.succeeded_tasks - Job.failed_tasks - Job.cancelled_tasks,
                Job.status,
            )
            .execution_options(synchronize_session=False)
        )
    ).first()
    if row is None:
        return False
    pending, status = row
    return int(pending) <= 0 and status not in _TERMINAL_JOBS


async def cancel_requested(session: AsyncSession, job_id: str) -> bool:
    """Whether a cancel of the job has been requested (one column, no ORM object)."""
    requested = await session.scalar(select(Job.cancel_requested_at).where(Job.id == job_id))
    return requested is not None


async def finish_job_if_done(session: AsyncSession, job_id: str) -> Job | None:
    """Move the job to its terminal status when no task is pending: ``cancelled`` if a cancel
    was requested, ``failed`` if every task failed, else ``completed``. Returns the job when
    this call finished it (exactly one caller does), else ``None``."""
    job = (
        await session.execute(
            select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
        )
    ).scalar_one()
    if job.pending_tasks > 0 or job.status in _TERMINAL_JOBS:
        return None
    if job.cancel_requested_at is not None:
        final = JobStatus.CANCELLED
    elif job.succeeded_tasks == 0 and job.failed_tasks > 0:
        final = JobStatus.FAILED
    else:
        final = JobStatus.COMPLETED
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.not_in(_TERMINAL_JOBS))
        .values(status=final, finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return None
    await session.refresh(job)
    return job


async def cancel_queued_tasks(session: AsyncSession, job_id: str) -> tuple[int, set[str]]:
    """Cancel the job's queued tasks; returns how many, and the domains of those that were
    waiting for a later time (a return booked on the domain, or a retry's back-off)."""
    now = utcnow()
    rows = (
        await session.execute(
            update(Task)
            .where(Task.job_id == job_id, Task.status == TaskStatus.QUEUED)
            .values(status=TaskStatus.CANCELLED, finished_at=now, last_outcome="cancelled")
            .returning(Task.domain, Task.next_attempt_at)
            .execution_options(synchronize_session=False)
        )
    ).all()
    return len(rows), {domain for domain, due in rows if due > now}


async def heartbeat(session: AsyncSession, worker_id: str, task_ids: Sequence[str]) -> int:
    """Refresh the tasks this worker is running now. Only those: a task whose attempt died
    with an error stops being refreshed, and the reaper gives it back to the queue."""
    if not task_ids:
        return 0
    result = await session.execute(
        update(Task)
        .where(
            Task.id.in_(task_ids), Task.worker_id == worker_id, Task.status == TaskStatus.RUNNING
        )
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def reap_stale(session: AsyncSession, stale_before: datetime) -> int:
    """running tasks whose worker stopped heart-beating go back to the queue, due now."""
    result = await session.execute(
        update(Task)
        .where(Task.status == TaskStatus.RUNNING, Task.heartbeat_at < stale_before)
        .values(
            status=TaskStatus.QUEUED,
            worker_id=None,
            next_attempt_at=utcnow(),
            dispatched_at=None,
            enqueued_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def due_undispatched(
    session: AsyncSession, now: datetime, redispatch_before: datetime, limit: int
) -> Sequence[str]:
    result = await session.execute(
        select(Task.id)
        .where(
            Task.status == TaskStatus.QUEUED,
            Task.next_attempt_at <= now,
            or_(Task.dispatched_at.is_(None), Task.dispatched_at < redispatch_before),
        )
        .order_by(Task.priority.desc(), Task.next_attempt_at)
        .limit(limit)
    )
    return list(result.scalars())


async def unmark_dispatched(session: AsyncSession, task_ids: Sequence[str]) -> None:
    if task_ids:
        await session.execute(
            update(Task)
            .where(and_(Task.id.in_(task_ids), Task.status == TaskStatus.QUEUED))
            .values(dispatched_at=None)
            .execution_options(synchronize_session=False)
        )


async def mark_dispatched(session: AsyncSession, task_ids: Sequence[str]) -> None:
    if task_ids:
        await session.execute(
            update(Task)
            .where(and_(Task.id.in_(task_ids), Task.status == TaskStatus.QUEUED))
            .values(dispatched_at=utcnow())
            .execution_options(synchronize_session=False)
        )
