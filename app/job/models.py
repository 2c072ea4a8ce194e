from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, JSONType, UTCDateTime, utcnow


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_JOB_STATUSES


TERMINAL_JOB_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class TaskStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Priority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return {"low": 0, "normal": 1, "high": 2}[self.value]


class Job(Base):
    __tablename__ = "job"
    __table_args__ = (
        UniqueConstraint("api_key_id", "idempotency_key", name="uq_job_idempotency"),
        Index("ix_job_owner_id", "api_key_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_key.id"))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    priority: Mapped[int] = mapped_column(Integer, default=1)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    request_hash: Mapped[str] = mapped_column(String(64))
    extract: Mapped[dict[str, Any]] = mapped_column(JSONType)
    options: Mapped[dict[str, Any]] = mapped_column(JSONType)
    webhook_url: Mapped[str | None] = mapped_column(Text, default=None)
    client_metadata: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    total_tasks: Mapped[int] = mapped_column(Integer, default=0)
    succeeded_tasks: Mapped[int] = mapped_column(Integer, default=0)
    failed_tasks: Mapped[int] = mapped_column(Integer, default=0)
    cancelled_tasks: Mapped[int] = mapped_column(Integer, default=0)
    traceparent: Mapped[str | None] = mapped_column(String(64), default=None)
    # the submitting request's X-Request-ID, for the logs of every attempt (a message sent
    # again by the dispatcher carries no context of its own)
    request_id: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    @property
    def pending_tasks(self) -> int:
        return self.total_tasks - self.succeeded_tasks - self.failed_tasks - self.cancelled_tasks


class Task(Base):
    """One URL of a job: the unit of queueing, retry, politeness and results."""

    __tablename__ = "task"
    __table_args__ = (
        Index("ix_task_due", "status", "next_attempt_at"),
        Index("ix_task_job_position", "job_id", "position"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(Text)
    domain: Mapped[str] = mapped_column(String(255))
    priority: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.QUEUED)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    worker_id: Mapped[str | None] = mapped_column(String(80), default=None)
    last_outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    http_status: Mapped[int | None] = mapped_column(Integer, default=None)
    final_url: Mapped[str | None] = mapped_column(Text, default=None)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    response_bytes: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
