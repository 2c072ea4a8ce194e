"""What the job domain reports: its queue spans (messaging semantic conventions: ``send
{stream}`` on publish, ``process {stream}`` per task attempt) and thin wrappers over the metric
catalogue (attributes bounded)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from app.fetch.client import FetchResult
from app.fetch.outcome import Outcome
from app.job.models import Job, Priority
from app.queue import CONSUMER_GROUP
from app.telemetry import background_span, tracer
from app.telemetry.metrics import instruments, outcome, size_bucket

MESSAGING_SYSTEM = "redis"  # Redis Streams (not a well-known semconv value: a custom one)


@contextmanager
def producer_span(destination: str, message_count: int) -> Iterator[trace.Span]:
    """The PRODUCER span ``send {destination}`` of one batch of task messages (``destination``:
    the stream's real name, e.g. ``trawl:tasks``)."""
    with tracer().start_as_current_span(
        f"send {destination}",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.destination.name": destination,
            "messaging.batch.message_count": message_count,
        },
    ) as span:
        yield span


@contextmanager
def consumer_span(
    carrier: Mapping[str, str] | None,
    job_traceparent: str | None,
    attributes: dict[str, Any],
    *,
    destination: str,
) -> Iterator[trace.Span]:
    """The CONSUMER span ``process {destination}`` of one task attempt.

    A message sent from the submitting request carries its context: the attempt continues that
    trace. A message sent later (retry, reaper, dispatcher) starts a new trace linked to the
    job's original one, so a retry hours later does not stretch the request's trace.
    """
    with background_span(
        f"process {destination}",
        SpanKind.CONSUMER,
        carrier=carrier,
        link_traceparent=job_traceparent,
        attributes={
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.destination.name": destination,
            "messaging.consumer.group.name": CONSUMER_GROUP,
            **attributes,
        },
    ) as span:
        yield span


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
