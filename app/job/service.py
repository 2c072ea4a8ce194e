"""Jobs as the API sees them: submit, read, list, cancel, results.

``submit`` and ``cancel`` are units of work: each commits once, when the change is complete
(and ``submit`` publishes the tasks only after that). Reads never commit."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.db.base import utcnow
from app.ids import new_id
from app.job import events, repository, telemetry
from app.job.errors import (
    IdempotencyConflict,
    InvalidCursor,
    InvalidJob,
    JobAlreadyFinished,
    JobNotFound,
)
from app.job.models import Job, JobStatus, Priority, Task, TaskStatus
from app.job.publish import publish
from app.job.schemas import (
    TERMINAL_WEBHOOK_EVENTS,
    JobCreate,
    JobPage,
    JobRead,
    Progress,
    ResultError,
    ResultPage,
    TaskResult,
)
from app.job.urls import UrlInvalid, check_url, domain_of
from app.proxy import service as proxy_service
from app.queue import Bookings, Publisher
from app.security.ssrf import SsrfPolicy, check_submitted_urls
from app.settings import Settings
from app.telemetry import current_request_id, current_traceparent


@dataclass(frozen=True, slots=True)
class Submitted:
    job: Job
    task_ids: list[str]
    created: bool


def request_hash(payload: JobCreate) -> str:
    canonical = json.dumps(payload.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


Problems = list[dict[str, Any]]


def _problem(loc: list[str | int], msg: str) -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg}


def _validate_urls(payload: JobCreate, settings: Settings) -> Problems:
    if len(payload.urls) > settings.max_urls_per_job:
        return [_problem(["urls"], f"at most {settings.max_urls_per_job} URLs per job")]
    errors: Problems = []
    named: list[tuple[list[str | int], str]] = [
        (["urls", i], u) for i, u in enumerate(payload.urls)
    ]
    if payload.webhook_url is not None:
        named.append((["webhook_url"], payload.webhook_url))
    for loc, raw in named:
        try:
            check_url(raw, max_length=settings.max_url_length)
        except UrlInvalid as exc:
            errors.append(_problem(loc, f"invalid URL: {exc}"))
    return errors


async def _ssrf_problems(payload: JobCreate, settings: Settings) -> Problems:
    """Literal private IPs, internal names and names resolving to private ranges: 422."""
    named: list[tuple[list[str | int], str]] = [
        (["urls", i], u) for i, u in enumerate(payload.urls)
    ]
    if payload.webhook_url is not None:
        named.append((["webhook_url"], payload.webhook_url))
    refused = await check_submitted_urls(named, SsrfPolicy.from_settings(settings))
    return [_problem(loc, msg) for loc, msg in refused]


def _validate_limits(payload: JobCreate, settings: Settings) -> Problems:
    errors: Problems = []
    fields = payload.extract.fields
    if len(fields) > settings.max_fields:
        errors.append(_problem(["extract", "fields"], f"at most {settings.max_fields} fields"))
    for name, spec in fields.items():
        if len(spec.selector) > settings.max_selector_length:
            errors.append(
                _problem(
                    ["extract", "fields", name, "selector"],
                    f"selector longer than {settings.max_selector_length}",
                )
            )
    options = payload.options
    if options.timeout_s is not None and options.timeout_s > settings.max_timeout_s:
        errors.append(
            _problem(["options", "timeout_s"], f"must be at most {settings.max_timeout_s}")
        )
    if options.max_retries is not None and options.max_retries > settings.max_max_retries:
        errors.append(
            _problem(["options", "max_retries"], f"must be at most {settings.max_max_retries}")
        )
    if len(options.headers) > settings.max_headers:
        errors.append(_problem(["options", "headers"], f"at most {settings.max_headers} headers"))
    if len(json.dumps(payload.metadata)) > settings.max_metadata_bytes:
        errors.append(
            _problem(["metadata"], f"larger than {settings.max_metadata_bytes} bytes as JSON")
        )
    return errors


async def submit(
    session: AsyncSession,
    publisher: Publisher,
    *,
    api_key_id: str,
    payload: JobCreate,
    idempotency_key: str | None,
    settings: Settings,
) -> Submitted:
    """Validate, store the job and one task per URL in one transaction, then publish the tasks
    (a queue that is down leaves them to the dispatcher). A replayed ``Idempotency-Key``
    returns the stored job and publishes nothing."""
    errors = _validate_urls(payload, settings) + _validate_limits(payload, settings)
    if not errors:
        errors += await _ssrf_problems(payload, settings)
    pool = payload.options.proxy_pool
    if pool is not None and not await proxy_service.pool_exists(session, pool):
        errors.append(_problem(["options", "proxy_pool"], f"unknown proxy pool {pool!r}"))
    priority = payload.options.priority.value
    if errors:
        telemetry.job_submitted("rejected_invalid", priority)
        raise InvalidJob("The job was rejected; see 'errors' for each problem.", errors=errors)
    digest = request_hash(payload)
    if idempotency_key:
        existing = await repository.by_idempotency_key(session, api_key_id, idempotency_key)
        if existing is not None:
            return _replay(existing, digest, priority)
    job = _new_job(api_key_id, payload, digest, idempotency_key, settings)
    tasks = _new_tasks(job, payload)
    session.add(job)
    session.add_all(tasks)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        if not idempotency_key:
            raise
        existing = await repository.by_idempotency_key(session, api_key_id, idempotency_key)
        if existing is None:
            raise
        return _replay(existing, digest, priority)
    telemetry.job_submitted("accepted", priority)
    task_ids = [t.id for t in tasks]
    await publish(session, publisher, task_ids, new=True)
    return Submitted(job, task_ids, created=True)


def _replay(existing: Job, digest: str, priority: str) -> Submitted:
    if existing.request_hash != digest:
        telemetry.job_submitted("rejected_conflict", priority)
        raise IdempotencyConflict(
            "This Idempotency-Key was already used with a different request body."
        )
    telemetry.job_submitted("duplicate", priority)
    return Submitted(existing, [], created=False)


def _new_job(
    api_key_id: str,
    payload: JobCreate,
    digest: str,
    idempotency_key: str | None,
    settings: Settings,
) -> Job:
    options = payload.options.model_dump(mode="json")
    options["timeout_s"] = payload.options.timeout_s or settings.default_timeout_s
    if payload.options.max_retries is None:
        options["max_retries"] = settings.default_max_retries
    options["webhook_events"] = sorted(set(payload.webhook_events or TERMINAL_WEBHOOK_EVENTS))
    return Job(
        id=new_id("job"),
        api_key_id=api_key_id,
        status=JobStatus.QUEUED,
        priority=payload.options.priority.rank,
        idempotency_key=idempotency_key,
        request_hash=digest,
        extract=payload.extract.model_dump(mode="json"),
        options=options,
        webhook_url=payload.webhook_url,
        client_metadata=payload.metadata,
        total_tasks=len(payload.urls),
        traceparent=current_traceparent(),
        request_id=current_request_id(),
        created_at=utcnow(),
    )


def _new_tasks(job: Job, payload: JobCreate) -> list[Task]:
    now = job.created_at
    max_attempts = int(job.options["max_retries"]) + 1
    return [
        Task(
            id=new_id("tsk"),
            job_id=job.id,
            position=i,
            url=url,
            domain=domain_of(check_url(url, max_length=len(url))),
            priority=job.priority,
            status=TaskStatus.QUEUED,
            attempt=0,
            max_attempts=max_attempts,
            next_attempt_at=now,
            enqueued_at=now,
            # sent right after the commit (app/job/publish.py); a message lost in between is
            # sent again after TRAWL_REDISPATCH_AFTER_S, one that fails is unmarked at once
            dispatched_at=now,
            created_at=now,
        )
        for i, url in enumerate(payload.urls)
    ]


async def get(session: AsyncSession, job_id: str, api_key_id: str) -> Job:
    job = await repository.get_owned(session, job_id, api_key_id)
    if job is None:
        raise JobNotFound(f"No job with id {job_id!r}")
    return job


async def read(db: Database, job_id: str, api_key_id: str) -> JobRead:
    """A status read: one statement outside a transaction, Core rows, no ORM object."""
    async with db.reader() as conn:
        row = await repository.read_owned(conn, job_id, api_key_id)
    if row is None:
        raise JobNotFound(f"No job with id {job_id!r}")
    return to_read(row)


async def cancel(session: AsyncSession, bookings: Bookings, job_id: str, api_key_id: str) -> Job:
    """Cooperative cancel: queued tasks stop now, running ones at their next check. The return
    times booked for its waiting tasks are forgotten, so that no other job's tasks are booked
    behind them (app/queue/politeness.py)."""
    job = await get(session, job_id, api_key_id)
    if JobStatus(job.status).terminal:
        raise JobAlreadyFinished(f"Job {job_id} is already {job.status}", status_value=job.status)
    if job.cancel_requested_at is None:
        job.cancel_requested_at = utcnow()
        job.status = JobStatus.CANCELLING
        await session.flush()
    cancelled, waiting_on = await repository.cancel_queued_tasks(session, job.id)
    await repository.add_finished_tasks(session, job.id, cancelled=cancelled)
    finished = await repository.finish_job_if_done(session, job.id)
    await events.on_finished(session, finished)  # outbox, same transaction
    await session.commit()
    await bookings.forget(waiting_on)
    await session.refresh(job)
    if finished is not None:
        telemetry.job_finished(finished)
    return job


def _encode_cursor(value: str | int) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, kind: type) -> Any:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidCursor("The cursor is not one this API returned") from None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidCursor("The cursor is not one this API returned")
    return value


async def list_page(
    session: AsyncSession,
    api_key_id: str,
    *,
    limit: int,
    cursor: str | None,
    status: JobStatus | None,
    created_after: datetime | None,
    created_before: datetime | None,
) -> JobPage:
    before = _decode_cursor(cursor, str) if cursor else None
    jobs = await repository.list_jobs(
        session,
        api_key_id,
        limit=limit + 1,
        before_id=before,
        status=status.value if status else None,
        created_after=created_after,
        created_before=created_before,
    )
    more = len(jobs) > limit
    jobs = jobs[:limit]
    return JobPage(
        items=[to_read(j) for j in jobs],
        next_cursor=_encode_cursor(jobs[-1].id) if more else None,
    )


async def results_page(
    session: AsyncSession,
    job_id: str,
    api_key_id: str,
    *,
    limit: int,
    cursor: str | None,
    status: TaskStatus | None,
) -> ResultPage:
    job = await get(session, job_id, api_key_id)
    after = _decode_cursor(cursor, int) if cursor else -1
    tasks = await repository.list_results(
        session,
        job.id,
        limit=limit + 1,
        after_position=after,
        status=status.value if status else None,
    )
    more = len(tasks) > limit
    tasks = tasks[:limit]
    return ResultPage(
        items=[to_result(t) for t in tasks],
        next_cursor=_encode_cursor(tasks[-1].position) if more else None,
    )


_PRIORITY_BY_RANK = {p.rank: p for p in Priority}


class JobFields(Protocol):
    """What :func:`to_read` reads: a ``Job`` or a row of the ``job`` table."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def total_tasks(self) -> int: ...
    @property
    def succeeded_tasks(self) -> int: ...
    @property
    def failed_tasks(self) -> int: ...
    @property
    def cancelled_tasks(self) -> int: ...
    @property
    def options(self) -> dict[str, Any]: ...
    @property
    def extract(self) -> dict[str, Any]: ...
    @property
    def webhook_url(self) -> str | None: ...
    @property
    def client_metadata(self) -> dict[str, Any]: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def finished_at(self) -> datetime | None: ...
    @property
    def cancel_requested_at(self) -> datetime | None: ...


def to_read(job: JobFields) -> JobRead:
    return JobRead(
        id=job.id,
        status=JobStatus(job.status),
        priority=_PRIORITY_BY_RANK.get(job.priority, Priority.NORMAL),
        progress=Progress(
            total=job.total_tasks,
            succeeded=job.succeeded_tasks,
            failed=job.failed_tasks,
            cancelled=job.cancelled_tasks,
            pending=job.total_tasks
            - job.succeeded_tasks
            - job.failed_tasks
            - job.cancelled_tasks,  # Job.pending_tasks, which a row has not
        ),
        options=job.options,
        extract=job.extract,
        webhook_url=job.webhook_url,
        metadata=job.client_metadata,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        cancel_requested_at=job.cancel_requested_at,
        links={"self": f"/v1/jobs/{job.id}", "results": f"/v1/jobs/{job.id}/results"},
    )


def to_result(task: Task) -> TaskResult:
    error = None
    if task.error:
        error = ResultError(
            outcome=task.error.get("outcome", "unknown"), message=task.error.get("message", "")
        )
    return TaskResult(
        task_id=task.id,
        position=task.position,
        url=task.url,
        status=TaskStatus(task.status),
        attempts=task.attempt,
        final_url=task.final_url,
        http_status=task.http_status,
        outcome=task.last_outcome,
        data=task.data,
        error=error,
        finished_at=task.finished_at,
    )
