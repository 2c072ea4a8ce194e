"""One attempt at one task, in the worker: claim, be polite, fetch, extract, settle.

Every write is guarded by the task's status and owner, so duplicate queue messages, a reaper
that requeued a slow task, or a cancel arriving mid-fetch all resolve to exactly one outcome.

Units of work (docs/architecture.md): :func:`process` opens one session per attempt and this
module commits each step that writes — the claim (task running, job started and its event),
a deferral, the settle (outcome, job counters, job finished and its event). No transaction is
open while waiting on Redis for a politeness slot or on the site: the read that starts an
attempt is closed before either.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncSession

import otel
from app.db import Database
from app.db.base import utcnow
from app.fetch.client import FetchPolicy, FetchResult
from app.fetch.extract import ExtractionError, FieldRule, extract
from app.fetch.outcome import Outcome, Verdict
from app.job import events, repository, telemetry
from app.job.models import Job, JobStatus, Task, TaskStatus
from app.proxy.egress import Egress, fetch_for_task
from app.queue import Grant, Politeness, retry_delay, stream_name
from app.settings import Settings
from app.telemetry import capture, carried_request_id, instruments, tracer

log = logging.getLogger("trawl.worker")
_jitter = random.SystemRandom()


@dataclass
class WorkerContext:
    settings: Settings
    db: Database
    politeness: Politeness
    http: httpx.AsyncClient
    worker_id: str
    active: set[str] = field(default_factory=set)
    draining: bool = False
    egress: Egress | None = None  # SSRF guard + proxy pools (None: direct fetches only)


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt produced, before it is written."""

    verdict: Verdict
    fetched: FetchResult | None = None
    data: dict[str, Any] | None = None


async def process(ctx: WorkerContext, task_id: str, carrier: dict[str, str] | None = None) -> None:
    async with ctx.db.session() as session:
        with otel.suppress_instrumentation():  # duplicates and early messages make no spans
            # two reads need no transaction: autocommit, no BEGIN/COMMIT round trips (the
            # claim's transaction, on the next checkout, is an ordinary one)
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            task = await repository.get_task(session, task_id)
            # a duplicate, or an early message for a task deferred to later (the common case
            # while many tasks wait for one domain): no need to read its job
            job = (
                await session.get(Job, task.job_id)
                if task is not None and _actionable(ctx, task)
                else None
            )
            await session.commit()  # ends the read: no connection held from here to the claim
        if task is None or job is None or task.status != TaskStatus.QUEUED:
            return
        # plain values: after a rollback the ORM objects are expired, and reading one would be
        # I/O in an error handler (MissingGreenlet)
        job_id, task_id, domain = job.id, task.id, task.domain
        attrs = {
            "trawl.job.id": job_id,
            "trawl.task.id": task_id,
            "trawl.task.attempt": task.attempt + 1,
            "messaging.client.id": ctx.worker_id,
            "url.full": otel.redact_url(task.url),
            "url.domain": domain,
        }
        # the submitting request's: in the message it sent, else (a message sent again by the
        # dispatcher, or a retry) stored with the job
        request_id = carried_request_id(carrier) or job.request_id
        with (
            telemetry.consumer_span(
                carrier,
                job.traceparent,
                attrs,
                destination=stream_name(ctx.settings.redis_prefix),
            ),
            otel.bind_context(request_id=request_id, job_id=job_id, task_id=task_id),
        ):
            try:
                await _process(ctx, session, task, job)
            except Exception as exc:
                capture(
                    exc,
                    component="worker",
                    context={
                        "job_id": job_id,
                        "task_id": task_id,
                        "request_id": request_id,
                        "worker_id": ctx.worker_id,
                        "domain": domain,
                    },
                )
                await _recover(ctx, task_id)


def _actionable(ctx: WorkerContext, task: Task) -> bool:
    """Whether :func:`_process` would do anything with ``task`` (it checks the same, in the
    same order): queued, and draining, exhausted or due. Spares reading the job otherwise."""
    if task.status != TaskStatus.QUEUED:
        return False
    if ctx.draining or task.attempt >= task.max_attempts:
        return True
    return task.next_attempt_at <= utcnow() + timedelta(seconds=1)


async def _process(ctx: WorkerContext, session: AsyncSession, task: Task, job: Job) -> None:
    if ctx.draining:  # shutting down: hand it straight back to the dispatcher
        await _defer(session, task, 0.0)
        return
    if task.attempt >= task.max_attempts:  # its last attempt died with its worker
        await _settle_exhausted(session, task)
        return
    if task.next_attempt_at > utcnow() + timedelta(seconds=1):
        return  # an early duplicate: the dispatcher sends it again when due
    domain = task.domain  # read now: a failed claim's rollback expires the task
    grant = await _acquire_slot(ctx, domain)
    if not grant.granted:  # back to SQL until the return time booked for it
        await _defer(session, task, grant.wait_s)
        telemetry.tasks_enqueued(1, "deferred")
        return
    metrics = instruments()
    task_id = task.id
    try:
        if not await _claim(ctx, session, task, job):
            return
        ctx.active.add(task.id)
        metrics.active.add(1)
        metrics.queue_wait.record(
            max(0.0, (utcnow() - task.enqueued_at).total_seconds()),
            {"trawl.job.priority": telemetry.priority_name(task.priority)},
        )
        attempt = await _attempt(ctx, task, job)
    finally:
        await ctx.politeness.release(domain, grant.token)
        if task_id in ctx.active:
            ctx.active.discard(task_id)
            metrics.active.add(-1)
    with tracer().start_as_current_span("store"):
        await _settle(ctx, session, task, job, attempt)


async def _claim(ctx: WorkerContext, session: AsyncSession, task: Task, job: Job) -> bool:
    """One transaction: queued -> running for this worker (False: another one won); the job's
    first claim also starts the job and writes its ``job.started`` event.

    Only a job read as ``queued`` can be started (a job never goes back to queued), so the
    other claims of a job write the task row alone: one statement, and no lock on the job row.
    A first claim locks the job row before the task row, in the order a cancel takes them (job,
    then its queued tasks), so the two never deadlock. A cancel committed before the claim has
    cancelled the queued task, so the guarded claim fails (and rolls the start back); one
    committed later is seen at the settle."""
    started = job.status == JobStatus.QUEUED and await repository.mark_job_started(session, job.id)
    if not await repository.claim_task(session, task.id, ctx.worker_id):
        await session.rollback()
        return False
    if started:
        await session.refresh(job)  # running now: the event carries it
        await events.on_started(session, job)  # outbox, same transaction
    await session.commit()
    return True


async def _recover(ctx: WorkerContext, task_id: str) -> None:
    """After an unexpected error: a task still queued goes back to the dispatcher (soon, not
    after the redispatch timeout); one left running is no longer heart-beaten, so the reaper
    requeues it after ``TRAWL_STALE_AFTER_S``."""
    try:
        async with ctx.db.transaction() as session:
            delay = ctx.settings.backoff_base_s * (1 + _jitter.random())
            await repository.defer_task(session, task_id, utcnow() + timedelta(seconds=delay))
    except Exception:
        log.warning(
            "could not hand the task back; the dispatcher resends it later",
            extra={"trawl.task.id": task_id},
            exc_info=True,
        )


async def _acquire_slot(ctx: WorkerContext, domain: str) -> Grant:
    """Wait here for short politeness delays (a start reserved within the budget, a short
    throttle, a full domain); a longer one comes back booked (``defer``)."""
    lease_s = ctx.settings.max_timeout_s + 10
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.settings.politeness_max_wait_s
    reserved = False
    while True:
        budget = max(0.0, deadline - loop.time())
        grant = await ctx.politeness.acquire(
            domain, lease_s=lease_s, budget_s=budget, reserved=reserved
        )
        if grant.granted:
            return grant
        telemetry.throttled(grant.reason)
        if grant.defer:
            return grant
        reserved = reserved or grant.reserved
        await asyncio.sleep(grant.wait_s)


async def _defer(session: AsyncSession, task: Task, wait_s: float) -> None:
    """Hand the task back to the dispatcher, due after ``wait_s``: a return time booked for it
    on its domain (no jitter: bookings are one interval apart already), or now when draining.
    """
    until = utcnow() + timedelta(seconds=wait_s)
    # one guarded UPDATE is atomic by itself: autocommit, no BEGIN/COMMIT round trips (a
    # deferral is what a task waiting for its domain costs, so it should cost little)
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    await repository.defer_task(session, task.id, until)
    await session.commit()
    trace.get_current_span().add_event("trawl.task.deferred", {"trawl.defer.wait_s": wait_s})
    log.debug(
        "task deferred by politeness",
        extra={"trawl.task.id": task.id, "trawl.defer.wait_s": wait_s},
    )


async def _attempt(ctx: WorkerContext, task: Task, job: Job) -> Attempt:
    if job.cancel_requested_at is not None:
        return Attempt(Verdict(Outcome.CANCELLED, False, "job cancelled"))
    policy = FetchPolicy(
        timeout_s=float(job.options.get("timeout_s", ctx.settings.default_timeout_s)),
        max_bytes=ctx.settings.max_response_bytes,
        max_redirects=ctx.settings.max_redirects,
        headers=dict(job.options.get("headers") or {}),
    )
    result = await fetch_for_task(
        ctx.egress,
        ctx.http,
        task.url,
        policy,
        pool=job.options.get("proxy_pool"),
        job_id=job.id,
        domain=task.domain,
    )
    telemetry.fetch_attempted(result)
    if result.retry_after_s and result.status_code in (429, 503):
        await ctx.politeness.throttle(
            task.domain, min(result.retry_after_s, ctx.settings.retry_after_cap_s)
        )
    if result.outcome != Outcome.SUCCESS:
        return Attempt(result.verdict, result)
    rules = {name: FieldRule.from_dict(raw) for name, raw in job.extract["fields"].items()}
    with tracer().start_as_current_span("extract", attributes={"trawl.fields": len(rules)}):
        try:
            data = await asyncio.to_thread(extract, result.text(), rules, result.final_url)
        except ExtractionError as exc:
            return Attempt(Verdict(Outcome.EXTRACT_FAILED, False, str(exc)), result)
    return Attempt(result.verdict, result, data)


@dataclass(frozen=True, slots=True)
class Settlement:
    """How an attempt ends, computed before anything is written: the task row's new values,
    and whether the task goes back to the queue (``retry``) or is final (``status``)."""

    verdict: Verdict
    retry: bool
    status: TaskStatus
    values: dict[str, Any]


def settlement(
    attempt: Attempt,
    *,
    number: int,
    max_attempts: int,
    cancel_requested: bool,
    now: datetime,
    settings: Settings,
) -> Settlement:
    """The outcome of attempt ``number`` (1-based) of ``max_attempts``. A cancel requested
    while it fetched wins over whatever the fetch found; a retryable verdict with attempts
    left goes back to the queue after the backoff (or the site's ``Retry-After``)."""
    verdict = attempt.verdict
    if cancel_requested:
        verdict = Verdict(Outcome.CANCELLED, False, "job cancelled")
    fetched = attempt.fetched
    values: dict[str, Any] = {
        "last_outcome": verdict.outcome.value,
        "http_status": fetched.status_code if fetched else None,
        "final_url": fetched.final_url if fetched else None,
        "response_bytes": len(fetched.body) if fetched else None,
        "heartbeat_at": now,
    }
    error = {"outcome": verdict.outcome.value, "message": verdict.reason}
    if verdict.retryable and number < max_attempts:
        delay = retry_delay(
            number,
            base_s=settings.backoff_base_s,
            cap_s=settings.backoff_cap_s,
            retry_after_s=fetched.retry_after_s if fetched else None,
            retry_after_cap_s=settings.retry_after_cap_s,
        )
        values.update(
            status=TaskStatus.QUEUED,
            worker_id=None,
            dispatched_at=None,
            next_attempt_at=now + timedelta(seconds=delay),
            enqueued_at=now,
            error=error,
        )
        return Settlement(verdict, True, TaskStatus.QUEUED, values)
    status = _final_status(verdict.outcome)
    values.update(
        status=status,
        finished_at=now,
        data=attempt.data,
        error=None if status == TaskStatus.SUCCEEDED else error,
    )
    return Settlement(verdict, False, status, values)


async def _settle(
    ctx: WorkerContext, session: AsyncSession, task: Task, job: Job, attempt: Attempt
) -> None:
    """One transaction: write the attempt's settlement if this worker still owns the task, and
    when the task is final, count it on its job (which may finish the job)."""
    cancel_requested = await repository.cancel_requested(session, job.id)
    settled = settlement(
        attempt,
        number=task.attempt + 1,  # the claim counted this attempt in SQL, not on ``task``
        max_attempts=task.max_attempts,
        cancel_requested=cancel_requested,
        now=utcnow(),
        settings=ctx.settings,
    )
    if not await repository.settle_running_task(session, task.id, ctx.worker_id, settled.values):
        await session.rollback()
        log.warning("task no longer ours; outcome dropped", extra={"trawl.task.id": task.id})
        return
    finished = (
        None if settled.retry else await _on_final_status(session, task.job_id, settled.status)
    )
    await session.commit()
    _report(task, settled, finished)


def _report(task: Task, settled: Settlement, finished: Job | None) -> None:
    outcome = settled.verdict.outcome.value
    telemetry.attempt_settled(outcome, final=not settled.retry, attempts=task.attempt + 1)
    if finished is not None:
        telemetry.job_finished(finished)
    log.info(
        "task attempt settled",
        extra={
            "trawl.task.id": task.id,
            "trawl.job.id": task.job_id,
            "trawl.outcome": outcome,
            "trawl.task.retry": settled.retry,
            "trawl.task.attempt": task.attempt + 1,
        },
    )


def _final_status(outcome: Outcome) -> TaskStatus:
    if outcome == Outcome.SUCCESS:
        return TaskStatus.SUCCEEDED
    if outcome == Outcome.CANCELLED:
        return TaskStatus.CANCELLED
    return TaskStatus.FAILED


async def _on_final_status(session: AsyncSession, job_id: str, status: TaskStatus) -> Job | None:
    """A task reached ``status`` (final), in the caller's transaction: count it on its job; if
    it was the job's last task, finish the job and write its webhook event. Returns the job
    this call finished, else ``None``."""
    may_be_done = await repository.count_finished_task(
        session,
        job_id,
        succeeded=int(status == TaskStatus.SUCCEEDED),
        failed=int(status == TaskStatus.FAILED),
        cancelled=int(status == TaskStatus.CANCELLED),
    )
    if not may_be_done:  # tasks still pending (the common case): no read of the job
        return None
    finished = await repository.finish_job_if_done(session, job_id)
    await events.on_finished(session, finished)  # outbox, same transaction
    return finished


async def _settle_exhausted(session: AsyncSession, task: Task) -> None:
    outcome = task.last_outcome or Outcome.TIMEOUT.value
    await repository.lock_job(session, task.job_id)  # the cancel's lock order: job, then task
    done = await repository.settle_queued_task(
        session,
        task.id,
        {
            "status": TaskStatus.FAILED,
            "finished_at": utcnow(),
            "last_outcome": outcome,
            "error": {"outcome": outcome, "message": "worker lost during the last attempt"},
        },
    )
    finished = await _on_final_status(session, task.job_id, TaskStatus.FAILED) if done else None
    await session.commit()
    if done:
        telemetry.attempt_settled(outcome, final=True, attempts=task.attempt)
    if finished is not None:
        telemetry.job_finished(finished)
