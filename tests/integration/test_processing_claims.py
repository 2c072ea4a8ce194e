"""A task attempt that loses its claim to another delivery leaves no trace behind.

Two deliveries of one task can both read it as queued; only one claim wins. The loser rolls its
session back, which expires the ORM objects it holds: reading one afterwards is I/O in an error
path (``MissingGreenlet`` under asyncio). It used to happen in the ``finally`` that releases the
domain's politeness slot, so the slot leaked until its lease ran out and the domain stalled.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from redis.asyncio import Redis

from app.auth import service as auth_service
from app.auth.schemas import ApiKeyCreate
from app.db import Database
from app.ids import new_id
from app.job import processing, repository
from app.job.models import Job, Task
from app.queue.politeness import Politeness
from tests.support.config import make_settings
from tests.support.databases import Databases

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
            async with db.session() as session:  # create_key commits (a unit of work)
                key, _ = await auth_service.create_key(session, ApiKeyCreate(name="claims"))
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
                )
                session.add_all([job, task])
                await session.commit()
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
            async with db.session() as session:
                key, _ = await auth_service.create_key(session, ApiKeyCreate(name="defer"))
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
                )
                session.add_all([job, task])
                await session.commit()
                due_before = task.next_attempt_at
            held = await politeness.acquire(domain, lease_s=30)
            assert held.wait_s == 0  # someone else fetches from the domain
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
