"""The jobs API's request and response bodies."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.fetch.extract import FieldRule, SelectorInvalid
from app.job.models import JobStatus, Priority, TaskStatus
from app.validation import RequestBody

_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")
# Headers a client may not set on fetches: transport-level, or ours to decide.
FORBIDDEN_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "traceparent",
        "tracestate",
        "baggage",
    }
)


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    selector: str = Field(min_length=1, max_length=1000)
    type: Literal["css", "xpath"] = "css"
    output: Literal["text", "html", "attribute"] = "text"
    attribute: str | None = Field(default=None, min_length=1, max_length=100)
    many: bool = False

    @model_validator(mode="after")
    def _check(self) -> FieldSpec:
        if self.output == "attribute" and not self.attribute:
            raise ValueError("output 'attribute' needs the 'attribute' name")
        if self.output != "attribute" and self.attribute:
            raise ValueError("'attribute' is only used with output 'attribute'")
        try:
            FieldRule(self.selector, self.type, self.output, self.attribute, self.many).xpath()
        except SelectorInvalid as exc:
            raise ValueError(str(exc)) from None
        return self


class ExtractSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fields: dict[str, FieldSpec] = Field(min_length=1)

    @field_validator("fields")
    @classmethod
    def _names(cls, value: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        bad = [name for name in value if not _FIELD_NAME.match(name)]
        if bad:
            raise ValueError(f"invalid field names {bad}: use letters, digits, _ . - (max 64)")
        return value


class JobOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_s: float | None = Field(default=None, gt=0, description="Per-fetch timeout")
    max_retries: int | None = Field(default=None, ge=0)
    headers: dict[str, str] = Field(default_factory=dict)
    proxy_pool: str | None = Field(default=None, min_length=1, max_length=100)
    priority: Priority = Priority.NORMAL

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header_value in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"invalid header name {name!r}")
            if name.lower() in FORBIDDEN_HEADERS:
                raise ValueError(f"header {name!r} cannot be set by clients")
            if len(header_value) > 4096 or any(c in header_value for c in "\r\n\x00"):
                raise ValueError(f"invalid value for header {name!r}")
        return value


WebhookEvent = Literal["job.started", "job.completed", "job.failed", "job.cancelled"]
TERMINAL_WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = ("job.cancelled", "job.completed", "job.failed")


class JobCreate(RequestBody):
    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(min_length=1)
    extract: ExtractSpec
    options: JobOptions = Field(default_factory=JobOptions)
    webhook_url: str | None = None
    webhook_events: list[WebhookEvent] | None = Field(
        default=None,
        min_length=1,
        description="Events to deliver; default: the terminal ones (job.started only if asked)",
    )
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _events_need_a_url(self) -> JobCreate:
        if self.webhook_events is not None and self.webhook_url is None:
            raise ValueError("webhook_events needs a webhook_url")
        return self


class Progress(BaseModel):
    total: int
    succeeded: int
    failed: int
    cancelled: int
    pending: int


class JobRead(BaseModel):
    id: str
    status: JobStatus
    priority: Priority
    progress: Progress
    options: dict[str, Any]
    extract: dict[str, Any]
    webhook_url: str | None
    metadata: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested_at: datetime | None
    links: dict[str, str]


class JobPage(BaseModel):
    items: list[JobRead]
    next_cursor: str | None


class ResultError(BaseModel):
    outcome: str
    message: str


class TaskResult(BaseModel):
    task_id: str
    position: int
    url: str
    status: TaskStatus
    attempts: int
    final_url: str | None
    http_status: int | None
    outcome: str | None
    data: dict[str, Any] | None
    error: ResultError | None
    finished_at: datetime | None


class ResultPage(BaseModel):
    items: list[TaskResult]
    next_cursor: str | None
