"""A worker killed mid-task: its task is requeued by the reaper and completed, nothing lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import httpx
import pytest
from sqlalchemy import select

from app.db import Database
from app.job.models import Task
from app.main import create_app
from app.settings import Settings
from tests.support.config import ADMIN_KEY, make_settings
from tests.support.databases import Databases
from tests.support.jobs import job_body, results, wait_job
from tests.support.target_site import TargetSite
from tests.support.wait import eventually

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow]


def _spawn_worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TRAWL_ENVIRONMENT": "test",
        "DATABASE_URL": settings.sqlalchemy_url,
        "REDIS_URL": str(settings.redis_url),
        "TRAWL_REDIS_PREFIX": settings.redis_prefix,
        "TRAWL_ADMIN_API_KEY": ADMIN_KEY,
        "TRAWL_HEARTBEAT_INTERVAL_S": str(settings.heartbeat_interval_s),
        "TRAWL_STALE_AFTER_S": str(settings.stale_after_s),
        "TRAWL_DISPATCH_INTERVAL_S": str(settings.dispatch_interval_s),
        "TRAWL_DOMAIN_RATE_PER_S": "1000",
        "TRAWL_LOG_LEVEL": "WARNING",
        "TRAWL_ALLOW_PRIVATE_TARGETS": "true",
    }
    return subprocess.Popen([sys.executable, "-m", "app.worker"], env=env)


async def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the worker drains), SIGKILL if it does not exit; never blocks the loop."""
    if proc.poll() is None:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 40)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait, 10)


async def _running_task(settings: Settings, job_id: str, timeout: float = 20) -> Task:
    db = Database(settings.sqlalchemy_url)

    async def running() -> Task | None:
        async with db.session() as s:
            task = (await s.execute(select(Task).where(Task.job_id == job_id))).scalar_one()
            return task if task.status == "running" else None

    try:
        task: Task = await eventually(running, timeout, what="the task to start")
        return task
    finally:
        await db.dispose()


async def test_killed_worker_task_is_requeued_and_completed(
    databases: Databases, redis_url: str, site: TargetSite
) -> None:
    # Its own database and queue prefix: the suite's in-process worker must not take this task.
    settings = make_settings(await databases.anew(), redis_url, stale_after_s=1.5)
    app = create_app(settings)
    first = _spawn_worker(settings)
    second = None
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://t",
                headers={"authorization": f"Bearer {ADMIN_KEY}"},
            ) as client:
                r = await client.post(
                    "/v1/jobs",
                    json=job_body([site.url("/slow?delay=3")], options={"timeout_s": 10}),
                )
                job_id = r.json()["id"]
                task = await _running_task(settings, job_id)
                assert task.worker_id and f":{first.pid}:" in task.worker_id
                first.send_signal(signal.SIGKILL)
                first.wait(timeout=10)
                second = _spawn_worker(settings)
                done = await wait_job(client, job_id, timeout=40)
                assert done["status"] == "completed"
                [item] = await results(client, job_id)
                assert item["status"] == "succeeded"
                assert item["attempts"] == 2
                assert item["data"]["title"] == "Title slow"
                assert done["progress"]["succeeded"] == 1
    finally:
        for proc in (first, second):
            if proc is not None:
                await _stop(proc)


async def test_queue_down_at_submit_loses_nothing(
    databases: Databases, site: TargetSite, redis_url: str
) -> None:
    """Redis unreachable when the API publishes: SQL keeps the task; the dispatcher sends it."""
    settings = make_settings(await databases.anew(), redis_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        services = app.state.services
        real_broker = services.publisher.broker
        from app.queue import Publisher, build_broker

        dead = build_broker("redis://127.0.0.1:1/0", settings.redis_prefix)
        services.publisher = Publisher(dead)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://t",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
        ) as client:
            r = await client.post("/v1/jobs", json=job_body([site.url("/page/9")]))
            assert r.status_code == 202
            job_id = r.json()["id"]
            services.publisher = Publisher(real_broker)
            worker_proc = _spawn_worker(settings)
            try:
                done = await wait_job(client, job_id, timeout=30)
                assert done["status"] == "completed"
            finally:
                await _stop(worker_proc)
        await dead.shutdown()


async def test_heartbeat_covers_only_tasks_in_hand(databases: Databases) -> None:
    """A task whose attempt died with an error (no longer in the worker's hands) stops being
    heart-beaten even though the worker lives on, so the reaper gives it back."""
    from datetime import timedelta

    from app.auth.models import ApiKey
    from app.db.base import utcnow
    from app.job import tasks as job_tasks
    from app.job.models import Job

    db = Database(await databases.anew())
    old = utcnow() - timedelta(minutes=5)
    try:
        async with db.transaction() as s:
            s.add(ApiKey(id="key_hb", name="hb", prefix="p", key_hash="h" * 64, scopes=["jobs"]))
            await s.flush()
            s.add(
                Job(
                    id="job_hb",
                    api_key_id="key_hb",
                    request_hash="0" * 64,
                    extract={},
                    options={},
                    total_tasks=2,
                )
            )
            await s.flush()
            for tid in ("tsk_held", "tsk_orphan"):
                s.add(
                    Task(
                        id=tid,
                        job_id="job_hb",
                        position=0,
                        url="http://x/",
                        domain="x",
                        status="running",
                        attempt=1,
                        max_attempts=3,
                        worker_id="w1",
                        heartbeat_at=old,
                    )
                )
        assert await job_tasks.heartbeat(db, "w1", ["tsk_held"]) == 1
        assert await job_tasks.reap(db, stale_after_s=60) == 1
        async with db.session() as s:
            held, orphan = (await s.get(Task, "tsk_held"), await s.get(Task, "tsk_orphan"))
            assert held is not None and orphan is not None
            assert held.status == "running" and orphan.status == "queued"
            assert orphan.worker_id is None and orphan.dispatched_at is None
    finally:
        await db.dispose()
