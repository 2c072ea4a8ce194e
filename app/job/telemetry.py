"""What the job domain reports: thin wrappers over the metric catalogue (attributes bounded)."""

from __future__ import annotations

from app.fetch.client import FetchResult
from app.fetch.outcome import Outcome
from app.job.models import Job, Priority
from app.telemetry.metrics import instruments, outcome, size_bucket

_PRIORITY_NAMES = {p.rank: p.value for p in Priority}


def priority_name(rank: int) -> str:
    return _PRIORITY_NAMES.get(rank, "normal")


def job_submitted(result: str, priority: str | None = None) -> None:
    attrs = {"trawl.submit.outcome": result}
    if priority is not None:
        attrs["trawl.job.priority"] = priority
    instruments().job_submitted.add(1, attrs)


def tasks_enqueued(count: int, reason: str) -> None:
    if count:
        instruments().enqueued.add(count, {"trawl.enqueue.reason": reason})


def job_finished(job: Job) -> None:
    m = instruments()
    m.job_finished.add(1, {"trawl.job.status": job.status})
    if job.finished_at is not None:
        m.job_duration.record(
            (job.finished_at - job.created_at).total_seconds(),
            {"trawl.job.status": job.status, "trawl.job.size": size_bucket(job.total_tasks)},
        )


def ban_signal(result: FetchResult) -> str | None:
    if result.outcome == Outcome.BLOCKED:
        return (
            f"status_{result.status_code}"
            if result.status_code in (401, 403)
            else ("challenge_page")
        )
    if result.outcome == Outcome.PROXY_ERROR:
        return "proxy_failure"
    return None


def fetch_attempted(result: FetchResult) -> None:
    m = instruments()
    attrs = {"trawl.outcome": outcome(result.outcome.value)}
    m.fetch_attempts.add(1, attrs)
    m.fetch_duration.record(result.duration_s, attrs)
    if result.body:
        m.response_size.record(len(result.body))
    signal = ban_signal(result)
    if signal is not None:
        m.bans.add(1, {"trawl.ban.signal": signal})


def attempt_settled(value: str, *, final: bool, attempts: int) -> None:
    m = instruments()
    attrs = {"trawl.outcome": outcome(value)}
    m.processed.add(1, attrs)
    if final:
        m.task_finished.add(1, attrs)
        m.task_attempts.record(attempts, attrs)
    else:
        tasks_enqueued(1, "retry")


def throttled(reason: str | None) -> None:
    instruments().throttled.add(1, {"trawl.throttle.reason": reason or "rate"})
