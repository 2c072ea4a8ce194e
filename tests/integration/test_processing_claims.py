"""A task attempt that loses its claim to another delivery leaves no trace behind.

Two deliveries of one task can both read it as queued; only one claim wins. The loser rolls its
session back, which expires the ORM objects it holds: reading one afterwards is I/O in an error
path (``MissingGreenlet`` under asyncio). It used to happen in the ``finally`` that releases the
domain's politeness slot, so the slot leaked until its lease ran out and the domain stalled.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text, update

from app.auth import service as auth_service
from app.auth.schemas import ApiKeyCreate
from app.db import Database
from app.ids import new_id
from app.job import processing, repository
from app.job.models import Job, JobStatus, Task, TaskStatus
from app.queue.politeness import Politeness
from tests.support.config import TEST_DB, make_settings
from tests.support.databases import Databases
from tests.support.wait import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_lost_claim_releases_the_domain_slot(databases: Databases, redis_url: str) -> None:
    settings = make_settings(await databases.anew(), redis_url)
    db = Database(settings.sqlalchemy_url)
    redis = Redis.from_url(redis_url)
    politeness = Politeness(redis, settings.redis_prefix, concurrency=1, rate_per_s=1000.0)
    domain = f"claims-{uuid.uuid4().hex[:6]}.example:8080"
    async with httpx.AsyncClient() as http:
        ctx = processing.WorkerContext(
            settings=settings, db=db, politeness=politeness, http=http, worker_id="loser"
        )
        try:
            job, task = await _job_with_one_task(db, "claims", domain)
            async with db.session() as session:
                # this delivery read the task as queued...
                mine = await session.get(Task, task.id)
                my_job = await session.get(Job, job.id)
                assert mine is not None and my_job is not None
                # ...and another delivery claimed it first
                async with db.transaction() as other:
                    assert await repository.claim_task(other, task.id, "winner")
                await processing._process(ctx, session, mine, my_job)  # must not raise
            leases = await redis.zcard(f"{settings.redis_prefix}:domain:{domain}:leases")
            assert leases == 0  # the slot was released
            async with db.session() as session:
                claimed = await session.get(Task, task.id)
                assert claimed is not None and claimed.worker_id == "winner"
        finally:
            await redis.aclose()
            await db.dispose()


async def test_a_task_waiting_for_its_domain_is_deferred_and_stays_queued(
    databases: Databases, redis_url: str
) -> None:
    """The domain's only slot is taken: the attempt hands the task back, due later, in one
    autocommitted UPDATE (visible to another session at once), and holds no slot."""
    settings = make_settings(await databases.anew(), redis_url, politeness_max_wait_s=0.0)
    db = Database(settings.sqlalchemy_url)
    redis = Redis.from_url(redis_url)
    politeness = Politeness(redis, settings.redis_prefix, concurrency=1, rate_per_s=1000.0)
    domain = f"defer-{uuid.uuid4().hex[:6]}.example:8080"
    async with httpx.AsyncClient() as http:
        ctx = processing.WorkerContext(
            settings=settings, db=db, politeness=politeness, http=http, worker_id="w1"
        )
        try:
            _, task = await _job_with_one_task(db, "defer", domain)
            due_before = task.next_attempt_at
            held = await politeness.acquire(domain, lease_s=30)
            assert held.granted  # someone else fetches from the domain
            await processing.process(ctx, task.id)
            async with db.session() as session:
                deferred = await session.get(Task, task.id)
                assert deferred is not None
                assert deferred.status == "queued" and deferred.attempt == 0
                assert deferred.next_attempt_at > due_before  # due later, committed
                assert deferred.dispatched_at is None  # the dispatcher sends it again
            leases = await redis.zcard(f"{settings.redis_prefix}:domain:{domain}:leases")
            assert leases == 1  # only the slot held above
        finally:
            await redis.aclose()
            await db.dispose()


@pytest.mark.skipif(
    TEST_DB != "postgres", reason="row locks: PostgreSQL only (SQLite locks the file)"
)
@pytest.mark.parametrize("path", ["first-claim", "exhausted-settle"])
async def test_the_worker_and_a_cancel_take_their_locks_in_one_order(
    databases: Databases, redis_url: str, path: str
) -> None:
    """A cancel locks the job row, then its queued tasks. A job's first claim, and the settle
    of a task whose last attempt died with its worker, used to lock the task row, then the job
    row: each deadlocked with a cancel, and PostgreSQL aborted one (the cancel answered 500).
    Now they wait behind the cancel's job lock holding nothing, and find the task cancelled."""
    settings = make_settings(await databases.anew(), redis_url)
    db = Database(settings.sqlalchemy_url)
    redis = Redis.from_url(redis_url)
    politeness = Politeness(redis, settings.redis_prefix, concurrency=1, rate_per_s=1000.0)
    domain = f"order-{uuid.uuid4().hex[:6]}.example:8080"
    async with httpx.AsyncClient() as http:
        ctx = processing.WorkerContext(
            settings=settings, db=db, politeness=politeness, http=http, worker_id="w"
        )
        try:
            # exhausted: its last attempt died with its worker, and the reaper put it back
            job, task = await _job_with_one_task(
                db, "order", domain, attempt=3 if path == "exhausted-settle" else 0
            )
            async with db.session() as session:
                mine = await session.get(Task, task.id)
                my_job = await session.get(Job, job.id)
                assert mine is not None and my_job is not None
                async with db.transaction() as cancel:
                    # the cancel's first half: the job row, locked
                    await cancel.execute(
                        update(Job).where(Job.id == job.id).values(status=JobStatus.CANCELLING)
                    )
                    worker = asyncio.create_task(
                        processing._claim(ctx, session, mine, my_job)
                        if path == "first-claim"
                        else processing._process(ctx, session, mine, my_job)
                    )
                    # the worker is now blocked on a lock (its own connection shows it waiting)
                    await eventually(
                        lambda: _waiting_on_a_lock(db), 10, what="the worker waiting on a row lock"
                    )
                    # the cancel's second half must not deadlock with it
                    cancelled, _ = await repository.cancel_queued_tasks(cancel, job.id)
                    assert cancelled == 1
                result = await asyncio.wait_for(worker, timeout=10)
                if path == "first-claim":
                    assert result is False
            async with db.session() as session:
                after = await session.get(Task, task.id)
                assert after is not None and after.status == TaskStatus.CANCELLED
                assert after.worker_id is None
        finally:
            await redis.aclose()
            await db.dispose()


async def _waiting_on_a_lock(db: Database) -> bool:
    async with db.session() as probe:
        waiting = await probe.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


async def _job_with_one_task(
    db: Database, name: str, domain: str, attempt: int = 0
) -> tuple[Job, Task]:
    """A job of one queued task on ``domain``, under a key of its own (committed)."""
    async with db.session() as session:  # create_key commits (a unit of work)
        key, _ = await auth_service.create_key(session, ApiKeyCreate(name=name))
        job = Job(
            id=new_id("job"),
            api_key_id=key.id,
            request_hash="h",
            extract={"fields": {"t": {"selector": "h1"}}},
            options={},
            total_tasks=1,
        )
        task = Task(
            id=new_id("tsk"),
            job_id=job.id,
            position=0,
            url=f"http://{domain}/p",
            domain=domain,
            max_attempts=3,
            attempt=attempt,
        )
        session.add_all([job, task])
        await session.commit()
    return job, task
